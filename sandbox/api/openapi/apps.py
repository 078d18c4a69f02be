"""The CHeKT Apps API (``/v1``): an app's API key, one dealer, one Apps scope per operation.

Request bodies come from the fields the handlers validate with; what a field's check
function decides (labels, a partition, a confidence) is spelled out here. Objects carry
OpenAPI links to their own operations (an alarm to its moves and its camera, a device to its
snapshots, a snapshot taken to reading it), which clients and schemathesis' stateful runs
follow."""

from __future__ import annotations

from typing import Any

from sandbox.api import apps
from sandbox.api.openapi.objects import (
    ALARM_OBJECT,
    ALARM_STATE,
    APP_DEVICE,
    APP_SITE,
    ARMING_CHANGED,
    EVENT_PAGE,
    ID_NUMBER,
    SNAPSHOT_OBJECT,
    TEXT,
)
from sandbox.api.openapi.partner import PAGING, TOTAL
from sandbox.api.openapi.schema import (
    body,
    key_operation,
    link,
    listed,
    operation,
    query,
)
from sandbox.world import device_status
from sandbox.world.fields import SPACE
from sandbox.world.listing import TIMESTAMP_PATTERN

APP_KEY = "appKey"
TAG = "Apps API"
SITE = "/v1/sites/{site_id}"
DEVICE = "/v1/devices/{device_id}"
SNAPSHOT = "/v1/snapshots/{snapshot_id}"
ALARM = "/v1/alarms/{alarm_id}"
STREAM = "/v1/events/stream"


def _listing(*names: str) -> str:
    """A comma-separated list of ``names`` as the handlers read it: white space around an
    item and empty items are ignored, and at least one item is given."""
    item = "(?:" + "|".join(names) + ")"
    return f"^[{SPACE},]*{item}(?:[{SPACE}]*,[{SPACE},]*{item})*[{SPACE},]*$"


TYPES = query(
    "type",
    {"type": "string", "pattern": _listing(*(t.replace(".", r"\.") for t in apps.RECORD_TYPES))},
    "only these event types, joined with commas (types the key's scopes do not hear are "
    "left out, as they are from its webhooks)",
)
CURSOR = query(
    "cursor",
    {
        "type": "string",
        "format": "events-cursor",  # a name for fuzzers to learn (the suite teaches schemathesis)
        "pattern": "^[A-Za-z0-9_-]+$",
        "description": "opaque: page.cursor of an earlier answer",
        "examples": [apps.encode_cursor(100)],
    },
    "continue after the last event of the page that handed out this cursor",
)


# ---- request bodies --------------------------------------------------------------------------

PARTITION_INPUT = {
    "anyOf": [{"const": "all"}, {"type": "integer", "minimum": 1}],
    "description": 'a partition number, or "all" (the default)',
}
ARMING_INPUT = body(
    apps.ARMING_FIELDS,
    title="ArmingStateInput",
    enums={"state": "ArmingState"},
    given={
        "partition": PARTITION_INPUT,
        "timestamp": {
            "anyOf": [{"type": "string", "pattern": f"^{TIMESTAMP_PATTERN}$"}, {"type": "null"}],
            "description": "when the panel changed (checked; the record keeps its own clock)",
        },
    },
)
DEVICE_PATCH = body(
    device_status.PATCH_FIELDS,
    partial=True,
    title="AppDevicePatch",
    enums={"status": "DeviceStatus"},
    given={
        "labels": {
            "anyOf": [
                {
                    "type": "array",
                    "maxItems": 50,
                    "items": {"type": "string", "minLength": 1, "maxLength": 64},
                },
                {"type": "null"},
            ]
        },
        "configuration": {
            "anyOf": [{"type": "object"}, {"type": "null"}],
            "description": "any JSON object of at most 16 KiB (null: empty)",
        },
    },
)
ACTION_ENUMS = {
    "verdict": "AnnotationVerdict",
    "responder_type": "ResponderType",
    "resolution": "AlarmResolution",
}
CONFIDENCE = {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "null"}]}
ACTION_TEXT = {
    "acknowledge": ("Acknowledge an alarm (from created)", "AcknowledgeRequest"),
    "escalate": ("Escalate an alarm (from created or acknowledged)", "EscalateRequest"),
    "annotate": ("Annotate an alarm (any time before it is resolved)", "AnnotateRequest"),
    "dispatch": ("Dispatch a responder (from acknowledged or escalated)", "DispatchRequest"),
    "resolve": ("Resolve an alarm (from any open state)", "ResolveRequest"),
}


