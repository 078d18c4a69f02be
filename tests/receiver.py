"""A real webhook receiver for tests: a Starlette app served by uvicorn on a free port,
recording every request and answering as each path is told to."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.server import ThreadedServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes = b"ok"


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: dict[str, Answer] = {}
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/{name:path}", self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.received.append(
                Received(request.url.path, dict(request.headers), body, time.time())
            )
        answer = self.answers.get(request.url.path, Answer())
        if answer.delay:
            await asyncio.sleep(answer.delay)
        return Response(answer.body, answer.status, headers=answer.headers)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]


class Hanging:
    """A receiver that holds every request for up to 30 s: ``with Hanging() as url`` serves it
    on a free port and, at the end, lets go of what it holds, so its server stops at once."""

    def __init__(self) -> None:
        self.held = 0
        self._release: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = ThreadedServer(
            Starlette(routes=[Route("/{path:path}", self._hang, methods=["POST"])])
        )

    def __enter__(self) -> str:
        return self._server.start()

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)
        self._server.stop()

    async def _hang(self, request: Request) -> Response:
        if self._release is None:
            self._loop, self._release = asyncio.get_running_loop(), asyncio.Event()
        self.held += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), 30)
        return Response("late")


def wait_for(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()
    assert value, f"condition not met within {timeout} s (last value: {value!r})"
    return value
