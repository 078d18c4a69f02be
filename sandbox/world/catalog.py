"""CHeKT's webhook event catalogue: one table of every event type, with its ``data`` fields
(each with the JSON Schema partners get and the way the sandbox draws it), the scopes that hear
it, and the names the older formats give it. Everything that lists event types (the webhook
profiles, subscriptions, the OpenAPI document, the Hypothesis strategies, the adversarial
steps) reads this table, so the payloads, the schemas and the formats cannot drift apart.

Every ``data`` carries the same integer ``site_id`` / ``device_id`` / ``dealer_id`` the
Partner API uses plus the matching ``external_*_id``, so a partner can join a webhook to its
own records. Values are drawn from a seeded RNG: the same seed yields the same events.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sandbox.errors import ValidationFailed
from sandbox.store import Row
from sandbox.vocabulary import RESOLUTIONS
from sandbox.world import World, arming, media

PRIORITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
TRIGGERS = ("motion", "panic", "door-forced", "glass-break", "custom")
RESPONDERS = ("guard", "police", "fire", "medical")
METHODS = ("sms", "email", "push", "call")

SOURCES = ("keypad", "app", "schedule", "partner_api", "dealer_api")
FIRMWARE = ("3.2.1", "3.2.4", "3.3.0", "3.4.2", "4.0.0")  # oldest first
DEVICE_TYPES = ("camera", "bridge")
CONTACT_ID_CODES = {
    "motion": 130,
    "panic": 120,
    "door-forced": 134,
    "glass-break": 130,
    "custom": 130,
}
# the alarm lifecycle's cadence, seconds after alarm.created (CHeKT's documented example)
LIFECYCLE = (("alarm.acknowledged", 40), ("alarm.dispatched", 90), ("alarm.resolved", 360))


@dataclass(frozen=True)
class Scene:
    """What one event is about, chosen before its fields are drawn."""

    world: World
    rng: random.Random
    site: Row
    device: Row | None
    alarm_id: str | None
    base_url: str
    at: float  # when the event happens, on the sandbox clock


@dataclass(frozen=True)
class Datum:
    """One field of an event's ``data``: its JSON Schema, and how the sandbox draws it (from
    the scene and the fields drawn before it)."""

    name: str
    schema: dict[str, Any]
    draw: Callable[[Scene, dict[str, Any]], Any]


def _always(data: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class Variant:
    """A name an older format gives an event type, and when (judged by the event's data):
    the first variant whose ``when`` holds names the event; none holding, it is not sent."""

    name: str
    when: Callable[[Mapping[str, Any]], bool] = _always
    about: str = ""  # what sends it, for the format's documentation


@dataclass(frozen=True)
class EventKind:
    device: Literal["none", "camera", "any"]  # which of the site's devices the event is about
    fields: tuple[Datum, ...]
    scopes: tuple[str, str]  # the Partner API scope and the Apps API scope that hear it
    # what happened, in one word: dealer-v1's ``status``, legacy-guide's device ``status``
    status: str | None = None
    legacy: str | None = None  # the legacy-guide name (None: that format does not send it)
    dealer_v1: tuple[Variant, ...] = ()  # the dealer-v1 names (none: not sent)
    about_alarm: bool = True  # False: the event names an alarm only when told which


INTEGER = {"type": "integer"}
TEXT = {"type": "string"}
MAYBE_TEXT = {"type": ["string", "null"]}
EXTERNAL_DEALER = {  # added at delivery, for the client that made the subscription
    "type": ["string", "null"],
    "description": "the dealer's id in the partner's records, on a partner's subscriptions",
}
_SIGNED = (
    "; its access_token authorizes it (no other credential), for media_url_lifetime seconds "
    "of sandbox time"
)
MEDIA_URL = {"type": "string", "format": "uri", "description": "a JPEG frame" + _SIGNED}
CLIP_URL = {"type": "string", "format": "uri", "description": "an H.264 MP4 clip" + _SIGNED}
TRACKING_URL = {"type": "string", "format": "uri", "description": "the responder" + _SIGNED}
STAMP = {
    "type": "string",
    "format": "date-time",
    "description": "a UTC time as the sandbox renders times",
}


def one_of(values: tuple[Any, ...], title: str | None = None) -> dict[str, Any]:
    """A closed set (titled: generated code names one enum after it, wherever it is used)."""
    return {**({"title": title} if title else {}), "enum": list(values)}


def _choice(name: str, values: tuple[Any, ...], title: str) -> Datum:
    return Datum(name, one_of(values, title), lambda s, d: s.rng.choice(values))


def _sample(name: str, values: tuple[Any, ...]) -> Datum:
    """A free value, drawn from a few realistic ones."""
    schema = {"type": "integer" if isinstance(values[0], int) else "string", "examples": [*values]}
    return Datum(name, schema, lambda s, d: s.rng.choice(values))


def _site(column: str, schema: dict[str, Any] = INTEGER) -> Datum:
    return Datum(column, schema, lambda s, d: s.site[column])


def _device(column: str, schema: dict[str, Any] = INTEGER) -> Datum:
    return Datum(column, schema, lambda s, d: s.device[column] if s.device else None)


def _now(name: str) -> Datum:
    return Datum(name, STAMP, lambda s, d: s.world.stamp(s.at))


def _hex_id(name: str, prefix: str, bits: int) -> Datum:
    digits = bits // 4
    schema = {
        "type": "string",
        "pattern": f"^{prefix}[0-9a-f]{{{digits}}}$",
        "examples": [f"{prefix}{'5e1f0c9a3b7d'[:digits]}"],
    }
    return Datum(name, schema, lambda s, d: f"{prefix}{s.rng.getrandbits(bits):0{digits}x}")


def _camera(s: Scene) -> dict[str, Any]:
    """What a frame of the scene's camera shows in its on-screen display."""
    device = s.device or {}
    return {
        "alarm_id": s.alarm_id,
        "site_id": s.site["site_id"],
        "site": s.site["name"],
        "device_id": device.get("device_id"),
        "camera": device.get("name"),
        "channel": device.get("zone_number"),
        "at": round(s.at, 3),
    }


def _media(s: Scene, media_id: str | None, extension: str) -> str:
    claims = {**_camera(s), "kind": media.KINDS[extension], "id": media_id}
    return media.link(s.world.store, s.base_url, claims, extension)


def _tracking(s: Scene, d: dict[str, Any]) -> str:
    claims = media.tracking_claims(str(s.alarm_id), s.site["site_id"], d, s.at)
    return media.link(s.world.store, s.base_url, claims, "")


def _partition(s: Scene, d: dict[str, Any]) -> int:
    numbers = [row["partition"] for row in arming.partitions(s.world, s.site["site_id"])]
    return s.rng.choice(numbers) if numbers else 1


def _later_firmware(s: Scene, d: dict[str, Any]) -> str:
    return s.rng.choice(FIRMWARE[FIRMWARE.index(d["from_version"]) + 1 :])


def _contacts(s: Scene, d: dict[str, Any]) -> list[Row]:
    return s.world.store.all(
        "SELECT contact_id, first_name, last_name, phone_number, email FROM contacts "
        "WHERE site_id = ? ORDER BY contact_id",
        (s.site["site_id"],),
    )


CONTACT = {
    "title": "VerificationContact",
    "type": "object",
    "required": ["contact_id", "first_name", "last_name", "phone_number", "email"],
    "properties": {
        "contact_id": INTEGER,
        "first_name": TEXT,
        "last_name": TEXT,
        "phone_number": MAYBE_TEXT,
        "email": MAYBE_TEXT,
    },
}
ALARM_ID = Datum("alarm_id", {"type": "string", "examples": ["A-10293"]}, lambda s, d: s.alarm_id)


def _id(kind: dict[str, Any], example: Any) -> dict[str, Any]:
    """An id's schema, with the seeded world's first as its example."""
    return {**kind, "examples": [example]}


SITE_IDS = (
    _site("dealer_id", _id(INTEGER, 1001)),
    _site("site_id", _id(INTEGER, 10001)),
    _site("external_site_id", _id(TEXT, "site-1001-1")),
)
DEVICE_IDS = (
    _device("device_id", _id(INTEGER, 100002)),
    _device("external_device_id", _id(TEXT, "cam-10001-1")),
)
DEVICE_STATUS = (
    *SITE_IDS,
    *DEVICE_IDS,
    _device("device_type", one_of(DEVICE_TYPES, "DeviceType")),
    _device("name", MAYBE_TEXT),
    _now("last_seen"),
)


def _one_partition(s: Scene, d: dict[str, Any]) -> bool:
    return len(arming.partitions(s.world, s.site["site_id"])) <= 1


WHOLE_SITE = {
    "type": "boolean",
    "description": "true when the change was asked for every partition at once (partition "
    '"all", and always on a site with one partition): the record logs one happening per '
    "partition, each marked",
}
ALARM_SCOPES = ("read:sites", "events:read")
DEVICE_SCOPES = ("read:devices", "devices:read")
# dealer-v1 names arming for the whole site or one partition, and networks by device type
ARMING = (
    Variant(
        "arming_status",
        lambda data: bool(data.get("whole_site")),
        "the whole site armed or disarmed (every partition, or a site with one): sent once, "
        "with the last partition's happening, listing every partition",
    ),
    Variant("partition_arming_status", about="one partition of a site with several"),
)
NETWORK = (
    Variant(
        "camera_network",
        lambda data: data.get("device_type") != "bridge",
        "a camera went online or offline",
    ),
    Variant("bridge_network", about="a bridge went online or offline"),
)


def _site_state(states: tuple[str, ...], title: str, status: str) -> EventKind:
    return EventKind(
        "none",
        (
            *SITE_IDS,
            _choice("state", states, title),
            Datum("partition", {"type": "integer", "minimum": 1}, _partition),
            Datum("whole_site", WHOLE_SITE, _one_partition),
            Datum("user_id", TEXT, lambda s, d: f"user_{s.rng.randrange(1, 40)}"),
            _choice("source", SOURCES, "ArmingSource"),
        ),
        ("read:sites", "sites:read"),
        status,
        legacy=f"site.{status}",
        dealer_v1=ARMING,
    )


def _device_status(status: str) -> EventKind:
    return EventKind(
        "any", DEVICE_STATUS, DEVICE_SCOPES, status, "device.status_changed", dealer_v1=NETWORK
    )


EVENTS: dict[str, EventKind] = {
    "alarm.created": EventKind(
        "camera",
        (
            ALARM_ID,
            *SITE_IDS,
            *DEVICE_IDS,
            _choice("priority", PRIORITIES, "AlarmPriority"),
            _choice("trigger", TRIGGERS, "AlarmTrigger"),
            Datum("location", TEXT, lambda s, d: (s.device or {}).get("name") or "Camera"),
            _device("zone_number", TEXT),
            Datum(
                "contact_id_code",
                one_of(tuple(sorted(set(CONTACT_ID_CODES.values()))), "ContactIdCode"),
                lambda s, d: CONTACT_ID_CODES[d["trigger"]],
            ),
            Datum("snapshot_url", MEDIA_URL, lambda s, d: _media(s, s.alarm_id, "jpg")),
            Datum("clip_url", CLIP_URL, lambda s, d: _media(s, s.alarm_id, "mp4")),
        ),
        ALARM_SCOPES,
        "triggered",
        "alarm.triggered",
        (Variant("alarm_event", about="a new alarm (alarm.created)"),),
    ),
    "alarm.acknowledged": EventKind(
        "none",
        (
            ALARM_ID,
            *SITE_IDS,
            _sample("operator_id", ("op_jsmith", "op_mlee", "op_akim", "op_rdiaz")),
            _sample("reason", ("video verified", "reviewing", "customer called")),
        ),
        ALARM_SCOPES,
    ),
    "alarm.dispatched": EventKind(
        "none",
        (
            ALARM_ID,
            *SITE_IDS,
            _hex_id("responder_id", "rsp_", 20),
            _choice("responder_type", RESPONDERS, "ResponderType"),
            Datum(
                "eta_seconds",
                {"type": "integer", "minimum": 0},
                lambda s, d: s.rng.randrange(180, 1800, 30),
            ),
            Datum("tracking_url", TRACKING_URL, _tracking),
        ),
        ALARM_SCOPES,
    ),
    "alarm.resolved": EventKind(
        "none",
        (
            ALARM_ID,
            *SITE_IDS,
            _choice("resolution", RESOLUTIONS, "AlarmResolution"),
            _sample("notes", ("intruder fled", "wind moved a sign", "police on site")),
        ),
        ALARM_SCOPES,
        legacy="alarm.cleared",
    ),
    "device.online": _device_status("online"),
    "device.offline": _device_status("offline"),
    "device.firmware_updated": EventKind(
        "any",
        (
            *SITE_IDS,
            *DEVICE_IDS,
            Datum("from_version", TEXT, lambda s, d: s.rng.choice(FIRMWARE[:-1])),
            Datum("to_version", TEXT, _later_firmware),
        ),
        DEVICE_SCOPES,
    ),
    "verification.requested": EventKind(
        "none",
        (
            _hex_id("verification_id", "ver_", 40),
            ALARM_ID,
            *SITE_IDS,
            _choice("method", METHODS, "VerificationMethod"),
            Datum("contacts", {"type": "array", "items": CONTACT}, _contacts),
            _sample("timeout_seconds", (60, 120, 300)),
        ),
        ALARM_SCOPES,
    ),
    "snapshot.created": EventKind(
        "camera",
        (
            _hex_id("snapshot_id", "snap_", 40),
            *SITE_IDS,
            *DEVICE_IDS,
            Datum(
                "alarm_id",
                {"type": ["string", "null"], "description": "the alarm it shows, if any"},
                lambda s, d: s.alarm_id,
            ),
            Datum("url", MEDIA_URL, lambda s, d: _media(s, d["snapshot_id"], "jpg")),
            _now("captured_at"),
        ),
        ("read:sites", "snapshots:read"),
        "ready",
        # an alarm's frame: its video is ready (a snapshot an app asked for is no event_video)
        dealer_v1=(
            Variant(
                "event_video",
                lambda data: data.get("alarm_id") is not None,
                "an alarm's video is ready: a snapshot.created that names an alarm",
            ),
        ),
        about_alarm=False,
    ),
    "site.armed": _site_state(arming.ARMED_STATES, "ArmedState", "armed"),
    "site.disarmed": _site_state(("disarmed",), "DisarmedState", "disarmed"),
}
EVENT_TYPES = tuple(EVENTS)
EVENT_SCOPES = {event_type: kind.scopes for event_type, kind in EVENTS.items()}


def data_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type's ``data`` (a partner's ``data`` overrides, sent
    through the control API, may add fields)."""
    fields = EVENTS[event_type].fields
    return {
        "type": "object",
        "required": [f.name for f in fields],
        "properties": {
            **{f.name: f.schema for f in fields},
            "external_dealer_id": EXTERNAL_DEALER,
        },
    }


SITE_READS = {"sites": None, "monitoring_stations": None}  # what site_view reads
SITES_WITH_DEVICES = {"sites": frozenset({"site_id"}), "devices": frozenset({"site_id"})}
# what a happening's data and frames take from its device (never its status or firmware,
# which happenings change)
DEVICE_COLUMNS = (
    "device_id",
    "site_id",
    "external_device_id",
    "device_type",
    "name",
    "zone_number",
)
DEVICE_READS = {"devices": frozenset(DEVICE_COLUMNS)}
_DEVICES = f"SELECT {', '.join(DEVICE_COLUMNS)} FROM devices"


def _site_row(world: World, site_id: Any) -> Row | None:
    rows = world.store.remembered(
        "SELECT * FROM site_view WHERE site_id = ?", (site_id,), SITE_READS
    )
    return rows[0] if rows else None


def pick_site(world: World, rng: random.Random, site_id: Any, event_type: str) -> Row:
    """The site named, or a random one that can carry ``event_type``. (Sites and devices
    are read through the store's memory of the open transaction: a batch of happenings
    draws from them again and again and changes neither.)"""
    kind = EVENTS[event_type]
    if site_id is not None:
        row = _site_row(world, site_id)
        if row is None:
            raise ValidationFailed("site_id", f"site {site_id} does not exist")
        return row
    # a random site must be able to carry the event: one with a device where it needs one
    # (drawn among the ids, then read alone: a random event must not read every site)
    ids = world.store.remembered(
        "SELECT site_id FROM sites"
        + ("" if kind.device == "none" else " WHERE site_id IN (SELECT site_id FROM devices)")
        + " ORDER BY site_id",
        (),
        SITES_WITH_DEVICES,
    )
    if not ids:
        raise ValidationFailed("site_id", "the world has no site to emit this event for")
    row = _site_row(world, rng.choice(ids)["site_id"])
    assert row is not None  # its id was just read
    return row


def _pick_device(
    world: World, rng: random.Random, site: Row, device_id: Any, kind: str | None
) -> Row:
    if device_id is not None:
        row = world.store.one(
            f"{_DEVICES} WHERE device_id = ? AND site_id = ?", (device_id, site["site_id"])
        )
        if row is None:
            raise ValidationFailed(
                "device_id", f"device {device_id} is not at site {site['site_id']}"
            )
        return row
    sql = f"{_DEVICES} WHERE site_id = ?" + (" AND device_type = ?" if kind else "")
    rows = world.store.remembered(
        sql + " ORDER BY device_id", (site["site_id"], *([kind] if kind else [])), DEVICE_READS
    )
    if not rows:
        rows = world.store.remembered(
            f"{_DEVICES} WHERE site_id = ?", (site["site_id"],), DEVICE_READS
        )
    if not rows:
        raise ValidationFailed("device_id", f"site {site['site_id']} has no devices")
    return rng.choice(rows)


def build(
    world: World,
    rng: random.Random,
    event_type: str,
    overrides: Mapping[str, Any],
    base_url: str,
    at: float | None = None,
) -> dict[str, Any]:
    """The ``data`` of one event of ``event_type`` happening ``at`` (default: now), with
    ``overrides`` applied last."""
    kind = EVENTS.get(event_type)
    if kind is None:
        raise ValidationFailed(
            "type", f"unknown event type {event_type!r}; use one of {', '.join(EVENT_TYPES)}"
        )
    site = pick_site(world, rng, overrides.get("site_id"), event_type)
    alarm_id = overrides.get("alarm_id") or (
        f"A-{rng.randrange(10000, 99999)}" if kind.about_alarm else None
    )
    device = None
    if kind.device != "none":
        wanted = "camera" if kind.device == "camera" else None
        device = _pick_device(world, rng, site, overrides.get("device_id"), wanted)
    scene = Scene(world, rng, site, device, alarm_id, base_url, world.now() if at is None else at)
    data: dict[str, Any] = {}
    for datum in kind.fields:
        data[datum.name] = datum.draw(scene, data)
    data.update({k: v for k, v in overrides.items() if k not in ("site_id", "device_id")})
    return data