# ---- operations ------------------------------------------------------------------------------


def _op(
    summary: str,
    scope: str,
    ok: int,
    result: dict[str, Any] | None,
    request: dict[str, Any] | None = None,
    params: tuple[str, ...] = (),
    queries: tuple[dict[str, Any], ...] = (),
    *,
    errors: dict[str, str] | None = None,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op = operation(summary, scope, ok, result, request, params, queries, tag=TAG, headers=headers)
    return key_operation(op, APP_KEY, "the Apps API", scope, errors)


def _links(op: dict[str, Any], status: str, links: dict[str, Any]) -> dict[str, Any]:
    op["responses"][status]["links"] = links
    return op


def _to(path: str, verb: str, name: str, source: str) -> dict[str, Any]:
    return link(path, verb, {f"path.{name}": source})


def _alarm_links(alarm: str) -> dict[str, Any]:
    """From an alarm (at the JSON pointer ``alarm`` of the response) to moving it and to its
    camera."""
    source = f"$response.body#{alarm}/alarm_id"
    moves = {
        name.title(): _to(f"{ALARM}/{name}", "post", "alarm_id", source) for name in apps.ACTIONS
    }
    return {**moves, "Device": _to(DEVICE, "get", "device_id", f"$response.body#{alarm}/device_id")}


def _device_links(source: str) -> dict[str, Any]:
    return {
        "Get": _to(DEVICE, "get", "device_id", source),
        "Patch": _to(DEVICE, "patch", "device_id", source),
        "Snapshots": _to(DEVICE + "/snapshots", "get", "device_id", source),
        "TakeSnapshot": _to(DEVICE + "/snapshot", "post", "device_id", source),
    }


INVALID = "`validation_failed` (with `field`): a query parameter or a body field"
NO_ALARM = "`alarm_not_found`: no such alarm in the key's dealer"
NO_DEVICE = "`device_not_found`: no such device in the key's dealer"


def _site_paths() -> dict[str, Any]:
    sites = _op(
        "The dealer's sites, with their arming",
        "sites:read",
        200,
        listed(APP_SITE),
        queries=PAGING,
        errors={"422": INVALID},
        headers=TOTAL,
    )
    arm = _op(
        "Record an arming change seen at the panel: one happening per partition",
        "events:write",
        200,
        ARMING_CHANGED,
        ARMING_INPUT,
        params=("site_id",),
        errors={
            "404": "`site_not_found`: no such site in the key's dealer",
            "422": INVALID + "; also a partition the site does not have",
        },
    )
    _links(
        sites,
        "200",
        {
            "ArmingState": _to(
                SITE + "/arming-state", "post", "site_id", "$response.body#/0/site_id"
            )
        },
    )
    return {"/v1/sites": {"get": sites}, SITE + "/arming-state": {"post": arm}}


def _device_paths() -> dict[str, Any]:
    one = ("device_id",)
    ids = query(
        "ids",
        {"type": "string", "pattern": _listing("[0-9]{1,18}")},
        "only these devices: 1 to 1000 ids joined with commas (white space around them is "
        "ignored); ids out of the key's reach are left out, as absent ones are",
    )
    devices = _op(
        "The dealer's devices, or a batch of them by id",
        "devices:read",
        200,
        listed(APP_DEVICE),
        queries=(*PAGING, ids),
        errors={"422": INVALID},
        headers=TOTAL,
    )
    get = _op("A device", "devices:read", 200, APP_DEVICE, params=one, errors={"404": NO_DEVICE})
    patch = _op(
        "Change a device's name, labels, group or configuration; a status or firmware change "
        "is a happening (device.online / device.offline / device.firmware_updated)",
        "devices:write",
        200,
        APP_DEVICE,
        DEVICE_PATCH,
        params=one,
        errors={"404": NO_DEVICE, "422": INVALID + "; read-only fields cannot be set"},
    )
    snapshots = _op(
        "A device's snapshots, newest first",
        "devices:read",
        200,
        listed(SNAPSHOT_OBJECT),
        params=one,
        queries=PAGING,
        errors={"404": NO_DEVICE, "422": INVALID},
        headers=TOTAL,
    )
    take = _op(
        "Take a snapshot now (a snapshot.created happening)",
        "devices:write",
        201,
        SNAPSHOT_OBJECT,
        params=one,
        errors={"404": NO_DEVICE, "422": "`validation_failed`: the device is not a camera"},
    )
    item = "$request.path.device_id"
    _links(devices, "200", _device_links("$response.body#/0/device_id"))
    _links(get, "200", {k: v for k, v in _device_links(item).items() if k != "Get"})
    first = "$response.body#/0/snapshot_id"
    _links(snapshots, "200", {"Get": _to(SNAPSHOT, "get", "snapshot_id", first)})
    created = "$response.body#/snapshot_id"
    _links(take, "201", {"Get": _to(SNAPSHOT, "get", "snapshot_id", created)})
    snapshot = _op(
        "A snapshot",
        "snapshots:read",
        200,
        SNAPSHOT_OBJECT,
        params=("snapshot_id",),
        errors={"404": "`snapshot_not_found`: no such snapshot in the key's dealer"},
    )
    return {
        "/v1/devices": {"get": devices},
        DEVICE: {"get": get, "patch": patch},
        DEVICE + "/snapshots": {"get": snapshots},
        DEVICE + "/snapshot": {"post": take},
        SNAPSHOT: {"get": snapshot},
    }


def _event_paths() -> dict[str, Any]:
    since = query(
        "since",
        {"type": "string", "pattern": f"^{TIMESTAMP_PATTERN}$"},
        "only events at or after this time (ISO 8601)",
    )
    limit = query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        "page size",
    )
    listing = _op(
        "The record's events the key may hear, oldest first, paged by cursor",
        "events:read",
        200,
        EVENT_PAGE,
        queries=(limit, CURSOR, since, TYPES),
        errors={"422": INVALID + " (a cursor this API did not hand out, an unknown type)"},
    )
    _links(
        listing,
        "200",
        {"Next": link("/v1/events", "get", {"query.cursor": "$response.body#/page/cursor"})},
    )
    return {"/v1/events": {"get": listing}, STREAM: {"get": _stream()}}


