"""The three webhook formats CHeKT has documented, as profiles of one delivery path.

``chekt-apps`` (the current contract) sends every catalogue event; ``legacy-guide`` and
``dealer-v1`` only have names for some of them (the catalogue's table says which, and when),
and an event without a name in a subscription's profile is simply not delivered to it. Each
profile is a row of :data:`PROFILES`: how it renders a body, how it describes one (the
OpenAPI ``webhooks``), how it signs and how long a receiver has to answer.

dealer-v1 shows more than the event's data: the site's name and account number, the device's
name and zone, every partition's state, and the numeric ``event_id`` (the happening's ``seq``,
what the dealer API's ``events-video-urls`` and activity-log search use). These are read from
the record by :class:`Happening`, once per event and only when a dealer-v1 subscription asks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sandbox import jsontext
from sandbox.store import Row
from sandbox.vocabulary import PROFILES
from sandbox.world import World
from sandbox.world.catalog import (
    EVENTS,
    INTEGER,
    MAYBE_TEXT,
    TEXT,
    data_schema,
    one_of,
)
from sandbox.world.formats import about, names

STAMP = {"type": "string", "format": "date-time"}
OFF_RECORD = 10**12  # dealer-v1 numbers of deliveries outside the record start here
LEGACY_DEADLINE = 5.0  # s: the older guide's "respond within 5 seconds"


class Happening:
    """One event and what the record says around it (read lazily, once)."""

    def __init__(self, world: World, event: Row, data: dict[str, Any]) -> None:
        self.world = world
        self.event_id: str = event["event_id"]
        self.event_type: str = event["type"]
        self.created_at: float = event["created_at"]
        self.seq: int | None = event.get("seq")
        self.data = data

    @property
    def number(self) -> int:
        """dealer-v1's integer id: the record's ``seq``; a delivery outside the record (a test
        ping, an adversarial payload) gets one at or above ``OFF_RECORD``, never a record's."""
        if self.seq is not None:
            return self.seq
        return OFF_RECORD + int(self.event_id.removeprefix("evt_"), 16) % OFF_RECORD

    @cached_property
    def site(self) -> Row:
        row = self.world.store.one(
            "SELECT name, account_number FROM sites WHERE site_id = ?", (self.data.get("site_id"),)
        )
        return row or {}

    @cached_property
    def device(self) -> Row:
        row = self.world.store.one(
            "SELECT name, zone_number FROM devices WHERE device_id = ?",
            (self.data.get("device_id"),),
        )
        return row or {}

    @cached_property
    def partitions(self) -> list[Row]:
        return self.world.store.all(
            "SELECT partition, name FROM arming WHERE site_id = ? ORDER BY partition",
            (self.data.get("site_id"),),
        )

    @cached_property
    def alarm_number(self) -> int:
        """The number of the alarm.created the event is about (its video is that event's)."""
        seq = self.world.store.scalar(
            "SELECT seq FROM events WHERE type = 'alarm.created' AND status = 'happened' "
            "AND json_extract(data, '$.alarm_id') = ?",
            (self.data.get("alarm_id"),),
        )
        return int(seq) if seq is not None else self.number


