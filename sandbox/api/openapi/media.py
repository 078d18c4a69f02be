"""The links webhooks carry, under ``/_sandbox``: snapshots, clips and the tracking page.
Their ``access_token`` query parameter authorizes them, in place of the admin token."""

from __future__ import annotations

from typing import Any

from sandbox.api.openapi.schema import ERROR, json_content, named, obj, operation, query
from sandbox.world.media import CLIP_FPS, CLIP_SECONDS, CLIP_SIZE, SNAPSHOT_SIZE

TOKEN = query(
    "access_token",
    {"type": "string", "pattern": r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"},
    "the link's signed token, as the webhook gave it",
    required=True,
)
REFUSALS = {
    "401": {"description": "no access_token, or one this sandbox did not sign for this link"},
    "403": {"description": "the link expired (media_url_lifetime on the sandbox clock)"},
    "404": {"description": "not a .jpg or .mp4 link"},
}
AUTHORIZED = (
    "Open without the admin token: the `access_token` the link carries authorizes it, for "
    "`media_url_lifetime` seconds of sandbox time after the event."
)
BINARY = {"type": "string", "contentEncoding": "binary"}
TRACKING = named(
    "ResponderTracking",
    obj(
        (
            "alarm_id",
            "site_id",
            "responder_id",
            "responder_type",
            "status",
            "dispatched_at",
            "eta_seconds",
        ),
        alarm_id={"type": "string"},
        site_id={"type": "integer"},
        responder_id={"type": "string"},
        responder_type={"type": "string"},
        status={"title": "ResponderStatus", "enum": ["en_route", "on_site"]},
        dispatched_at={"type": "string"},
        eta_seconds={"type": "integer", "minimum": 0, "description": "seconds left to arrive"},
    ),
)


def _linked(summary: str, result: dict[str, Any] | None, name: str) -> dict[str, Any]:
    op = operation(summary, None, 200, result, tag="Sandbox control", queries=(TOKEN,))
    op["parameters"].insert(
        0, {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
    )
    op["description"] = AUTHORIZED
    for status, response in REFUSALS.items():
        op["responses"][status] = {**response, **json_content(ERROR)}
    return op


def paths() -> dict[str, Any]:
    snapshot, clip = (f"{w}x{h}" for w, h in (SNAPSHOT_SIZE, CLIP_SIZE))
    media = _linked(
        f"A snapshot (`{{id}}.jpg`: a {snapshot} JPEG) or a clip (`{{id}}.mp4`: "
        f"{CLIP_SECONDS} s of {clip} H.264 at {CLIP_FPS} fps), from a webhook's link",
        None,
        "name",
    )
    media["responses"]["200"]["content"] = {
        "image/jpeg": {"schema": BINARY},
        "video/mp4": {"schema": BINARY},
        "application/octet-stream": {"schema": BINARY},
    }
    media["responses"]["200"]["description"] = (
        "the JPEG or the MP4; the same bytes as application/octet-stream when Accept names "
        "only that"
    )
    media["responses"]["200"]["headers"] = {
        "Cache-Control": {
            "description": "private, kept while the link lasts",
            "schema": {"type": "string"},
        }
    }
    track = _linked(
        "A dispatched responder's progress, from alarm.dispatched", TRACKING, "alarm_id"
    )
    del track["responses"]["404"]
    return {"/_sandbox/media/{name}": {"get": media}, "/_sandbox/track/{alarm_id}": {"get": track}}
