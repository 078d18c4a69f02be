"""Strings that JSON can carry and UTF-8 cannot: Hypothesis strategies that put an unpaired
surrogate into text, or into one string (a value or a name) of a JSON document."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st

_SURROGATE = re.compile("[\ud800-\udfff]")


def with_lone_surrogate() -> st.SearchStrategy[str]:
    """Short text holding exactly one surrogate, which nothing next to it can pair."""
    return st.builds(
        lambda before, lone, after: before + lone + after,
        st.text(max_size=4),  # Hypothesis leaves surrogates out of text() by default
        st.characters(categories=["Cs"]),
        st.text(max_size=4),
    )


def holds_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_SURROGATE.search(value))
    if isinstance(value, dict):
        return any(holds_surrogate(k) or holds_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_surrogate(v) for v in value)
    return False


def string_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where a surrogate can go: every string value, and every object's names (path + None)."""
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        inner = [p for k, v in value.items() for p in string_paths(v, (*path, k))]
        return [(*path, None), *inner]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in string_paths(v, (*path, i))]
    return []


def planted(value: Any, path: tuple[Any, ...], text: str) -> Any:
    """A copy of ``value`` with ``text`` at ``path`` (a new name when the path ends in None)."""
    if not path:
        return text
    head, rest = path[0], path[1:]
    if head is None:
        return {**value, text: 1}
    if isinstance(value, dict):
        return {**value, head: planted(value[head], rest, text)}
    return [planted(v, rest, text) if i == head else v for i, v in enumerate(value)]


def sometimes_planted(value: Any) -> st.SearchStrategy[Any]:
    """``value`` as it is, or (one time in four) with a surrogate in one of its strings."""
    paths = string_paths(value)
    if not paths:
        return st.just(value)
    plant = st.builds(planted, st.just(value), st.sampled_from(paths), with_lone_surrogate())
    return st.sampled_from([False, False, False, True]).flatmap(
        lambda yes: plant if yes else st.just(value)
    )
