"""The dealer API's verification requests: ask a site's contacts to confirm an alarm. Two
forms, one answer: ``POST /ext/v1/events/{event_id}/verifications`` names the alarm by one
of its numeric event ids; ``POST /ext/v1/verifications`` names it in the body, by
``event_id`` or ``alarm_id``. Either logs a ``verification.requested`` happening, delivered
as that webhook."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import actor_of, path_id, read_json, reply, route, services
from sandbox.api.dealer import PREFIX, dealer_api, dealer_of
from sandbox.auth.guard import Principal
from sandbox.world import verifications

SURFACE = "dealer"


async def _request(request: Request, principal: Principal, *, in_path: bool) -> Response:
    seq = path_id(request, "event_id") if in_path else None
    values = verifications.parse(await read_json(request), with_target=not in_path)
    if seq is not None:
        values["event_id"] = seq
    world = services(request).world
    actor = actor_of(request, principal, SURFACE)
    sent = verifications.request(world, dealer_of(principal), values, actor)
    return reply({"data": sent}, 201)


@dealer_api
async def verify_event(request: Request, principal: Principal) -> Response:
    return await _request(request, principal, in_path=True)


@dealer_api
async def verify(request: Request, principal: Principal) -> Response:
    return await _request(request, principal, in_path=False)


routes = [
    route(PREFIX + "/events/{event_id}/verifications", POST=verify_event),
    route(PREFIX + "/verifications", POST=verify),
]
