"""The dealer Public API (``/ext/v1``): a dealer API key, the dealer's sites, the shapes the
live service sends (bare arrays; errors that also carry ``detail``)."""

from __future__ import annotations

from typing import Any

from sandbox.api.openapi.schema import (
    key_operation,
    listed,
    named,
    operation,
    query,
    required,
)
from sandbox.world.fields import ZONE

DEALER_KEY = "dealerKey"
TAG = "Dealer API"
SITE = "/ext/v1/sites/{site_id}"
INTEGER = {"type": "integer"}
TEXT = {"type": "string"}
MAYBE_TEXT = {"type": ["string", "null"]}


DEALER_PARTITION = required("DealerPartition", partition_id=INTEGER, partition_name=TEXT)
DEALER_SITE = required(
    "DealerSite",
    site_id=INTEGER,
    site_name=TEXT,
    address=TEXT,
    account_number=TEXT,
    dealer_name=TEXT,
    is_activated={"type": "boolean"},
    is_partition_enabled={"type": "boolean"},
    partitions=listed(DEALER_PARTITION),
)


ARMING_STATUS = {"title": "DealerArmingStatus", "enum": ["armed", "disarmed"]}
DEALER_ARMING = required(
    "DealerArming",
    arming_status=ARMING_STATUS,
    arming_updated_at={
        "type": ["string", "null"],
        "description": "when a partition last changed; null before any change",
    },
)
DEALER_PARTITION_ARMING = required(
    "DealerPartitionArming",
    partition_id=INTEGER,
    partition_name=TEXT,
    partition_number=INTEGER,
    arming_status=ARMING_STATUS,
)
ZONE_NUMBER = {"type": "string", "pattern": f"^{ZONE.pattern}$"}
_ARMING_FIELDS: dict[str, Any] = {
    "user": {
        "anyOf": [{"type": "string", "minLength": 1, "maxLength": 128}, {"type": "integer"}],
        "description": "who armed or disarmed (the live client's field)",
    },
    "mode": {
        "title": "DealerArmingMode",
        "enum": ["away", "stay", "night", "custom"],
        "description": "documented; arm without it is away (ignored by disarm)",
    },
    "user_code": {"type": "string", "pattern": "^[0-9]{4,8}$", "description": "documented"},
    "bypass_zones": {"type": "array", "maxItems": 256, "items": ZONE_NUMBER},
    "force_arm": {"type": "boolean"},
}
ARMING_REQUEST = named(
    "DealerArmingRequest",
    {"type": "object", "additionalProperties": False, "properties": _ARMING_FIELDS},
)
PARTITION_ARMING_REQUEST = named(
    "DealerPartitionArmingRequest",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["partition_ids"],
        "properties": {
            "partition_ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": 64,
                "items": {"type": "integer", "minimum": 1},
            },
            **_ARMING_FIELDS,
        },
    },
)


