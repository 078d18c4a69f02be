"""The links webhooks carry: ``/_sandbox/media/{id}.jpg|.mp4`` (snapshots and clips) and
``/_sandbox/track/{alarm_id}`` (a dispatched responder's progress). A partner's service and
a browser follow them without any credential, so they are exempt from the control API's admin
token: the link's own ``access_token`` authorizes it (401 when missing or not ours, 403 once
expired on the sandbox clock)."""

from __future__ import annotations

import math

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import reply, route, services
from sandbox.errors import NotFound
from sandbox.world import inbound, media

OCTETS = "application/octet-stream"


def _desk(request: Request) -> media.Media:
    found: media.Media = request.app.state.media
    return found


def _claims(request: Request, name: str, kind: str) -> media.Claims:
    token = request.query_params.get("access_token")
    return _desk(request).verify(token, name, kind, services(request).world.now())


def _lasting(claims: media.Claims, now: float) -> dict[str, str]:
    """Browsers may keep the bytes while the link lasts (they never change for a link)."""
    return {"Cache-Control": f"private, max-age={max(0, math.floor(claims['exp'] - now))}"}


async def get_media(request: Request) -> Response:
    stem, _, extension = request.path_params["name"].rpartition(".")
    kind = media.KINDS.get(extension)
    if kind is None or not stem:
        raise NotFound(f"no media at {request.url.path}; links end in .jpg or .mp4")
    claims = _claims(request, stem, kind)
    desk = _desk(request)
    world = services(request).world
    # what a partner uploaded for it through the Event API, else what the sandbox renders
    data = inbound.uploaded(world, str(claims.get("alarm_id") or stem), kind) or desk.cached(claims)
    if data is None:
        data = await run_in_threadpool(desk.render, claims)
    now = world.now()
    return Response(data, media_type=_media_type(request, kind), headers=_lasting(claims, now))


def _media_type(request: Request, kind: str) -> str:
    """The media's type, or plain bytes for a client that accepts only those (generated
    clients read binary responses only as application/octet-stream)."""
    if request.headers.get("accept", "").strip() == OCTETS:
        return OCTETS
    return media.CONTENT_TYPES[kind]


async def get_tracking(request: Request) -> Response:
    claims = _claims(request, request.path_params["alarm_id"], "track")
    now = services(request).world.now()
    arrives = claims["at"] + claims["eta_seconds"]
    body = {
        "alarm_id": claims["alarm_id"],
        "site_id": claims["site_id"],
        "responder_id": claims["responder_id"],
        "responder_type": claims["responder_type"],
        "status": "on_site" if now >= arrives else "en_route",
        "dispatched_at": services(request).world.stamp(claims["at"]),
        "eta_seconds": max(0, math.ceil(arrives - now)),
    }
    return reply(body, headers={"Cache-Control": "no-store"})  # the progress moves on


routes = [
    route("/_sandbox/media/{name}", GET=get_media),
    route("/_sandbox/track/{alarm_id}", GET=get_tracking),
]
