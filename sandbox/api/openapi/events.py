"""The Partner Event API's operations: post an event, then upload its media to the URLs the
answer gives. (The bridges' local API has its own listener and no document: it is two routes,
described in the README.)"""

from __future__ import annotations

from typing import Any

from sandbox.api.events import EVENT_KEY, EVENT_TIME, FIELDS, PATH
from sandbox.api.openapi.media import BINARY
from sandbox.api.openapi.schema import ERROR, json_content, named, obj, operation, query
from sandbox.world import inbound

EVENT_KEY_API = "eventApiKey"
SECURITY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "X-API-KEY",
    "description": "An API key (chekt_test_...), as one of CHeKT's Event API examples sends it; "
    "a Bearer token from the assertion flow (or any Partner API credential) works too",
}
ID6 = {"type": "string", "pattern": f"^{inbound.ID_PATTERN.pattern}$"}
STATUSES = sorted({s for statuses in inbound.EVENT_STATUSES.values() for s in statuses})
EVENT = named(
    "PartnerEvent",
    {
        "type": "object",
        "additionalProperties": False,
        "required": list(FIELDS),
        "properties": {
            "version": {"const": "1.0"},
            "location_id": {**ID6, "description": "the site (see /_sandbox/credentials bridges)"},
            "recorder_id": {**ID6, "description": "the site's bridge"},
            "camera_id": {"type": "string", "format": "uuid", "description": "the camera"},
            "event_id": {
                "anyOf": [
                    {"type": "string", "pattern": f"^{EVENT_KEY.pattern}$"},
                    {"type": "integer", "minimum": 10**15, "maximum": 10**16 - 1},
                ],
                "description": "16 digits (epoch µs); a resend with the same id is answered "
                "as the first send was",
            },
            "event_type": {"title": "PartnerEventType", "enum": list(inbound.EVENT_TYPES)},
            "event_status": {
                "title": "PartnerEventStatus",
                "enum": STATUSES,
                "description": "alarm: active; trouble: active or restored; arming: armed, "
                "armed_away, armed_stay, armed_night, armed_custom or disarmed",
            },
            "event_time": {
                "type": "string",
                "pattern": f"^{EVENT_TIME.pattern}$",
                "description": "ISO-8601 with its offset (Z or ±hh:mm)",
            },
        },
    },
)
ACCEPTED = named(
    "PartnerEventAccepted",
    obj(
        ("event_id", "upload_urls", "expires_in"),
        event_id={"type": "string"},
        alarm_id={"type": "string", "description": "the alarm an alarm event raised"},
        upload_urls=named(
            "UploadUrls",
            obj(
                ("snapshot", "clip"),
                snapshot={"type": "string", "description": "PUT a JPEG (image/jpeg) here"},
                clip={"type": "string", "description": "PUT an MP4 (video/mp4) here"},
            ),
        ),
        expires_in={"type": "integer", "description": "seconds the upload URLs work"},
    ),
)


def _errors(op: dict[str, Any], errors: dict[str, str]) -> None:
    for status, description in errors.items():
        op["responses"][status] = {"description": description, **json_content(ERROR)}


def paths() -> dict[str, Any]:
    post = operation(
        "Send an alarm, trouble or arming event into CHeKT (Partner Event API)",
        None,
        201,
        ACCEPTED,
        request=EVENT,
    )
    post["security"] = [{"bearer": []}, {EVENT_KEY_API: []}]
    post["description"] = (
        "An alarm raises an alarm on the camera (alarm.created follows); a trouble takes the "
        "camera offline (restored: online); an arming event arms or disarms the site. The "
        f"answer's upload URLs take the media for {inbound.UPLOAD_LIFETIME} s of sandbox time."
    )
    _errors(
        post,
        {
            "401": "no credential, or one not accepted",
            "409": "`idempotency_conflict`: this event_id was sent with another body",
            "422": "`validation_failed`: the `field` named is missing, malformed or unknown",
        },
    )
    put = operation(
        "Upload an event's snapshot (JPEG) or clip (MP4) to the URL its answer gave",
        None,
        204,
        None,
        queries=(
            query(
                "access_token",
                {"type": "string"},
                "the upload URL's token",
                required=True,
            ),
        ),
    )
    put["parameters"][:0] = [
        {"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}},
        {
            "name": "kind",
            "in": "path",
            "required": True,
            "schema": {"title": "UploadKind", "enum": list(inbound.MEDIA_KINDS)},
        },
    ]
    put["requestBody"] = {
        "required": True,
        "content": {content: {"schema": BINARY} for content in inbound.MEDIA_KINDS.values()},
    }
    limits = ", ".join(f"{kind} {size >> 20} MiB" for kind, size in inbound.UPLOAD_LIMITS.items())
    put["description"] = (
        "The URL's token authorizes it (no other credential). After the upload the event's "
        f"alarm shows these bytes at its snapshot_url / clip_url. At most: {limits}."
    )
    _errors(
        put,
        {
            "401": "no access_token, or one this sandbox did not sign for this URL",
            "403": "`link_expired`: the upload URL expired on the sandbox clock",
            "404": "not an upload URL",
            "413": "the upload is larger than its kind allows",
            "415": "the Content-Type is not image/jpeg (snapshot) or video/mp4 (clip)",
            "422": "the body is not a JPEG / an MP4",
        },
    )
    return {PATH: {"post": post}, PATH + "/{event_id}/media/{kind}": {"put": put}}
