"""A CHeKT bridge's local API, as integrators on a site's LAN call it (CONTRACT §5.4): served
on its own listener (``serve --bridge-port``, 30003 by default), for every bridge of the world
at once; the token names the bridge.

``POST /api/v1/events`` with ``Authorization: Basic base64("apikey:<token>")`` and
``{"target_channel": "2", "event_description": "Door opened"}`` raises an alarm on the
camera or zone on that channel of the bridge's site, through the record like any other alarm.
``GET /api/v1/health`` answers whether the listener is up, without a credential. Bound off
loopback, the listener takes events only once an admin token is set (as ``/_sandbox`` does).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import parse_json, reply, request_id, route, services
from sandbox.errors import ApiError, BadRequest, PermissionDenied, ValidationFailed
from sandbox.store import Row
from sandbox.world import inbound, record
from sandbox.world.audit import Actor

SURFACE = "bridge"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="CHeKT Bridge"'}
DESCRIPTION_LIMIT = 255


class BridgeUnauthorized(ApiError):
    """401 with the Basic challenge a bridge answers (not the Bearer one of the cloud APIs)."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers=dict(CHALLENGE))


def _bridge(request: Request) -> Row:
    settings = services(request).settings
    if not settings.loopback and not settings.admin_token:
        raise PermissionDenied(
            "the bridges' local API is closed on a non-loopback bind without an admin token, "
            "as the control API is: set one to open both"
        )
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise BridgeUnauthorized('send Authorization: Basic base64("apikey:<the bridge token>")')
    try:
        pair = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise BridgeUnauthorized("the Basic credentials are not base64 of user:password") from None
    user, colon, token = pair.partition(":")
    found = inbound.bridge_of_token(services(request).world, token) if colon else None
    if user != "apikey" or found is None:
        raise BridgeUnauthorized("the user must be apikey and the password this bridge's token")
    request.state.tier = "bridge"
    request.state.client_id = f"bridge-{found['device_id']}"
    return found


def _channel(value: Any) -> int:
    number = isinstance(value, str | int) and not isinstance(value, bool)
    text = str(value).strip() if number else ""
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= 999:
        raise ValidationFailed("target_channel", "target_channel must be a channel number, e.g. 2")
    return int(text)


def _parse(raw: bytes) -> tuple[int, str | None]:
    if not raw.strip():
        raise BadRequest("send a JSON body with target_channel")
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ValidationFailed("body", "the body must be a JSON object")
    if "target_channel" not in body:
        raise ValidationFailed("target_channel", "target_channel is required")
    description = body.get("event_description")
    if description is not None and (
        not isinstance(description, str) or len(description) > DESCRIPTION_LIMIT
    ):
        raise ValidationFailed(
            "event_description", f"event_description is a string of at most {DESCRIPTION_LIMIT}"
        )
    return _channel(body["target_channel"]), description


async def post_event(request: Request) -> Response:
    bridge = _bridge(request)
    channel, description = _parse(await request.body())
    world = services(request).world
    devices = inbound.channel_devices(world, bridge["site_id"])
    device = devices.get(channel)
    if device is None:
        have = ", ".join(map(str, devices)) or "none"
        raise ValidationFailed(
            "target_channel", f"this bridge has no camera or zone on channel {channel} ({have})"
        )
    site = world.store.one("SELECT * FROM sites WHERE site_id = ?", (bridge["site_id"],))
    assert site is not None  # a bridge's site exists while the bridge does
    event = inbound.Inbound(
        source=SURFACE,
        client_id=f"bridge-{bridge['device_id']}",
        event_type="alarm",
        event_status="active",
        site=site,
        device=device,
        channel=channel,
        description=description,
        fingerprint=inbound.fingerprint({"channel": channel, "description": description}),
    )
    actor = Actor("device", event.client_id, SURFACE, bridge["name"], request_id(request))

    def answer(alarm_id: str | None) -> dict[str, Any]:
        return {"result": "ok", "channel": channel, "alarm_id": alarm_id}

    body, _ = record.receive(world, event, actor, answer)
    return reply(body)


async def health(request: Request) -> Response:
    return reply({"status": "ok"})


routes = [
    route("/api/v1/events", POST=post_event),
    route("/api/v1/health", GET=health),
]
