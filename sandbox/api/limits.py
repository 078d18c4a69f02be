"""Request limits, as pure ASGI middleware: headers 16 KiB (431), body 1 MiB (413, refused
from ``Content-Length`` before reading, or as soon as a chunked body passes the limit), and
the whole body within ``request_timeout`` seconds of the request's first byte (408) so a
client that trickles its body cannot hold a worker. The headers' own deadline, and their
bound while they arrive, are enforced by the server protocol, ``sandbox.protocol``, which sees
them arrive; the check here is exact, on the parsed headers, and covers every server."""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.api.middleware import send_error
from sandbox.errors import ApiError, HeadersTooLarge, PayloadTooLarge, RequestTimeout

FIRST_BYTE = "chekt.first_byte"  # scope key: time.monotonic() of the request's first byte


class _Refused(Exception):
    def __init__(self, error: ApiError) -> None:
        self.error = error


class Limits:
    def __init__(
        self,
        app: ASGIApp,
        max_body: int = 1 << 20,
        max_headers: int = 16 << 10,
        timeout: float = 10.0,
        uploads: tuple[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        # (path prefix, limit): PUTs there carry media and may be larger; their handler
        # bounds each kind itself
        self.uploads = uploads
        self.max_headers = max_headers
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = scope.get("state", {}).get("request_id", "req_unknown")
        size = sum(len(name) + len(value) for name, value in scope["headers"])
        if size > self.max_headers:
            too_many = HeadersTooLarge(
                f"the request headers are {size} bytes; the limit is {self.max_headers}"
            )
            await send_error(send, too_many, request_id)
            return
        max_body = self.max_body
        if (
            self.uploads is not None
            and scope["method"] == "PUT"
            and scope["path"].startswith(self.uploads[0])
        ):
            max_body = max(max_body, self.uploads[1])
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > max_body:
            error = PayloadTooLarge(
                f"the request body is {int(length)} bytes; the limit is {max_body}"
            )
            await send_error(send, error, request_id, close=True)
            return
        # from the request's first byte when the server tells us (sandbox.protocol)
        deadline = scope.get(FIRST_BYTE, time.monotonic()) + self.timeout
        received = 0
        started = False
        complete = False  # the whole body is in: later receives wait for a disconnect

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            remaining = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.001))
            except TimeoutError:
                raise _Refused(
                    RequestTimeout(f"the request body did not arrive within {self.timeout:g} s")
                ) from None
            if message["type"] == "http.request":
                complete = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > max_body:
                    raise _Refused(
                        PayloadTooLarge(f"the request body is larger than {max_body} bytes")
                    )
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except _Refused as refused:
            if not started:
                await send_error(send, refused.error, request_id, close=True)
