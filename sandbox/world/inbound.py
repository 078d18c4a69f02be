"""Events into CHeKT from devices: the ids the Partner Event API names things by, the bridges'
local API tokens and channels, the inbound log, and the media a partner uploads.

The Event API names a site by a 6-character ``location_id``, its bridge (the recorder) by a
6-character ``recorder_id`` and a camera by a UUID. The sandbox derives them from the record's
integer ids (an affine map, so a location id decodes straight back to its site; a UUIDv5 per
camera), so they are stable for a world and need no table. A bridge's API token is an HMAC of
its device id under a key the store keeps, so a token names its bridge and cannot be guessed.

Every accepted inbound event is a row of ``inbound``: the partner's ``event_id`` makes a resend
answer what the first send was told, and the control API lists them for tests to wait on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sandbox.errors import ValidationFailed
from sandbox.store import Row
from sandbox.vocabulary import INBOUND_SOURCES
from sandbox.world.context import World

SOURCES = INBOUND_SOURCES
EVENT_TYPES = ("alarm", "trouble", "arming")
# what event_status each event type takes: an alarm is raised; a trouble starts or clears; an
# arming event names the state ("armed" is armed_away)
EVENT_STATUSES: dict[str, tuple[str, ...]] = {
    "alarm": ("active",),
    "trouble": ("active", "restored"),
    "arming": ("armed", "armed_away", "armed_stay", "armed_night", "armed_custom", "disarmed"),
}
MEDIA_KINDS = {"snapshot": "image/jpeg", "clip": "video/mp4"}
UPLOAD_LIMITS = {"snapshot": 4 << 20, "clip": 32 << 20}  # bytes per upload
UPLOAD_LIFETIME = 900  # seconds of sandbox time an upload URL works (15 min)
BRIDGE_MAX_BODY = 16 << 10  # a bridge's local API takes small JSON bodies only
ID_PATTERN = re.compile(r"[A-Z0-9]{6}")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_SPACE = len(_ALPHABET) ** 6
# (multiplier, offset) per kind of id: multipliers coprime with 36, so each map is a bijection
_MAPS = {"location": (1_000_003, 0x5A1E5), "recorder": (998_651, 0x2B17F)}
_CAMERA_NAMESPACE = uuid.UUID("6f1c2a8e-3d4b-5c6d-8e9f-0a1b2c3d4e5f")
_KEY_META = "bridge_hmac"
_TOKEN = re.compile(r"ckb_([1-9][0-9]{0,17})_([0-9a-f]{32})")


def _encode(number: int, kind: str) -> str:
    multiplier, offset = _MAPS[kind]
    value = (number * multiplier + offset) % _SPACE
    letters = []
    for _ in range(6):
        value, digit = divmod(value, len(_ALPHABET))
        letters.append(_ALPHABET[digit])
    return "".join(reversed(letters))


def _decode(text: str, kind: str) -> int:
    multiplier, offset = _MAPS[kind]
    value = 0
    for letter in text:
        value = value * len(_ALPHABET) + _ALPHABET.index(letter)
    return ((value - offset) * pow(multiplier, -1, _SPACE)) % _SPACE


def location_id(site_id: int) -> str:
    return _encode(site_id, "location")


def recorder_id(bridge_id: int) -> str:
    return _encode(bridge_id, "recorder")


def camera_id(device_id: int) -> str:
    return str(uuid.uuid5(_CAMERA_NAMESPACE, f"camera {device_id}"))


# ---- bridges ---------------------------------------------------------------------------------


def _token_key(world: World) -> bytes:
    value = world.store.get_meta(_KEY_META)
    if value is None:
        value = secrets.token_hex(32)
        world.store.set_meta(_KEY_META, value)
    return bytes.fromhex(value)


def api_token(world: World, bridge_id: int) -> str:
    """The bridge's local API token (``Basic apikey:<token>``), the same for the life of
    the store."""
    mac = hmac.new(_token_key(world), f"bridge {bridge_id}".encode(), hashlib.sha256)
    return f"ckb_{bridge_id}_{mac.hexdigest()[:32]}"


def bridge_of_token(world: World, token: str) -> Row | None:
    """The bridge a token belongs to, or None (a token of a bridge no longer in the world,
    or one this store never issued)."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    bridge_id = int(match[1])
    if not hmac.compare_digest(api_token(world, bridge_id), token):
        return None
    return world.store.one(
        "SELECT d.*, s.dealer_id FROM devices d JOIN sites s USING (site_id) "
        "WHERE d.device_id = ? AND d.device_type = 'bridge'",
        (bridge_id,),
    )


def _channel(zone_number: str | None) -> int | None:
    text = (zone_number or "").strip()
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) <= 999 else None


def channel_devices(world: World, site_id: int) -> dict[int, Row]:
    """The site's channels: each camera's or zone's number, and the device on it (a camera
    before any other device on the same number)."""
    rows = world.store.all(
        "SELECT * FROM devices WHERE site_id = ? AND device_type != 'bridge' "
        "ORDER BY device_type != 'camera', device_id",
        (site_id,),
    )
    found: dict[int, Row] = {}
    for row in rows:
        number = _channel(row["zone_number"])
        if number is not None:
            found.setdefault(number, row)
    return dict(sorted(found.items()))