def _stream() -> dict[str, Any]:
    resume = {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "description": "the numeric event_id of the last message received: resume after it",
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    }
    op = _op(
        "The record's events as they happen, as server-sent events",
        "events:read",
        200,
        None,
        queries=(CURSOR, TYPES),
        errors={"422": INVALID},
    )
    op["parameters"].append(resume)
    op["description"] += (
        " Never ends: each event is a message `id: <event_id>` (the numeric id), "
        "`event: <type>`, `data: <the envelope /v1/events lists>`; a `: keep-alive` comment "
        "comes every 15 s. Starts after `Last-Event-ID`, else after `cursor`, else at the "
        "next event to happen."
    )
    op["responses"]["200"]["content"] = {
        "text/event-stream": {
            "schema": {"type": "string", "description": "id / event / data lines, per message"}
        }
    }
    return op


def _alarm_paths() -> dict[str, Any]:
    one = ("alarm_id",)
    filters = (
        query("state", ALARM_STATE, "only alarms in this state"),
        query("site_id", ID_NUMBER, "only this site's"),
        query("device_id", ID_NUMBER, "only this device's"),
        query("priority", TEXT, "only this priority (LOW, MEDIUM, HIGH, CRITICAL)"),
    )
    listing = _op(
        "The dealer's alarms, newest first",
        "events:read",
        200,
        listed(ALARM_OBJECT),
        queries=(*PAGING, *filters),
        errors={"422": INVALID},
        headers=TOTAL,
    )
    first = "$response.body#/0/alarm_id"
    _links(listing, "200", {"Get": _to(ALARM, "get", "alarm_id", first), **_alarm_links("/0")})
    get = _op("An alarm", "events:read", 200, ALARM_OBJECT, params=one, errors={"404": NO_ALARM})
    _links(get, "200", _alarm_links(""))
    paths: dict[str, Any] = {"/v1/alarms": {"get": listing}, ALARM: {"get": get}}
    for name, (scope, fields, _) in apps.ACTIONS.items():
        summary, title = ACTION_TEXT[name]
        request = body(fields, title=title, enums=ACTION_ENUMS, given={"confidence": CONFIDENCE})
        action = _op(
            summary,
            scope,
            200,
            ALARM_OBJECT,
            request,
            params=one,
            errors={
                "404": NO_ALARM,
                "409": "`invalid_transition`: the alarm's state does not allow this move (a "
                "resolved alarm is history)",
                "422": INVALID,
            },
        )
        action["requestBody"]["required"] = any(f.required for f in fields)
        # no links onward: a move is reached from an alarm read, never tried on a made-up id
        paths[f"{ALARM}/{name}"] = {"post": action}
    return paths


def paths() -> dict[str, Any]:
    return {**_site_paths(), **_device_paths(), **_event_paths(), **_alarm_paths()}
