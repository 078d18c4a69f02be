"""A partner's webhook receiver in its own process, following the sandbox clock the way a
service in any language would: it checks each delivery's signature with a 300 s tolerance
against the sandbox time, read both from the delivery's ``X-Sandbox-Time`` header and from
``GET /_sandbox/clock`` while the attempt is in flight, and answers 500 (so every retry
happens) with what it found in the body, for the test to read from the delivery journal.

    python tests/clock_receiver.py SANDBOX_URL SECRET    # prints its port, then serves
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

TOLERANCE = 300


def problem(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
    """Why a correct receiver refuses this delivery at sandbox time ``now`` (None: it doesn't)."""
    stamp = headers.get("x-chekt-timestamp", "")
    if not stamp.isdigit():
        return "no timestamp"
    if abs(now - int(stamp)) > TOLERANCE:
        return f"timestamp outside tolerance ({now - int(stamp):+.0f} s)"
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), headers.get("x-chekt-signature", "")):
        return "signature mismatch"
    return None


def receiver(sandbox_url: str, secret: str) -> Starlette:
    clients: list[httpx.AsyncClient] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(base_url=sandbox_url) as client:
            clients.append(client)
            yield

    async def hook(request: Request) -> PlainTextResponse:
        body = await request.body()
        clock = (await clients[0].get("/_sandbox/clock")).json()["now"]
        sent = request.headers.get("x-sandbox-time")
        found = [
            problem(secret, request.headers, body, clock),
            problem(secret, request.headers, body, float(sent)) if sent else "no X-Sandbox-Time",
        ]
        return PlainTextResponse("; ".join(p for p in found if p) or "verified", 500)

    return Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])], lifespan=lifespan)


if __name__ == "__main__":
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(receiver(sys.argv[1], sys.argv[2]), log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])
