"""The three webhook formats CHeKT has documented, as profiles of one delivery path.

``chekt-apps`` (the current contract) sends every catalogue event; ``legacy-guide`` and
``dealer-v1`` only have names for some of them, and an event without a name in a
subscription's profile is simply not delivered to it. :func:`schemas` describes every body
each profile sends, from the same tables :func:`render` reads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sandbox import jsontext
from sandbox.world.catalog import INTEGER, MAYBE_TEXT, TEXT, data_schema, one_of
from sandbox.world.subscriptions import EVENT_TYPES

LEGACY_TYPES = {
    "alarm.created": "alarm.triggered",
    "alarm.resolved": "alarm.cleared",
    "device.online": "device.status_changed",
    "device.offline": "device.status_changed",
    "site.armed": "site.armed",
    "site.disarmed": "site.disarmed",
}
LEGACY_STATUS = {"device.online": "online", "device.offline": "offline"}  # added to data
DEALER_V1_TYPES = {
    "site.armed": "arming_status",
    "site.disarmed": "arming_status",
    "device.online": "network",
    "device.offline": "network",
    "alarm.created": "alarm_event",
    "snapshot.created": "event_video",
}
STAMP = {"type": "string", "format": "date-time"}
PARTITION = {
    "title": "DealerV1Partition",
    "type": "object",
    "required": ["partition_id", "arming_status"],
    "properties": {
        "partition_id": {"type": ["integer", "null"]},
        "arming_status": one_of(("armed", "disarmed"), "DealerV1ArmingState"),
    },
}
DEALER_V1_FIELDS = {  # the fields of dealer-v1's flat data
    "site_id": INTEGER,
    "site_name": MAYBE_TEXT,
    "account_number": MAYBE_TEXT,
    "event_time": STAMP,
    "arming_status": one_of(("armed", "disarmed"), "DealerV1ArmingState"),
    "arming_action": one_of(("arm", "disarm"), "DealerV1ArmingAction"),
    "partitions": {"type": "array", "items": PARTITION},
    "device_id": INTEGER,
    "device_name": MAYBE_TEXT,
    "is_online": one_of((0, 1), "DealerV1IsOnline"),
    "event_id": INTEGER,
    "zone_number": MAYBE_TEXT,
}
_SITE = ("site_id", "site_name", "account_number", "event_time")
_DEVICE = ("device_id", "device_name")
DEALER_V1_DATA = {  # which of those fields each dealer-v1 event type carries
    "arming_status": (*_SITE, "arming_status", "arming_action", "partitions"),
    "camera_network": (*_SITE, *_DEVICE, "is_online"),
    "bridge_network": (*_SITE, *_DEVICE, "is_online"),
    "alarm_event": (*_SITE, *_DEVICE, "event_id", "zone_number"),
    "event_video": (*_SITE, *_DEVICE, "event_id", "zone_number"),
}


def _seconds(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode(envelope: dict[str, Any]) -> bytes:
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:  # a surrogate that reached the data: sent, never a stuck outbox
        return jsontext.scrub(text).encode()


def _number(event_id: str) -> int:
    """dealer-v1's integer event id, derived from the event's own id."""
    return int(event_id.removeprefix("evt_"), 16) % 10**12


def _dealer_v1_name(event_type: str, data: dict[str, Any]) -> str | None:
    name = DEALER_V1_TYPES.get(event_type)
    if name == "network":
        return "bridge_network" if data.get("device_type") == "bridge" else "camera_network"
    return name


def _dealer_v1(
    name: str, event_type: str, event_id: str, created_at: float, data: dict[str, Any], site: Any
) -> dict[str, Any]:
    site = site or {}
    armed = "armed" if event_type == "site.armed" else "disarmed"
    values: dict[str, Any] = {
        "site_id": data.get("site_id"),
        "site_name": site.get("name"),
        "account_number": site.get("account_number"),
        "event_time": _seconds(created_at),
        "arming_status": armed,
        "arming_action": "arm" if armed == "armed" else "disarm",
        "partitions": [{"partition_id": data.get("partition"), "arming_status": armed}],
        "device_id": data.get("device_id"),
        "device_name": data.get("name") or data.get("location"),
        "is_online": 1 if event_type == "device.online" else 0,
        "event_id": _number(event_id),
        "zone_number": data.get("zone_number"),
    }
    return {name: values[name] for name in DEALER_V1_DATA[name]}


def render(
    profile: str,
    *,
    event_id: str,
    event_type: str,
    created_at: float,
    data: dict[str, Any],
    url: str,
    site: dict[str, Any] | None,
) -> bytes | None:
    """The body one subscription receives for one event, or None when the profile has no
    name for this event type."""
    if profile == "chekt-apps":
        return _encode(
            {"id": event_id, "type": event_type, "created_at": _seconds(created_at), "data": data}
        )
    if profile == "legacy-guide":
        name = LEGACY_TYPES.get(event_type)
        if name is None:
            return None
        if event_type in LEGACY_STATUS:
            data = {**data, "status": LEGACY_STATUS[event_type]}
        return _encode(
            {"id": event_id, "type": name, "created_at": _seconds(created_at), "data": data}
        )
    if profile == "dealer-v1":
        name = _dealer_v1_name(event_type, data)
        if name is None:
            return None
        flat = _dealer_v1(name, event_type, event_id, created_at, data, site)
        envelope = {
            "event_id": _number(event_id),
            "event_type": name,
            "status": "triggered",
            "endpoint_url": url,
            "api_version": "v1",
            "payload": {"data": flat, "triggered_by": {"email": "system@chekt.com"}},
        }
        return _encode(envelope)
    raise ValueError(f"unknown webhook profile {profile!r}")


def _pascal(name: str) -> str:
    return "".join(word.title() for word in name.replace(".", "_").split("_"))


def _object(title: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "required": list(properties),
        "properties": properties,
    }


def _envelope(title: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
    event_id = {
        "type": "string",
        "pattern": "^evt_[0-9a-f]+$",
        "description": "the same on every retry and resend: receivers dedupe on it",
    }
    return _object(
        title, {"id": event_id, "type": {"const": name}, "created_at": STAMP, "data": data}
    )


def _legacy(name: str) -> dict[str, Any]:
    sources = [t for t, legacy in LEGACY_TYPES.items() if legacy == name]
    data = {"title": _pascal(sources[0]) + "Data", **data_schema(sources[0])}
    statuses = [LEGACY_STATUS[t] for t in sources if t in LEGACY_STATUS]
    if statuses:
        data = {
            **data,
            "title": f"Legacy{_pascal(name)}Data",
            "required": [*data["required"], "status"],
            "properties": {
                **data["properties"],
                "status": one_of(tuple(statuses), "LegacyDeviceStatus"),
            },
        }
    return _envelope(f"Legacy{_pascal(name)}Event", name, data)


def _dealer_v1_schema(name: str) -> dict[str, Any]:
    title = "DealerV1" + _pascal(name)
    data = _object(title + "Data", {f: DEALER_V1_FIELDS[f] for f in DEALER_V1_DATA[name]})
    payload = _object(
        title + "Payload",
        {"data": data, "triggered_by": _object("DealerV1TriggeredBy", {"email": TEXT})},
    )
    return _object(
        title + "Event",
        {
            "event_id": INTEGER,
            "event_type": {"const": name},
            "status": {"const": "triggered"},
            "endpoint_url": TEXT,
            "api_version": {"const": "v1"},
            "payload": payload,
        },
    )


def schemas(profile: str) -> dict[str, dict[str, Any]]:
    """The JSON Schema of every body ``profile`` sends, by the event type it names. Each
    object carries a title, so code generators name their classes after it."""
    if profile == "chekt-apps":
        return {
            t: _envelope(_pascal(t) + "Event", t, {"title": _pascal(t) + "Data", **data_schema(t)})
            for t in EVENT_TYPES
        }
    if profile == "legacy-guide":
        return {name: _legacy(name) for name in dict.fromkeys(LEGACY_TYPES.values())}
    if profile == "dealer-v1":
        return {name: _dealer_v1_schema(name) for name in DEALER_V1_DATA}
    raise ValueError(f"unknown webhook profile {profile!r}")
