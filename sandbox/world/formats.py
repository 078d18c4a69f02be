"""What each webhook format calls each catalogue event: ``chekt-apps`` by its own type,
``legacy-guide`` by the older guide's name, ``dealer-v1`` by one of its variants (chosen by
the event's data). Read from the catalogue's table, for the profiles that render the bodies,
the subscriptions that list names and the documents that describe them."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sandbox.world.catalog import EVENT_TYPES, EVENTS, Variant


def variants(profile: str, event_type: str) -> tuple[Variant, ...]:
    """The names ``profile`` may give ``event_type`` (chekt-apps: its own)."""
    kind = EVENTS[event_type]
    if profile == "legacy-guide":
        return (Variant(kind.legacy),) if kind.legacy else ()
    if profile == "dealer-v1":
        return kind.dealer_v1
    return (Variant(event_type),)


def name_in(profile: str, event_type: str, data: Mapping[str, Any]) -> str | None:
    """What ``profile`` calls this event, or None when it does not send it."""
    return next((v.name for v in variants(profile, event_type) if v.when(data)), None)


def about(profile: str, name: str) -> str:
    """What sends ``name`` in ``profile``'s format."""
    return next(
        (v.about for t in names(profile)[name] for v in variants(profile, t) if v.name == name),
        "",
    )


@cache
def names(profile: str) -> dict[str, tuple[str, ...]]:
    """Every name ``profile`` uses, with the event types each may stand for."""
    found: dict[str, tuple[str, ...]] = {}
    for event_type in EVENT_TYPES:
        for variant in variants(profile, event_type):
            found[variant.name] = (*found.get(variant.name, ()), event_type)
    return found
