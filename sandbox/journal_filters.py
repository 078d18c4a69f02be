"""Which journal entries a reader asks for: the filters of ``GET /_sandbox/requests``, the
dashboard and the CLI (:func:`matcher`), and a ``path_regex`` that cannot backtrack for
minutes (:func:`path_regex`)."""

from __future__ import annotations

import fnmatch
import importlib
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.errors import ValidationFailed
from sandbox.vocabulary import INBOUND_SOURCES

FILTERS = (
    "method",
    "path",
    "path_regex",
    "client_id",
    "status",
    "since_seq",
    "since",
    "until",
    "trace_id",
    "tier",
    "surface",
    "limit",
    "reveal",
)
SURFACES = INBOUND_SOURCES  # the journal's surface: how an event came into CHeKT


PATTERN_LIMIT = 200  # characters of a path_regex
SUBJECT_LIMIT = 512  # characters of a path a path_regex is matched against
REGEX_BUDGET = 0.5  # seconds all path_regex matches of one query may take
_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}
_parser: Any = importlib.import_module("re._parser")  # the stdlib's own regex parser


def path_regex(pattern: str) -> re.Pattern[str]:
    """A ``path_regex`` compiled, or a 422 for one that could backtrack for minutes: longer
    than PATTERN_LIMIT, a quantifier inside a quantified group (``(a+)+``), a quantified
    alternation (``(a|aa)*``), or more than two open-ended quantifiers (``.*.*.*x`` is
    polynomial)."""
    if len(pattern) > PATTERN_LIMIT:
        raise ValidationFailed("path_regex", f"path_regex is limited to {PATTERN_LIMIT} characters")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValidationFailed("path_regex", f"not a regular expression: {exc}") from None
    try:
        repeats = _repeats(_parser.parse(pattern), nested=False)
    except ValueError as exc:
        raise ValidationFailed("path_regex", str(exc)) from None
    if repeats > 2:
        raise ValidationFailed("path_regex", "use at most two open-ended quantifiers")
    return compiled


def _repeats(nodes: Any, *, nested: bool) -> int:
    """How many quantifiers ``nodes`` holds; refuses nesting (see :func:`path_regex`)."""
    count = 0
    for op, value in nodes:
        name = str(op)
        if name in _REPEATS and value[1] > 1:
            if nested:
                raise ValueError("a quantifier inside a quantified group can take forever")
            count += (value[1] > 10) + _repeats(value[2], nested=True)
        elif name == "BRANCH":
            if nested:
                raise ValueError("a quantified alternation can take forever")
            count += sum(_repeats(branch, nested=nested) for branch in value[1])
        elif name == "SUBPATTERN":
            count += _repeats(value[3], nested=nested)
        elif name in ("ASSERT", "ASSERT_NOT"):
            count += _repeats(value[1], nested=nested)
    return count


def _regex_test(pattern: str) -> Callable[[str], bool]:
    """``search`` on at most SUBJECT_LIMIT characters, within REGEX_BUDGET for the query."""
    regex = path_regex(pattern)
    deadline = time.monotonic() + REGEX_BUDGET

    def test(path: str) -> bool:
        if time.monotonic() > deadline:
            raise ValidationFailed(
                "path_regex", f"path_regex took over {REGEX_BUDGET} s; anchor or simplify it"
            )
        return regex.search(path[:SUBJECT_LIMIT]) is not None

    return test


def matcher(filters: Mapping[str, str]) -> Any:
    method = filters.get("method", "").upper() or None
    path = filters.get("path")
    regex = _regex_test(filters["path_regex"]) if filters.get("path_regex") else None
    status = filters.get("status")
    since_seq = int(filters.get("since_seq", "0"))
    since = float(filters["since"]) if "since" in filters else None
    until = float(filters["until"]) if "until" in filters else None

    def test(entry: Any) -> bool:  # a recorded entry, kept or loaded: its small fields
        if entry.seq <= since_seq or (method and entry.method != method):
            return False
        if path and not fnmatch.fnmatchcase(entry.path, path):
            return False
        if regex and not regex(entry.path):
            return False
        if status and not _status_matches(entry.status, status):
            return False
        if since is not None and entry.time < since:
            return False
        if until is not None and entry.time > until:
            return False
        return all(
            filters.get(name) in (None, getattr(entry, name))
            for name in ("client_id", "trace_id", "tier", "surface")
        )

    return test


def _status_matches(status: int, wanted: str) -> bool:
    """``200``, or a class such as ``4xx``."""
    if len(wanted) == 3 and wanted[1:].lower() == "xx":
        return str(status)[0] == wanted[0]
    return str(status) == wanted
