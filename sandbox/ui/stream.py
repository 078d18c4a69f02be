"""``GET /_sandbox/ui/stream``: tells the open pages what changed, as server-sent events
(``journal``, ``deliveries``, ``record``, ``clock``); each page then fetches its own fragment again
(htmx's SSE extension). A check every ``TICK`` costs four small reads, and the bursts of a
busy journal become at most one message per tick. The stream ends when the server stops
(the app's bell is closed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from sandbox.api.common import Services, services
from sandbox.ui.render import guarded

TICK = 0.25
KEEP_ALIVE = 15.0


def _state(found: Services) -> dict[str, object]:
    store = found.world.store
    return {
        "journal": found.recorder.stats()["last_seq"],
        "deliveries": (
            store.scalar("SELECT MAX(seq) FROM attempts"),
            store.scalar("SELECT MAX(rowid) FROM deliveries"),
        ),
        "record": store.scalar("SELECT MAX(seq) FROM events"),  # something happened
        "clock": found.world.now(),
    }


@guarded
async def stream(request: Request) -> Response:
    found = services(request)
    bell = request.app.state.bell

    async def messages() -> AsyncIterator[bytes]:
        seen = _state(found)
        idle = 0.0
        yield b"retry: 1000\n\n"
        while not bell.closed:
            await asyncio.sleep(TICK)
            now = _state(found)
            changed = [name for name in now if now[name] != seen[name]]
            seen = now
            for name in changed:
                yield f"event: {name}\ndata: {name}\n\n".encode()
            idle = 0.0 if changed else idle + TICK
            if idle >= KEEP_ALIVE:
                idle = 0.0
                yield b": keep-alive\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)