def op(
    summary: str,
    ok: int,
    result: dict[str, Any] | None,
    request: dict[str, Any] | None = None,
    params: tuple[str, ...] = (),
    queries: tuple[dict[str, Any], ...] = (),
    *,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A dealer API operation: any API key of the dealer, no scope."""
    found = operation(summary, None, ok, result, request, params, queries, tag=TAG)
    return key_operation(found, DEALER_KEY, "the dealer API", errors=errors)


def _site_paths() -> dict[str, Any]:
    sites = op(
        "The dealer's sites, as a bare array",
        200,
        listed(DEALER_SITE),
        queries=(
            query("search", TEXT, "only sites whose name or account number contains this"),
            query("status", {"enum": ["activated", "deactivated"]}, "only these sites"),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most"),
            query("page", {"type": "integer", "minimum": 1, "maximum": 10**6}, "the page, from 1"),
            query("per_page", {"type": "integer", "minimum": 1, "maximum": 100}, "page size"),
        ),
        errors={"422": "`validation_failed`: a query parameter out of range or unknown"},
    )
    return {"/ext/v1/sites": {"get": sites}}


NOT_OURS = {"404": "`site_not_found`: no such site, or another dealer's"}


def _arming_paths() -> dict[str, Any]:
    found: dict[str, Any] = {
        f"{SITE}/arming": {
            "get": op(
                "The site's arming status", 200, DEALER_ARMING, params=("site_id",), errors=NOT_OURS
            )
        },
        f"{SITE}/partition-arming": {
            "get": op(
                "Each partition's arming status, as a bare array",
                200,
                listed(DEALER_PARTITION_ARMING),
                params=("site_id",),
                errors=NOT_OURS,
            )
        },
    }
    for action in ("arm", "disarm"):
        whole = op(
            f"{action.title()} every partition of the site: a site.{action}ed webhook each",
            200,
            DEALER_ARMING,
            ARMING_REQUEST,
            ("site_id",),
            errors={
                **NOT_OURS,
                "422": "`validation_failed`: a field out of range (detail names it)",
            },
        )
        whole["requestBody"]["required"] = False  # an empty body arms away
        found[f"{SITE}/arming/actions/{action}"] = {"post": whole}
        parts = op(
            f"{action.title()} the partitions named: a site.{action}ed webhook each",
            200,
            listed(DEALER_PARTITION_ARMING),
            PARTITION_ARMING_REQUEST,
            ("site_id",),
            errors={
                **NOT_OURS,
                "422": "`validation_failed`: a partition the site does not have, or a field "
                "out of range (detail names the field: partition_ids)",
            },
        )
        found[f"{SITE}/partition-arming/actions/{action}"] = {"post": parts}
    return found


DEVICE_STATUS = {"title": "DealerDeviceStatus", "enum": ["online", "offline"]}
ZONE_NUMBERS = {"type": "array", "items": ZONE_NUMBER}
DEALER_CAMERA = required(
    "DealerCamera",
    device_id=INTEGER,
    name=TEXT,
    status=DEVICE_STATUS,
    mjpeg_url={
        "type": "string",
        "format": "uri",
        "description": "the camera's live multipart/x-mixed-replace JPEG stream (GET "
        "/api/v1/mjpeg), its short-lived access_token included: put it into an <img>",
    },
    zone_numbers=ZONE_NUMBERS,
)
DEALER_ZONE = required(
    "DealerZone",
    zone_number=ZONE_NUMBER,
    zone_name=TEXT,
    device_id={"type": "integer", "description": "the camera that covers the zone"},
    zone_numbers={**ZONE_NUMBERS, "description": "every zone that camera covers"},
)
DEALER_AUDIO_DEVICE = required(
    "DealerAudioDevice",
    device_id=INTEGER,
    name=TEXT,
    status=DEVICE_STATUS,
    model=MAYBE_TEXT,
    mac_address=MAYBE_TEXT,
    zone_numbers=ZONE_NUMBERS,
)
DEALER_BRIDGE = required(
    "DealerBridge",
    bridge_id=INTEGER,
    name=TEXT,
    serial_number=MAYBE_TEXT,
    model=MAYBE_TEXT,
    firmware_version=MAYBE_TEXT,
    status=DEVICE_STATUS,
    mac_address=MAYBE_TEXT,
    ip_address={"type": "string", "format": "ipv4"},
    channels={"type": ["integer", "null"]},
)


def _device_paths() -> dict[str, Any]:
    lists = (
        ("cameras", "The site's cameras, each with its live stream", DEALER_CAMERA),
        ("zones", "The site's zones, each with the camera that covers it", DEALER_ZONE),
        (
            "audio-devices",
            "The site's audio devices (the sandbox's record has none: an empty array)",
            DEALER_AUDIO_DEVICE,
        ),
        ("bridges", "The site's bridges", DEALER_BRIDGE),
    )
    return {
        f"{SITE}/{name}": {
            "get": op(summary, 200, listed(item), params=("site_id",), errors=NOT_OURS)
        }
        for name, summary, item in lists
    }


def paths() -> dict[str, Any]:
    return {**_site_paths(), **_arming_paths(), **_device_paths()}


SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "chekt_test_...",
    "description": "A dealer API key (any key /_sandbox/credentials lists), which reaches its "
    "dealer's sites; the dealer API takes nothing else.",
}
