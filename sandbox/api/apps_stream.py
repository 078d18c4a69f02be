"""``GET /v1/events/stream``: the record's happenings as server-sent events, for an app that
would rather hear than poll ``/v1/events``. A minimal version: it polls the event log once a
second and says ``: keep-alive`` every 15 s; it never ends (the client hangs up)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from sandbox.api.apps import apps, decode_cursor, heard_types
from sandbox.api.common import query_lists, route, services
from sandbox.auth.guard import Principal
from sandbox.errors import ValidationFailed
from sandbox.world import events

KEEP_ALIVE = 15.0
POLL = 1.0


def _start(request: Request) -> int:
    """After ``Last-Event-ID`` (a numeric event id), else after ``cursor``, else now."""
    resume = request.headers.get("last-event-id")
    if resume is not None:
        if not (resume.isascii() and resume.isdigit()) or len(resume) > 18:
            raise ValidationFailed("Last-Event-ID", "Last-Event-ID is a numeric event id")
        return int(resume)
    cursor = request.query_params.get("cursor")
    if cursor is not None:
        return decode_cursor(cursor)
    return int(services(request).world.store.scalar("SELECT MAX(seq) FROM events") or 0)


@apps("events:read")
async def stream_events(request: Request, principal: Principal) -> Response:
    unknown = [name for name in query_lists(request) if name not in ("type", "cursor")]
    if unknown:
        raise ValidationFailed(unknown[0], f"unknown query parameter {unknown[0]!r}")
    types = heard_types(principal, request.query_params.get("type"))
    after = _start(request)
    world, dealer_id = services(request).world, principal.dealer_id or 0

    async def messages() -> AsyncIterator[str]:
        nonlocal after
        quiet = 0.0
        while True:
            rows = events.happened(world, dealer_id, after, 100, types) if types else []
            for row in rows:
                data = json.dumps(events.envelope(world, row), separators=(",", ":"))
                yield f"id: {row['seq']}\nevent: {row['type']}\ndata: {data}\n\n"
                after = row["seq"]
            if rows:
                quiet = 0.0
                continue
            if quiet >= KEEP_ALIVE:
                yield ": keep-alive\n\n"
                quiet = 0.0
            await asyncio.sleep(POLL)
            quiet += POLL

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)


routes = [route("/v1/events/stream", GET=stream_events)]
