"""uvicorn's httptools protocol with the two connection deadlines and the head bound it lacks.

uvicorn bounds only the idle time *between* keep-alive requests. Here, in addition, a request's
headers must arrive within ``request_timeout`` of its first byte (else 408 with the envelope,
and the connection is closed), and a connection that never sends a first byte is closed after
``idle_timeout`` like an idle keep-alive one. A request head (request line and headers) that
grows past ``max_headers`` bytes while it arrives gets 431 with the envelope and the
connection is closed, so nobody can make the server buffer headers without end; the exact
check on the parsed headers stays in ``sandbox.api.limits``. The first byte's time is put in
the scope, so the body deadline in ``sandbox.api.limits`` counts from it as well, and so is
a way to hang up, which the fault middleware (``sandbox.api.faults``) uses to drop a
connection. A pipelined
request's clocks start only once the response before it is complete: waiting for us is not
slow. A response's head goes out with the first bytes of its body, in one write instead of
two (:class:`HeldHead`)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sandbox.api.faults import HANG_UP
from sandbox.api.limits import FIRST_BYTE
from sandbox.errors import ApiError, HeadersTooLarge, RequestTimeout

LINGER_S = 2.0  # how long a refused connection's late bytes are read and dropped


def deadline_protocol(
    request_timeout: float, idle_timeout: float, max_headers: int = 16 << 10
) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these limits."""

    class DeadlineProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _awaiting_headers = False  # a request has begun and its headers are incomplete
        _head_bytes = 0  # of the head being received, in the reads since the one it began in
        _refused = False  # answered before the app could: what the client still sends is dropped

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.timeout_keep_alive = idle_timeout  # type: ignore[assignment]  # int in uvicorn
            self._hang_up_here = self._hang_up  # bound once, put in every request's scope

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._held_head = HeldHead(transport)
            # a silent new connection is idle too: reuse uvicorn's keep-alive timer for it
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _in_flight(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        # the per-request hooks call uvicorn's by name: cheaper than super() on every request
        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            continuing = self._awaiting_headers  # else the head began inside this read
            HttpToolsProtocol.data_received(self, data)
            if not self._awaiting_headers:
                return  # the common case: a whole head in one read, and no timer to set
            if continuing:
                self._head_bytes += len(data)  # every byte of this read belongs to the head
                self._bound_head()
            # a head left incomplete: its clock runs from this read, where its first byte
            # came (a pipelined one's starts when the response before it ends)
            idle = self._header_timer is None and not self._in_flight()
            if idle and not self.transport.is_closing():
                self._arm_header_timer()

        def _bound_head(self) -> None:
            if self._head_bytes <= max_headers or self.transport.is_closing():
                return
            if self._in_flight():  # a pipelined head: answered when the response before ends
                self.flow.pause_reading()
                return
            self._refuse(
                HeadersTooLarge(f"the request headers are larger than {max_headers} bytes"),
                b"431 Request Header Fields Too Large",
            )

        def on_message_begin(self) -> None:
            self._head_bytes = 0
            HttpToolsProtocol.on_message_begin(self)
            self.scope[FIRST_BYTE] = time.monotonic()  # type: ignore[literal-required]
            self.scope[HANG_UP] = self._hang_up_here  # type: ignore[literal-required]
            self._awaiting_headers = True

        def on_headers_complete(self) -> None:
            self._awaiting_headers = False
            if self._header_timer is not None:
                self._cancel_header_timer()
            before = self.cycle
            HttpToolsProtocol.on_headers_complete(self)
            cycle = self.cycle
            if cycle is not before and cycle is not None and not self.pipeline:
                held = self._held_head
                if held.state == 1:  # (a response that never ended: sent as it was)
                    held.flush()
                held.state = 0  # the new response's writes come next
                cycle.transport = held  # type: ignore[assignment]

        def on_response_complete(self) -> None:
            if self._held_head.state == 1:
                self._held_head.flush()  # a head without a body (HEAD) goes out alone
            if self.pipeline:  # the next one starts now: its deadline counts from now
                self.pipeline[-1][0].scope[FIRST_BYTE] = time.monotonic()  # type: ignore[literal-required]
            HttpToolsProtocol.on_response_complete(self)
            if self._awaiting_headers:
                if self._header_timer is None:
                    self._arm_header_timer()  # a pipelined head was held back while we answered
                self._bound_head()

        def shutdown(self) -> None:
            """The server stops: an idle connection with nothing left to send is cut at once.
            Closed politely over TLS, it would wait for the client's close_notify (up to
            30 s), which an idle client never sends, and the server's stop with it."""
            idle = self.cycle is None or self.cycle.response_complete
            if idle and not self.transport.get_write_buffer_size():
                self.transport.abort()
            else:
                HttpToolsProtocol.shutdown(self)

        def _hang_up(self) -> None:
            """Close the connection without (finishing) an answer: an injected fault. The
            cycle is marked gone first, so uvicorn neither answers 500 nor logs an error."""
            if self.cycle is not None:
                self._held_head.flush()  # what the client was sent so far reaches it
                self.cycle.disconnected = True
            self.transport.close()

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(request_timeout, self._headers_too_slow)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or self._in_flight():
                return
            error = RequestTimeout(
                f"the request headers did not arrive within {request_timeout:g} s"
            )
            self._refuse(error, b"408 Request Timeout")

        def _refuse(self, error: ApiError, status: bytes) -> None:
            """Answer before the app could, with the envelope, and hang up."""
            self._cancel_header_timer()
            body = json.dumps(error.body("req_" + os.urandom(8).hex())).encode()
            self.transport.write(
                b"HTTP/1.1 %s\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, len(body), body)
            )
            # a lingering close: closed while the client is still sending, the socket would
            # answer its next bytes with a reset, which can reach the client before it reads
            # the answer. So the answer and an end of stream go first, and what the client
            # sends meanwhile is read and dropped, until it hangs up or LINGER_S pass
            self._refused = True
            if self.transport.can_write_eof():
                self.transport.write_eof()
                self.loop.call_later(LINGER_S, self.transport.close)
            else:
                self.transport.close()

    return DeadlineProtocol


class HeldHead:
    """The transport as a response cycle sees it: the head of a response that announces its
    length is held until the first bytes of its body, and both go in one system call instead
    of two (a write on a socket is the costliest step of a small response). Nothing waits
    on it: such a body follows its head at once (a stream, which has no length, is not
    held), and whatever else the cycle asks of the transport, or the end of the response
    (a HEAD, which has no body), sends what is held first. One per connection, given to each
    cycle that is not pipelined behind another."""

    __slots__ = ("_held", "_transport", "state")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held = b""
        self.state = 2  # 0: a response's first write comes; 1: its head held; 2: writes pass

    def write(self, data: bytes) -> None:
        state = self.state
        if state == 0:
            if b"\r\ncontent-length:" in data:
                self._held, self.state = data, 1
                return
            self.state = 2
        elif state == 1:
            self.state = 2
            data = self._held + data
            self._held = b""
        self._transport.write(data)

    def flush(self) -> None:
        """Send what is held, if anything (a closing connection takes nothing)."""
        if self.state == 1:
            self.state = 2
            held, self._held = self._held, b""
            if not self._transport.is_closing():
                self._transport.write(held)

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self._transport, name)
