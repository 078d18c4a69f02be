"""``GET /v1/events/stream``: the app's happenings as server-sent events, live.

Each message is ``id: <numeric event id>``, ``event: <type>``, ``data: <the envelope
/v1/events lists>``. A client that reconnects sends ``Last-Event-ID`` (browsers do it by
themselves) and continues after that event, with no gap and no duplicate; without it the
stream starts at ``cursor`` (from ``/v1/events``) or at the present. A :class:`Bell` rung by
every write to the event log wakes the open streams, so a change is on the wire within
milliseconds; a comment every 15 s keeps idle connections open through proxies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from sandbox.api.apps import apps, dealer_of, decode_cursor, heard_types, page_query
from sandbox.api.common import route, services
from sandbox.auth.guard import Principal
from sandbox.errors import ValidationFailed
from sandbox.store import Store
from sandbox.world import events

KEEP_ALIVE = 15.0
BATCH = 500


class Bell:
    """Wakes every open stream when the event log is written (from any thread)."""

    def __init__(self, store: Store) -> None:
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.closed = False
        store.watch(("events",), self.ring, verbs=("INSERT", "UPDATE"))

    def close(self) -> None:
        """End every open stream (the server is stopping)."""
        self.closed = True
        self.ring()

    def ring(self) -> None:
        for loop, event in list(self._waiting):
            loop.call_soon_threadsafe(event.set)

    def listener(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        self._waiting.add(entry)
        return entry

    def forget(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        self._waiting.discard(entry)


def _start(request: Request, cursor: str | None) -> int:
    """Where the stream begins: after ``Last-Event-ID``, after ``cursor``, or now."""
    resume = request.headers.get("last-event-id")
    if resume is not None:
        resume = resume.strip()
        if not (resume.isascii() and resume.isdigit()) or len(resume) > 18:
            raise ValidationFailed("Last-Event-ID", "Last-Event-ID must be a numeric event id")
        return int(resume)
    if cursor is not None:
        return decode_cursor(cursor)
    newest = services(request).world.store.scalar("SELECT MAX(seq) FROM events")
    return int(newest or 0)


@apps("events:read")
async def stream_events(request: Request, principal: Principal) -> Response:
    _, _, extra = page_query(request, "cursor", "type")
    types = heard_types(principal, extra.get("type"))
    after = _start(request, extra.get("cursor"))
    world, dealer_id = services(request).world, dealer_of(principal)
    bell: Bell = request.app.state.bell

    async def messages() -> AsyncIterator[bytes]:
        nonlocal after
        entry = bell.listener()
        try:
            yield b"retry: 1000\n\n"
            while not bell.closed:
                entry[1].clear()  # before reading: a write after the read rings again
                rows = events.happened(world, dealer_id, after, BATCH, types) if types else []
                for row in rows:
                    body = json.dumps(events.envelope(world, row), separators=(",", ":"))
                    yield f"id: {row['seq']}\nevent: {row['type']}\ndata: {body}\n\n".encode()
                    after = row["seq"]
                if len(rows) == BATCH:
                    continue
                try:
                    await asyncio.wait_for(entry[1].wait(), KEEP_ALIVE)
                except TimeoutError:
                    yield b": keep-alive\n\n"
        finally:
            bell.forget(entry)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)


routes = [route("/v1/events/stream", GET=stream_events)]
