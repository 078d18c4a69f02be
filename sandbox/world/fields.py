"""Declarative request-body validation: every rule a field has, in one place, and one
``ValidationFailed`` (422 + ``field``) for the first rule broken."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sandbox.errors import BadRequest, ValidationFailed

SQLITE_INT = 1 << 63  # integers the store can hold: -2**63 .. 2**63 - 1
# character-class bodies, spelled out because regex engines disagree on what \s means:
# SPACE is exactly what str.isspace() (and so str.strip()) takes for white space
SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_CONTROL = re.compile(f"[{CONTROL}]")


@dataclass(frozen=True)
class Field:
    name: str
    kind: type = str
    required: bool = False
    max_length: int = 255
    min_length: int = 0
    pattern: re.Pattern[str] | None = None
    pattern_hint: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    check: Callable[[Any], str | None] | None = None

    @property
    def lowest(self) -> int:
        return -SQLITE_INT if self.minimum is None else self.minimum

    @property
    def highest(self) -> int:
        return SQLITE_INT - 1 if self.maximum is None else self.maximum

    def clean(self, value: Any) -> Any:
        if value is None:
            if self.required:
                raise ValidationFailed(self.name, f"{self.name} is required and cannot be null")
            return None
        if self.kind is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # JSON says 5.0 is the integer 5
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationFailed(self.name, f"{self.name} must be an integer")
            if value < self.lowest:
                raise ValidationFailed(self.name, f"{self.name} must be at least {self.lowest}")
            if value > self.highest:
                raise ValidationFailed(self.name, f"{self.name} must be at most {self.highest}")
        elif self.kind is str:
            if not isinstance(value, str):
                raise ValidationFailed(self.name, f"{self.name} must be a string")
            if self.required and not value.strip():
                raise ValidationFailed(self.name, f"{self.name} cannot be empty")
            if len(value) < self.min_length:
                raise ValidationFailed(
                    self.name, f"{self.name} must be at least {self.min_length} characters"
                )
            if len(value) > self.max_length:
                raise ValidationFailed(
                    self.name, f"{self.name} is longer than {self.max_length} characters"
                )
            if _CONTROL.search(value):
                raise ValidationFailed(self.name, f"{self.name} contains control characters")
            if self.pattern is not None and not self.pattern.fullmatch(value):
                raise ValidationFailed(self.name, f"{self.name} must be {self.pattern_hint}")
        if self.choices is not None and value not in self.choices:
            listed = ", ".join(repr(c) for c in self.choices)
            raise ValidationFailed(self.name, f"{self.name} must be one of {listed}")
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise ValidationFailed(self.name, f"{self.name} {problem}")
        return value


def validate(
    body: Any,
    fields: Sequence[Field],
    *,
    partial: bool = False,
    read_only: Sequence[str] = (),
) -> dict[str, Any]:
    """Clean a JSON object against ``fields``. ``partial`` is PATCH: nothing is required."""
    if not isinstance(body, Mapping):
        raise BadRequest("the request body must be a JSON object")
    by_name = {f.name: f for f in fields}
    for name in body:
        if name in read_only:
            raise ValidationFailed(name, f"{name} is read-only and cannot be set")
        if name not in by_name:
            raise ValidationFailed(name, f"unknown field {name!r}")
    cleaned: dict[str, Any] = {}
    for f in fields:
        if f.name in body:
            cleaned[f.name] = f.clean(body[f.name])
        elif f.required and not partial:
            raise ValidationFailed(f.name, f"{f.name} is required")
    return cleaned


@cache
def timezones() -> frozenset[str]:
    """Read once, when first needed: listing them costs tens of milliseconds."""
    return frozenset(zoneinfo.available_timezones())


def iana_timezone(value: str) -> str | None:
    return None if value in timezones() else "must be an IANA time zone such as 'America/New_York'"


# negated classes name the control characters too, so the OpenAPI patterns say all there is
_EMAIL_PART = f"[^@{SPACE}{CONTROL}]+"
EMAIL = re.compile(f"{_EMAIL_PART}@{_EMAIL_PART}\\.{_EMAIL_PART}")
PHONE = re.compile(r"\+?[0-9][0-9 ().-]{3,24}")
ZONE = re.compile(r"[0-9]{3}")
ZONES = re.compile(r"[0-9]{3}(,[0-9]{3})*")
# six hex pairs with ':' or '-', or bare hex digits: CHeKT's own example device has "1234567890"
MAC = re.compile(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{10,12}")
ACCOUNT = re.compile(r"[0-9A-Za-z-]{1,16}")
# no commas: bulk device deletes list external ids comma-separated in the query string
EXTERNAL_ID = re.compile(f"[^/?#,{SPACE}{CONTROL}]{{1,128}}")


def external_id(name: str) -> Field:
    return Field(
        name,
        required=True,
        max_length=128,
        pattern=EXTERNAL_ID,
        pattern_hint="1-128 characters with no spaces, '/', '?', '#' or ','",
    )
