"""The Partner Event API, ``POST /partner/v1/events``: a video or sensor platform pushes an
alarm, a trouble or an arming change into CHeKT, then uploads the event's media to the URLs
the answer gives (``PUT``, pre-signed, 15 minutes on the sandbox clock).

The caller proves itself with a Bearer token (an assertion token, CONTRACT §2.3, or any token
or API key the Partner API takes) or, as one of CHeKT's examples shows, ``X-API-KEY``; the
event's site must be within its dealers' reach. The partner's ``event_id`` makes the call
idempotent: a resend answers what the first send was told; the same id with another body is
a 409. Everything the event changes goes through the record (:func:`record.receive`).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import actor_of, issuer_of, read_json, reply, route, services
from sandbox.auth.guard import Principal
from sandbox.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from sandbox.world import World, dealers, inbound, media, record

PATH = "/partner/v1/events"
SURFACE = "event_api"
FIELDS = (
    "version",
    "location_id",
    "recorder_id",
    "camera_id",
    "event_id",
    "event_type",
    "event_status",
    "event_time",
)
EVENT_KEY = re.compile(r"[0-9]{16}")
EVENT_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
MAGIC = {"snapshot": "a JPEG (FF D8 FF)", "clip": "an MP4 (ftyp box)"}


def _principal(request: Request) -> Principal:
    """Bearer first; else ``X-API-KEY`` (taken as the same API key a Bearer would carry)."""
    s = services(request)
    authorization = request.headers.get("authorization")
    key = request.headers.get("x-api-key")
    if authorization is None and key:
        authorization = f"Bearer {key.strip()}"
    principal = s.guard.authenticate(authorization, lambda: issuer_of(request))
    request.state.principal = principal
    return principal


def _text(values: dict[str, Any], name: str, pattern: re.Pattern[str], hint: str) -> str:
    value = values.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationFailed(name, f"{name} must be {hint}")
    return value


def parse(body: Any) -> dict[str, Any]:
    """The event's fields, each checked (a 422 names the first at fault)."""
    if not isinstance(body, dict):
        raise ValidationFailed("body", "the body must be a JSON object")
    for name in body:
        if name not in FIELDS:
            raise ValidationFailed(name, f"unknown field {name!r}; the fields are {FIELDS}")
    for name in FIELDS:
        if body.get(name) is None:
            raise ValidationFailed(name, f"{name} is required")
    if body["version"] != "1.0":
        raise ValidationFailed("version", 'version must be "1.0"')
    values: dict[str, Any] = {"version": "1.0"}
    for name in ("location_id", "recorder_id"):
        values[name] = _text(body, name, inbound.ID_PATTERN, "6 upper-case letters or digits")
    camera = body["camera_id"]
    try:
        values["camera_id"] = str(uuid.UUID(camera)) if isinstance(camera, str) else None
    except ValueError:
        values["camera_id"] = None
    if values["camera_id"] is None or len(camera) != 36:
        raise ValidationFailed("camera_id", "camera_id must be a UUID (8-4-4-4-12 hex digits)")
    key = body["event_id"]
    key = str(key) if isinstance(key, int) and not isinstance(key, bool) else key
    values["event_id"] = _text({"event_id": key}, "event_id", EVENT_KEY, "16 digits (epoch µs)")
    kind = body["event_type"]
    if kind not in inbound.EVENT_TYPES:
        raise ValidationFailed("event_type", f"event_type must be one of {inbound.EVENT_TYPES}")
    values["event_type"] = kind
    statuses = inbound.EVENT_STATUSES[kind]
    if body["event_status"] not in statuses:
        raise ValidationFailed("event_status", f"a {kind} event's status is one of {statuses}")
    values["event_status"] = body["event_status"]
    values["event_time"] = _time(body["event_time"])
    return values


def _time(value: Any) -> str:
    problem = "event_time must be an ISO-8601 time with its offset, e.g. 2024-05-01T12:00:00Z"
    if not isinstance(value, str) or not EVENT_TIME.fullmatch(value):
        raise ValidationFailed("event_time", problem)
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed("event_time", problem) from None
    return value


