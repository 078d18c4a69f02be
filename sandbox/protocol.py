"""uvicorn's httptools protocol with the two connection deadlines it lacks.

uvicorn bounds only the idle time *between* keep-alive requests. Here, in addition, a request's
headers must arrive within ``request_timeout`` of its first byte (else 408 with the envelope,
and the connection is closed), and a connection that never sends a first byte is closed after
``idle_timeout`` like an idle keep-alive one. The first byte's time is put in the scope, so
the body deadline in ``sandbox.api.limits`` counts from it as well."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sandbox.errors import RequestTimeout

FIRST_BYTE = "chekt.first_byte"  # scope key: time.monotonic() of the request's first byte


def deadline_protocol(request_timeout: float, idle_timeout: float) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these deadlines."""

    class DeadlineProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.timeout_keep_alive = idle_timeout  # type: ignore[assignment]  # int in uvicorn

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            # a silent new connection is idle too: reuse uvicorn's keep-alive timer for it
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope[FIRST_BYTE] = time.monotonic()  # type: ignore[literal-required]
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(request_timeout, self._headers_too_slow)

        def on_headers_complete(self) -> None:
            self._cancel_header_timer()
            super().on_headers_complete()

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            error = RequestTimeout(
                f"the request headers did not arrive within {request_timeout:g} s"
            )
            body = json.dumps(error.body("req_" + os.urandom(8).hex())).encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
            self.transport.close()

    return DeadlineProtocol
