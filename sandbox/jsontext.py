"""JSON as the sandbox reads it from clients: the interoperable subset of RFC 8259, so that
whatever is read can be stored, journalled, rendered and sent on without a surprise.

Beyond the grammar, ``loads`` refuses (with a ``ValueError`` whose message is fit for the
client): duplicate names; ``NaN``, ``Infinity`` and numbers too large for a float (no JSON
encoder can write them back); strings holding an unpaired surrogate (``"\\ud800"`` is valid
JSON text, but no UTF-8 can carry the string it stands for, so SQLite, the journal and every
webhook body would fail on it); and nesting deeper than ``MAX_DEPTH``, where ``json`` would
otherwise recurse until ``RecursionError``."""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32  # objects and arrays inside each other; CHeKT's deepest body has 3
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {_quoted(key)}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def _quoted(text: str) -> str:
    """``text`` as a JSON string literal in ASCII: safe in any message, even with surrogates."""
    return json.dumps(text)


def loads(text: str, *, unique_names: bool = True) -> Any:
    """``unique_names=False`` lets the last of repeated names win, as ``json`` does: for
    showing a body someone sent, secrets still redacted by name."""
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates if unique_names else None,
            parse_constant=_no_constants,
            parse_float=_finite,
        )
    except RecursionError:
        raise ValueError(f"it is nested deeper than {MAX_DEPTH} levels") from None
    # only brackets can nest, only escapes can make a surrogate: most texts skip both walks
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _shallow(value)
    if _SURROGATE_ESCAPE.search(text):
        _no_surrogates(value, "")
    return value


def check(value: Any) -> None:
    """Refuse a value read by another JSON parser (a JWT's claims) as ``loads`` would."""
    _shallow(value)
    _no_surrogates(value, "")


def scrub(text: str) -> str:
    """``text`` with each unpaired surrogate made U+FFFD, as a browser's ``TextEncoder`` does."""
    return _SURROGATE.sub("\ufffd", text)


def _shallow(value: Any) -> None:
    """Level by level, without recursion: a list of a thousand objects is one level."""
    level = [value]
    for _ in range(MAX_DEPTH):
        level = [
            inner
            for outer in level
            if isinstance(outer, dict | list)
            for inner in (outer.values() if isinstance(outer, dict) else outer)
            if isinstance(inner, dict | list)
        ]
        if not level:
            return
    raise ValueError(f"it is nested deeper than {MAX_DEPTH} levels")


def _no_surrogates(value: Any, where: str) -> None:
    """Find the string that holds one, to name it (``_shallow`` bounded the recursion)."""
    if isinstance(value, str):
        _no_surrogate(value, f"the string at {where or 'the top'}")
        return
    if not isinstance(value, dict | list):
        return
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(key, str):
            _no_surrogate(key, f"a name in {where or 'the top object'}")
            inner = f"{where}.{key}" if key.isidentifier() else f"{where}[{_quoted(key)}]"
        else:
            inner = f"{where}[{key}]"
        _no_surrogates(item, inner.lstrip("."))


def _no_surrogate(text: str, what: str) -> None:
    found = _SURROGATE.search(text)
    if found:
        raise ValueError(
            f"{what} holds an unpaired surrogate (\\u{ord(found.group()):04x}), which is not "
            "a character: send text as UTF-8"
        )
