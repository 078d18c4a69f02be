"""CHeKT's webhook event catalogue and payload builders that agree with the world.

Every ``data`` carries the same integer ``site_id`` / ``device_id`` / ``dealer_id`` the
Partner API uses plus the matching ``external_*_id``, so a partner can join a webhook to its
own records. Values are drawn from a seeded RNG: the same seed yields the same events.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sandbox.errors import ValidationFailed
from sandbox.store import Row
from sandbox.world import World
from sandbox.world.subscriptions import EVENT_TYPES

PRIORITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
TRIGGERS = ("motion", "panic", "door-forced", "glass-break", "custom")
RESPONDERS = ("guard", "police", "fire", "medical")
RESOLUTIONS = ("handled", "false-positive", "escalated")
METHODS = ("sms", "email", "push", "call")
ARMED_STATES = ("armed_away", "armed_stay", "armed_night", "armed_custom")
SOURCES = ("keypad", "app", "schedule", "partner_api")
FIRMWARE = ("3.2.1", "3.2.4", "3.3.0", "3.4.2", "4.0.0")
CONTACT_ID_CODES = {
    "motion": 130,
    "panic": 120,
    "door-forced": 134,
    "glass-break": 130,
    "custom": 130,
}
# the alarm lifecycle's cadence, seconds after alarm.created (CHeKT's documented example)
LIFECYCLE = (("alarm.acknowledged", 40), ("alarm.dispatched", 90), ("alarm.resolved", 360))


def _site(world: World, rng: random.Random, site_id: Any) -> Row:
    if site_id is not None:
        row = world.store.one("SELECT * FROM site_view WHERE site_id = ?", (site_id,))
        if row is None:
            raise ValidationFailed("site_id", f"site {site_id} does not exist")
        return row
    rows = world.store.all("SELECT * FROM site_view ORDER BY site_id")
    if not rows:
        raise ValidationFailed("site_id", "the world has no sites to emit events for")
    return rng.choice(rows)


def _device(world: World, rng: random.Random, site: Row, device_id: Any, kind: str | None) -> Row:
    if device_id is not None:
        row = world.store.one(
            "SELECT * FROM devices WHERE device_id = ? AND site_id = ?",
            (device_id, site["site_id"]),
        )
        if row is None:
            raise ValidationFailed(
                "device_id", f"device {device_id} is not at site {site['site_id']}"
            )
        return row
    sql = "SELECT * FROM devices WHERE site_id = ?" + (" AND device_type = ?" if kind else "")
    rows = world.store.all(
        sql + " ORDER BY device_id", (site["site_id"], *([kind] if kind else []))
    )
    if not rows:
        rows = world.store.all("SELECT * FROM devices WHERE site_id = ?", (site["site_id"],))
    if not rows:
        raise ValidationFailed("device_id", f"site {site['site_id']} has no devices")
    return rng.choice(rows)


def _ids(site: Row, device: Row | None = None) -> dict[str, Any]:
    ids: dict[str, Any] = {
        "dealer_id": site["dealer_id"],
        "site_id": site["site_id"],
        "external_site_id": site["external_site_id"],
    }
    if device is not None:
        ids["device_id"] = device["device_id"]
        ids["external_device_id"] = device["external_device_id"]
    return ids


def build(
    world: World, rng: random.Random, event_type: str, overrides: Mapping[str, Any], base_url: str
) -> dict[str, Any]:
    """The ``data`` of one event of ``event_type``, with ``overrides`` applied last."""
    if event_type not in EVENT_TYPES:
        raise ValidationFailed(
            "type", f"unknown event type {event_type!r}; use one of {', '.join(EVENT_TYPES)}"
        )
    site = _site(world, rng, overrides.get("site_id"))
    now = world.now()
    alarm_id = overrides.get("alarm_id") or f"A-{rng.randrange(10000, 99999)}"
    data: dict[str, Any]
    if event_type == "alarm.created":
        camera = _device(world, rng, site, overrides.get("device_id"), "camera")
        trigger = rng.choice(TRIGGERS)
        data = {
            "alarm_id": alarm_id,
            **_ids(site, camera),
            "priority": rng.choice(PRIORITIES),
            "trigger": trigger,
            "location": camera["name"] or "Camera",
            "zone_number": camera["zone_number"],
            "contact_id_code": CONTACT_ID_CODES[trigger],
            "snapshot_url": f"{base_url}/_sandbox/media/{alarm_id}.jpg",
        }
    elif event_type == "alarm.acknowledged":
        data = {
            "alarm_id": alarm_id,
            **_ids(site),
            "operator_id": f"op_{rng.choice(('jsmith', 'mlee', 'akim', 'rdiaz'))}",
            "reason": rng.choice(("video verified", "reviewing", "customer called")),
        }
    elif event_type == "alarm.dispatched":
        data = {
            "alarm_id": alarm_id,
            **_ids(site),
            "responder_id": f"rsp_{rng.getrandbits(20):05x}",
            "responder_type": rng.choice(RESPONDERS),
            "eta_seconds": rng.randrange(180, 1800, 30),
            "tracking_url": f"{base_url}/_sandbox/track/{alarm_id}",
        }
    elif event_type == "alarm.resolved":
        data = {
            "alarm_id": alarm_id,
            **_ids(site),
            "resolution": rng.choice(RESOLUTIONS),
            "notes": rng.choice(("intruder fled", "wind moved a sign", "police on site")),
        }
    elif event_type in ("device.online", "device.offline"):
        device = _device(world, rng, site, overrides.get("device_id"), None)
        data = {
            **_ids(site, device),
            "device_type": device["device_type"],
            "name": device["name"],
            "last_seen": world.stamp(now),
        }
    elif event_type == "device.firmware_updated":
        device = _device(world, rng, site, overrides.get("device_id"), None)
        old, new = sorted(rng.sample(FIRMWARE, 2))
        data = {**_ids(site, device), "from_version": old, "to_version": new}
    elif event_type == "verification.requested":
        contacts = world.store.all(
            "SELECT contact_id, first_name, last_name, phone_number, email FROM contacts "
            "WHERE site_id = ? ORDER BY contact_id",
            (site["site_id"],),
        )
        data = {
            "verification_id": f"ver_{rng.getrandbits(40):010x}",
            "alarm_id": alarm_id,
            **_ids(site),
            "method": rng.choice(METHODS),
            "contacts": contacts,
            "timeout_seconds": rng.choice((60, 120, 300)),
        }
    elif event_type == "snapshot.created":
        camera = _device(world, rng, site, overrides.get("device_id"), "camera")
        snapshot_id = f"snap_{rng.getrandbits(40):010x}"
        data = {
            "snapshot_id": snapshot_id,
            **_ids(site, camera),
            "alarm_id": alarm_id,
            "url": f"{base_url}/_sandbox/media/{snapshot_id}.jpg",
            "captured_at": world.stamp(now),
        }
    else:  # site.armed / site.disarmed
        armed = event_type == "site.armed"
        data = {
            **_ids(site),
            "state": rng.choice(ARMED_STATES) if armed else "disarmed",
            "partition": rng.randint(1, 2),
            "user_id": f"user_{rng.randrange(1, 40)}",
            "source": rng.choice(SOURCES),
        }
    data.update({k: v for k, v in overrides.items() if k not in ("site_id", "device_id")})
    return data