def _target(world: World, values: dict[str, Any], principal: Principal) -> inbound.Inbound:
    site = inbound.find_site(world, values["location_id"])
    if not dealers.reachable(
        world, site["dealer_id"], client_id=principal.client_id, own_dealer=principal.dealer_id
    ):  # another dealer's site answers as an absent one
        raise ValidationFailed("location_id", f"no site has location_id {values['location_id']!r}")
    inbound.find_recorder(world, site, values["recorder_id"])
    channel, camera = inbound.find_camera(world, site, values["camera_id"])
    return inbound.Inbound(
        source=SURFACE,
        client_id=principal.client_id,
        event_type=values["event_type"],
        event_status=values["event_status"],
        site=site,
        device=camera,
        channel=channel,
        event_key=values["event_id"],
        fingerprint=inbound.fingerprint(values),
    )


def _upload_url(request: Request, event_key: str, media_id: str, kind: str) -> str:
    world = services(request).world
    claims = {
        "kind": "upload",
        "id": f"{event_key}/{kind}",
        "media": media_id,
        "exp": round(world.now() + inbound.UPLOAD_LIFETIME, 3),
    }
    token = media.sign(media.secret(world.store), claims)
    base = issuer_of(request).rstrip("/")
    return f"{base}{PATH}/{event_key}/media/{kind}?access_token={token}"


async def post_event(request: Request) -> Response:
    request.state.surface = SURFACE
    principal = _principal(request)
    values = parse(await read_json(request))
    world = services(request).world
    earlier = inbound.logged(world, SURFACE, principal.client_id, values["event_id"])
    if earlier is not None:
        if earlier["fingerprint"] != inbound.fingerprint(values):
            raise Conflict(
                f"event_id {values['event_id']} was already sent with another body; an event "
                "id names one event",
                code="idempotency_conflict",
                field="event_id",
            )
        return reply(inbound.answer_of(earlier), 201, {"Idempotent-Replayed": "true"})
    event = _target(world, values, principal)
    key = values["event_id"]

    def answer(alarm_id: str | None) -> dict[str, Any]:
        target = inbound.media_id(alarm_id, key)
        urls = {kind: _upload_url(request, key, target, kind) for kind in inbound.MEDIA_KINDS}
        made = {"alarm_id": alarm_id} if alarm_id else {}
        return {"event_id": key, **made, "upload_urls": urls, "expires_in": inbound.UPLOAD_LIFETIME}

    actor = actor_of(request, principal, SURFACE)
    body, _ = record.receive(world, event, actor, answer)
    return reply(body, 201)


async def put_media(request: Request) -> Response:
    """An upload to a URL an event's answer gave: its own token authorizes it."""
    request.state.surface = SURFACE
    key, kind = request.path_params["event_id"], request.path_params["kind"]
    if kind not in inbound.MEDIA_KINDS or not EVENT_KEY.fullmatch(key):
        raise NotFound(f"no upload URL at {request.url.path}")
    world = services(request).world
    token = request.query_params.get("access_token")
    claims = media.verify(media.secret(world.store), token, f"{key}/{kind}", "upload", world.now())
    wanted = inbound.MEDIA_KINDS[kind]
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given != wanted:
        raise UnsupportedMediaType(f"a {kind} upload is sent with Content-Type: {wanted}")
    data = await _body(request, inbound.UPLOAD_LIMITS[kind])
    if not _looks_like(kind, data):
        raise ValidationFailed("body", f"the body is not {MAGIC[kind]}")
    inbound.store_upload(world, str(claims["media"]), kind, wanted, data)
    return Response(status_code=204)


async def _body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"an upload of this kind is at most {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"an upload of this kind is at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _looks_like(kind: str, data: bytes) -> bool:
    if kind == "snapshot":
        return data[:3] == b"\xff\xd8\xff"
    return data[4:8] == b"ftyp"


routes = [
    route(PATH, POST=post_event),
    route(PATH + "/{event_id}/media/{kind}", PUT=put_media),
]
