"""A camera's live view (``/api/v1/mjpeg``, ``/api/v1/snapshots/{mac}/{channel}``): where the
dealer API's ``mjpeg_url`` points, authorized by the token in its query."""

from __future__ import annotations

from typing import Any

from sandbox.api.openapi.dealer import TAG
from sandbox.api.openapi.schema import ERROR, json_content, named, obj, operation, query
from sandbox.world.live import FRAMES_PER_SECOND
from sandbox.world.media import SNAPSHOT_SIZE

TOKEN = query(
    "access_token",
    {"type": "string", "minLength": 1},
    "the camera's live token, as mjpeg_url carries it (a JWT: sub = the camera's MAC, "
    "channel, group_channel, exp on the sandbox clock)",
    required=True,
)
DEAD = (
    "`invalid_token` or `token_expired`: no access_token, one this sandbox did not sign for a "
    "live view, or one expired on the sandbox clock (take a fresh mjpeg_url)"
)
SNAPSHOT = named(
    "CameraSnapshot",
    obj(
        ("data", "base64Encoded"),
        data={"type": "string", "contentEncoding": "base64", "description": "a JPEG"},
        base64Encoded={"type": "boolean", "const": True},
    ),
)


def _refusals(op: dict[str, Any], forbidden: str | None = None) -> dict[str, Any]:
    op["security"] = []  # the access_token authorizes: an <img> sends no credential
    op["responses"]["401"] = {"description": DEAD, **json_content(ERROR)}
    if forbidden:
        op["responses"]["403"] = {"description": forbidden, **json_content(ERROR)}
    return op


def paths() -> dict[str, Any]:
    width, height = SNAPSHOT_SIZE
    stream = _refusals(
        operation(
            "A camera's live view: an endless multipart/x-mixed-replace stream of JPEG frames",
            None,
            200,
            None,
            queries=(TOKEN,),
            tag=TAG,
        )
    )
    stream["description"] = (
        f"{FRAMES_PER_SECOND} {width}x{height} JPEG frames a second, each a part with its "
        "Content-Type and Content-Length, the sandbox clock's time drawn on it; it ends when "
        "the client goes away, the token expires or the server stops."
    )
    stream["responses"]["200"]["content"] = {
        "multipart/x-mixed-replace": {
            "schema": {"type": "string", "contentEncoding": "binary"},
        }
    }
    snapshot = _refusals(
        operation(
            "A camera's frame now, as base64 JSON",
            None,
            200,
            SNAPSHOT,
            queries=(TOKEN,),
            tag=TAG,
        ),
        "`wrong_camera` or `wrong_channel`: the token is for another camera or channel",
    )
    snapshot["parameters"][:0] = [
        {
            "name": "mac",
            "in": "path",
            "required": True,
            "description": "the camera's MAC (any case; ':' or '-' or no separators)",
            "schema": {"type": "string", "pattern": "^[0-9A-Fa-f:.-]{1,32}$"},
        },
        {
            "name": "channel",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        },
    ]
    return {
        "/api/v1/mjpeg": {"get": stream},
        "/api/v1/snapshots/{mac}/{channel}": {"get": snapshot},
    }