def bridges(world: World, url: str | None) -> list[dict[str, Any]]:
    """Every bridge, as ``/_sandbox/credentials`` lists it: where its local API answers
    (``url``; None when the listener is off), its token and channels, and the ids the Event
    API names its site, itself and its cameras by."""
    rows = world.store.all(
        "SELECT d.device_id, d.site_id, s.dealer_id FROM devices d JOIN sites s USING (site_id) "
        "WHERE d.device_type = 'bridge' ORDER BY d.device_id"
    )
    listed = []
    for row in rows:
        channels = channel_devices(world, row["site_id"])
        listed.append(
            {
                "bridge_id": row["device_id"],
                "dealer_id": row["dealer_id"],
                "site_id": row["site_id"],
                "channels": list(channels),
                "url": url,
                "api_token": api_token(world, row["device_id"]),
                "location_id": location_id(row["site_id"]),
                "recorder_id": recorder_id(row["device_id"]),
                "cameras": [
                    {
                        "channel": number,
                        "device_id": device["device_id"],
                        "camera_id": camera_id(device["device_id"]),
                    }
                    for number, device in channels.items()
                    if device["device_type"] == "camera"
                ],
            }
        )
    return listed


# ---- the Event API's targets -------------------------------------------------------------------


def find_site(world: World, location: str) -> Row:
    site = world.store.one(
        "SELECT * FROM sites WHERE site_id = ?", (_decode(location, "location"),)
    )
    if site is None or location_id(site["site_id"]) != location:
        raise ValidationFailed("location_id", f"no site has location_id {location!r}")
    return site


def find_recorder(world: World, site: Row, recorder: str) -> Row:
    row = world.store.one(
        "SELECT * FROM devices WHERE device_id = ? AND site_id = ? AND device_type = 'bridge'",
        (_decode(recorder, "recorder"), site["site_id"]),
    )
    if row is None or recorder_id(row["device_id"]) != recorder:
        raise ValidationFailed(
            "recorder_id", f"no bridge with recorder_id {recorder!r} at location {site['site_id']}"
        )
    return row


def find_camera(world: World, site: Row, camera: str) -> tuple[int, Row]:
    """The camera and its channel."""
    for number, device in channel_devices(world, site["site_id"]).items():
        if device["device_type"] == "camera" and camera_id(device["device_id"]) == camera:
            return number, device
    raise ValidationFailed("camera_id", f"no camera with camera_id {camera} at that location")


# ---- the inbound log ---------------------------------------------------------------------------


@dataclass
class Inbound:
    """One event a device or a partner sent, with what it is about."""

    source: str
    client_id: str
    event_type: str
    event_status: str | None
    site: Row
    device: Row | None
    channel: int | None
    description: str | None = None
    event_key: str | None = None
    fingerprint: str = ""  # what was asked, for a resend to be compared with


def fingerprint(values: dict[str, Any]) -> str:
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def logged(world: World, source: str, client_id: str, event_key: str) -> Row | None:
    return world.store.one(
        "SELECT * FROM inbound WHERE source = ? AND client_id = ? AND event_key = ?",
        (source, client_id, event_key),
    )


def remember(
    world: World,
    event: Inbound,
    alarm_id: str | None,
    happenings: list[str],
    answer: dict[str, Any],
    request_id: str | None,
) -> int:
    return world.store.insert(
        "inbound",
        {
            "source": event.source,
            "client_id": event.client_id,
            "event_key": event.event_key,
            "fingerprint": event.fingerprint,
            "dealer_id": event.site["dealer_id"],
            "site_id": event.site["site_id"],
            "device_id": event.device["device_id"] if event.device else None,
            "channel": event.channel,
            "event_type": event.event_type,
            "event_status": event.event_status,
            "description": event.description,
            "alarm_id": alarm_id,
            "record_events": json.dumps(happenings),
            "answer": json.dumps(answer),
            "request_id": request_id,
            "created_at": world.now(),
        },
    )


def view(world: World, row: Row) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "source": row["source"],
        "client_id": row["client_id"],
        "event_id": row["event_key"],
        "dealer_id": row["dealer_id"],
        "site_id": row["site_id"],
        "device_id": row["device_id"],
        "channel": row["channel"],
        "event_type": row["event_type"],
        "event_status": row["event_status"],
        "description": row["description"],
        "alarm_id": row["alarm_id"],
        "record_event_ids": json.loads(row["record_events"]),
        "request_id": row["request_id"],
        "received_at": world.stamp(row["created_at"]),
    }


def listing(world: World, filters: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Inbound events matching ``filters`` (source, channel, site_id, event_type, alarm_id,
    since_seq), oldest first."""
    where, params = ["seq > ?"], [filters.get("since_seq", 0)]
    for name in ("source", "channel", "site_id", "event_type"):
        if filters.get(name) is not None:
            where.append(f"{name} = ?")
            params.append(filters[name])
    rows = world.store.all(
        f"SELECT * FROM inbound WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
        (*params, limit),
    )
    return [view(world, row) for row in rows]


# ---- uploaded media ----------------------------------------------------------------------------


def media_id(alarm_id: str | None, event_key: str) -> str:
    """What an upload replaces: the alarm's media (its links then show the upload), or the
    event's own when it made no alarm."""
    return alarm_id or f"event-{event_key}"


def store_upload(world: World, media: str, kind: str, content_type: str, data: bytes) -> None:
    """Keep an upload (a second upload of the same media replaces the first)."""
    world.store.execute(
        "INSERT OR REPLACE INTO uploads (media_id, kind, content_type, data, uploaded_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (media, kind, content_type, data, world.now()),
    )


def uploaded(world: World, media: str, kind: str) -> bytes | None:
    data = world.store.scalar(
        "SELECT data FROM uploads WHERE media_id = ? AND kind = ?", (media, kind)
    )
    return None if data is None else bytes(data)


def answer_of(row: Row) -> dict[str, Any]:
    """What the first send of a logged event was told (a resend is told it again)."""
    found: dict[str, Any] = json.loads(row["answer"])
    return found
