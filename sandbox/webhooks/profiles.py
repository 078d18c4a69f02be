"""The three webhook formats CHeKT has documented, as profiles of one delivery path.

``chekt-apps`` (the current contract) sends every catalogue event; ``legacy-guide`` and
``dealer-v1`` only have names for some of them, and an event without a name in a
subscription's profile is simply not delivered to it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sandbox import jsontext

PROFILES = ("chekt-apps", "legacy-guide", "dealer-v1")
LEGACY_TYPES = {
    "alarm.created": "alarm.triggered",
    "alarm.resolved": "alarm.cleared",
    "device.online": "device.status_changed",
    "device.offline": "device.status_changed",
    "site.armed": "site.armed",
    "site.disarmed": "site.disarmed",
}
DEALER_V1_TYPES = {
    "site.armed": "arming_status",
    "site.disarmed": "arming_status",
    "device.online": "network",
    "device.offline": "network",
    "alarm.created": "alarm_event",
    "snapshot.created": "event_video",
}


def _seconds(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode(envelope: dict[str, Any]) -> bytes:
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:  # a surrogate that reached the data: sent, never a stuck outbox
        return jsontext.scrub(text).encode()


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
        if name == "device.status_changed":
            data = {**data, "status": "online" if event_type == "device.online" else "offline"}
        return _encode(
            {"id": event_id, "type": name, "created_at": _seconds(created_at), "data": data}
        )
    if profile == "dealer-v1":
        name = DEALER_V1_TYPES.get(event_type)
        if name is None:
            return None
        if name == "network":
            name = "bridge_network" if data.get("device_type") == "bridge" else "camera_network"
        site = site or {}
        flat: dict[str, Any] = {
            "site_id": data.get("site_id"),
            "site_name": site.get("name"),
            "account_number": site.get("account_number"),
            "event_time": _seconds(created_at),
        }
        if event_type.startswith("site."):
            armed = event_type == "site.armed"
            flat.update(
                arming_status="armed" if armed else "disarmed",
                arming_action="arm" if armed else "disarm",
                partitions=[
                    {
                        "partition_id": data.get("partition"),
                        "arming_status": "armed" if armed else "disarmed",
                    }
                ],
            )
        if "device_id" in data:
            flat.update(
                device_id=data["device_id"], device_name=data.get("name") or data.get("location")
            )
        if name.endswith("_network"):
            flat["is_online"] = 1 if event_type == "device.online" else 0
        if event_type in ("alarm.created", "snapshot.created"):
            flat.update(
                event_id=int(event_id.removeprefix("evt_"), 16) % 10**12,
                zone_number=data.get("zone_number"),
            )
        envelope = {
            "event_id": int(event_id.removeprefix("evt_"), 16) % 10**12,
            "event_type": name,
            "status": "triggered",
            "endpoint_url": url,
            "api_version": "v1",
            "payload": {"data": flat, "triggered_by": {"email": "system@chekt.com"}},
        }
        return _encode(envelope)
    raise ValueError(f"unknown webhook profile {profile!r}")