def _seconds(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode(envelope: dict[str, Any]) -> bytes:
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:  # a surrogate that reached the data: sent, never a stuck outbox
        return jsontext.scrub(text).encode()


def _pascal(name: str) -> str:
    return "".join(word.title() for word in name.replace(".", "_").split("_"))


def _object(title: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "required": list(properties),
        "properties": properties,
    }


# ---- chekt-apps and legacy-guide: {id, type, created_at, data} ---------------------------------


def _envelope(name: str, h: Happening, data: dict[str, Any], url: str) -> dict[str, Any] | None:
    return {"id": h.event_id, "type": name, "created_at": _seconds(h.created_at), "data": data}


def _envelope_schema(title: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
    event_id = {
        "type": "string",
        "pattern": "^evt_[0-9a-f]+$",
        "description": "the same on every retry and resend: receivers dedupe on it",
    }
    return _object(
        title, {"id": event_id, "type": {"const": name}, "created_at": STAMP, "data": data}
    )


def _chekt_apps_schema(name: str) -> dict[str, Any]:
    data = {"title": _pascal(name) + "Data", **data_schema(name)}
    return _envelope_schema(_pascal(name) + "Event", name, data)


def _shared(name: str) -> bool:
    """A legacy name for several catalogue types: its data says which (``status``)."""
    return len(names("legacy-guide")[name]) > 1


def _legacy(name: str, h: Happening, data: dict[str, Any], url: str) -> dict[str, Any] | None:
    if _shared(name):
        data = {**data, "status": EVENTS[h.event_type].status}
    return _envelope(name, h, data, url)


def _legacy_schema(name: str) -> dict[str, Any]:
    sources = names("legacy-guide")[name]
    data = {"title": _pascal(sources[0]) + "Data", **data_schema(sources[0])}
    if _shared(name):
        statuses = tuple(str(EVENTS[t].status) for t in sources)
        data = {
            **data,
            "title": f"Legacy{_pascal(name)}Data",
            "required": [*data["required"], "status"],
            "properties": {**data["properties"], "status": one_of(statuses, "LegacyDeviceStatus")},
        }
    return _envelope_schema(f"Legacy{_pascal(name)}Event", name, data)


# ---- dealer-v1: {event_id: <int>, event_type, status, endpoint_url, api_version, payload} ------

ARMING_STATE = one_of(("armed", "disarmed"), "DealerV1ArmingState")
PARTITION = _object(
    "DealerV1Partition",
    {
        "partition_id": {"type": "integer", "description": "the partition's number in the site"},
        "partition_name": TEXT,
        "arming_status": ARMING_STATE,
    },
)


def _partitions(h: Happening, d: dict[str, Any]) -> list[dict[str, Any]]:
    """arming_status: every partition of the site; partition_arming_status: the one changed."""
    status = EVENTS[h.event_type].status
    rows = h.partitions if d.get("whole_site") else []
    rows = rows or [r for r in h.partitions if r["partition"] == d.get("partition")]
    return [
        {"partition_id": r["partition"], "partition_name": r["name"], "arming_status": status}
        for r in rows
    ]


Value = Callable[[Happening, dict[str, Any]], Any]
# each field of dealer-v1's flat data: its schema, and where its value comes from
DEALER_V1_FIELDS: dict[str, tuple[dict[str, Any], Value]] = {
    "site_id": (INTEGER, lambda h, d: d.get("site_id")),
    "site_name": (MAYBE_TEXT, lambda h, d: h.site.get("name")),
    "account_number": (MAYBE_TEXT, lambda h, d: h.site.get("account_number")),
    "event_time": (STAMP, lambda h, d: _seconds(h.created_at)),
    "arming_status": (ARMING_STATE, lambda h, d: EVENTS[h.event_type].status),
    "arming_action": (
        one_of(("arm", "disarm"), "DealerV1ArmingAction"),
        lambda h, d: "arm" if h.event_type == "site.armed" else "disarm",
    ),
    "partitions": ({"type": "array", "items": PARTITION}, _partitions),
    "device_id": (INTEGER, lambda h, d: d.get("device_id")),
    "device_name": (MAYBE_TEXT, lambda h, d: h.device.get("name")),
    "zone_number": (MAYBE_TEXT, lambda h, d: h.device.get("zone_number")),
    "is_online": (
        one_of((0, 1), "DealerV1IsOnline"),
        lambda h, d: int(EVENTS[h.event_type].status == "online"),
    ),
    "event_id": (
        {
            "type": "integer",
            "description": "the alarm's event (event_video: the alarm.created whose video this "
            "is), as the dealer API's events-video-urls and activity-log search number it",
        },
        lambda h, d: h.alarm_number if h.event_type == "snapshot.created" else h.number,
    ),
}
_SITE = ("site_id", "site_name", "account_number", "event_time")
_ARMING = (*_SITE, "arming_status", "arming_action", "partitions")
_NETWORK = (*_SITE, "device_id", "device_name", "zone_number", "is_online")
_ALARM = (*_SITE, "device_id", "device_name", "zone_number", "event_id")
DEALER_V1_DATA = {  # which of those fields each dealer-v1 name carries
    "arming_status": _ARMING,
    "partition_arming_status": _ARMING,
    "camera_network": _NETWORK,
    "bridge_network": _NETWORK,
    "alarm_event": _ALARM,
    "event_video": _ALARM,
}
assert set(DEALER_V1_DATA) == set(names("dealer-v1")), "every dealer-v1 name has its fields"


def _dealer_v1(name: str, h: Happening, data: dict[str, Any], url: str) -> dict[str, Any] | None:
    if name == "arming_status":
        # a whole-site change is one happening per partition: sent once, with the last
        last = max((r["partition"] for r in h.partitions), default=data.get("partition"))
        if data.get("partition") != last:
            return None
    flat = {field: DEALER_V1_FIELDS[field][1](h, data) for field in DEALER_V1_DATA[name]}
    return {
        "event_id": h.number,
        "event_type": name,
        "status": EVENTS[h.event_type].status,
        "endpoint_url": url,
        "api_version": "v1",
        "payload": {"data": flat, "triggered_by": {"email": "system@chekt.com"}},
    }


def _dealer_v1_schema(name: str) -> dict[str, Any]:
    title = "DealerV1" + _pascal(name)
    fields = {f: DEALER_V1_FIELDS[f][0] for f in DEALER_V1_DATA[name]}
    payload = _object(
        title + "Payload",
        {
            "data": _object(title + "Data", fields),
            "triggered_by": _object("DealerV1TriggeredBy", {"email": TEXT}),
        },
    )
    statuses = tuple(dict.fromkeys(str(EVENTS[t].status) for t in names("dealer-v1")[name]))
    status = {
        "enum": list(statuses),
        "description": "what happened: armed/disarmed (arming), online/offline (network), "
        "triggered (a new alarm), ready (an alarm's video)",
    }
    return _object(
        title + "Event",
        {
            "event_id": {
                "type": "integer",
                "description": "the happening's number (seq), as the dealer API numbers it",
            },
            "event_type": {"const": name, "description": about("dealer-v1", name)},
            "status": status,
            "endpoint_url": TEXT,
            "api_version": {"const": "v1"},
            "payload": payload,
        },
    )


# ---- the profiles ------------------------------------------------------------------------------

Render = Callable[[str, Happening, dict[str, Any], str], dict[str, Any] | None]


@dataclass(frozen=True)
class Profile:
    render: Render  # the envelope for one named event (None: not sent)
    schema: Callable[[str], dict[str, Any]]  # the JSON Schema of one named event's body
    signature: str | None = None  # its signature variant (None: the sandbox's setting)
    deadline: float | None = None  # s a receiver has to answer, at most (None: the setting's)


FORMATS: dict[str, Profile] = {
    "chekt-apps": Profile(_envelope, _chekt_apps_schema),
    "legacy-guide": Profile(_legacy, _legacy_schema, "legacy", LEGACY_DEADLINE),
    "dealer-v1": Profile(_dealer_v1, _dealer_v1_schema),
}
assert tuple(FORMATS) == PROFILES, "a format for every profile"


def render(profile: str, name: str, h: Happening, data: dict[str, Any], url: str) -> bytes | None:
    """The body one subscription receives for one event, which ``profile`` calls ``name``
    (``catalog.name_in``), or None when the profile does not send it."""
    envelope = FORMATS[profile].render(name, h, data, url)
    return None if envelope is None else _encode(envelope)


def schemas(profile: str) -> dict[str, dict[str, Any]]:
    """The JSON Schema of every body ``profile`` sends, by the name it gives the event. Each
    object carries a title, so code generators name their classes after it."""
    return {name: FORMATS[profile].schema(name) for name in names(profile)}


def timeout(profile: str, configured: float) -> float:
    """How long a delivery of ``profile`` waits for an answer."""
    deadline = FORMATS[profile].deadline
    return configured if deadline is None else min(deadline, configured)
