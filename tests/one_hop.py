"""Starlette's ``TestClient`` with a cheaper way into the app: its transport hops from the
test's thread into the app's event loop (another thread) about nine times a request (two
events, a stream, a cancel scope, the app's start, its first answer, every body chunk, the
end), about 1.5 ms of CPU, ten times what the sandbox spends answering. This one hops once:
the app runs to its end in its loop and the whole answer comes back. An answer that streams
(``text/event-stream``, a live MJPEG) is handed over chunk by chunk, as it is written, and a
WebSocket goes through Starlette's own transport. Everything else is Starlette's: the app,
its lifespan, its portal, and exceptions raised in the test."""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any
from urllib.parse import unquote

import anyio
from starlette import testclient
from starlette.testclient import httpx  # httpx2, or httpx with an older Starlette
from starlette.types import Message

STREAMED = (b"text/event-stream", b"multipart/x-mixed-replace")  # endless: handed over live
_END = object()
_PORTS = {"http": 80, "https": 443}


class TestClient(testclient.TestClient):
    __test__ = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._transport = _OneHop(self._transport)  # type: ignore[arg-type]


class _Stream(httpx.SyncByteStream):
    def __init__(self, chunks: Iterator[bytes], close: contextlib.ExitStack) -> None:
        self._chunks = chunks
        self._close = close

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self._close.close()


class _OneHop(httpx.BaseTransport):
    def __init__(self, starlette: testclient._TestClientTransport) -> None:
        self.starlette = starlette
        self._open: set[Callable[[], None]] = set()  # streams still open: closed with us

    def close(self) -> None:
        for close in list(self._open):
            close()
        self.starlette.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme in ("ws", "wss"):
            return self.starlette.handle_request(request)
        transport = self.starlette
        headers = [] if "host" in request.headers else [(b"host", url.netloc)]
        headers += [(k.lower().encode(), v.encode()) for k, v in request.headers.multi_items()]
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": request.method,
            "path": unquote(url.path),
            "raw_path": url.raw_path.split(b"?", 1)[0],
            "root_path": transport.root_path,
            "scheme": url.scheme,
            "query_string": url.query,
            "headers": headers,
            "client": transport.client,
            "server": [url.raw_host.decode("ascii"), url.port or _PORTS[url.scheme]],
            "extensions": {"http.response.debug": {}},
            "state": transport.app_state.copy(),
        }
        body = request.read()
        start: dict[str, Any] = {}
        parts: list[bytes] = []
        debug: dict[str, Any] = {}
        live: queue.SimpleQueue[Any] = queue.SimpleQueue()  # a streamed answer's chunks
        streaming: Future[None] = Future()  # set when a streamed answer starts
        loop: dict[str, Any] = {}  # the loop's side: its cancel scope and "answered" event

        async def receive() -> Message:
            if not loop["asked"]:
                loop["asked"] = True
                return {"type": "http.request", "body": body}
            await loop["answered"].wait()  # then the client is gone, as Starlette's says
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if content_type.split(b";")[0] in STREAMED:
                    streaming.set_result(None)
            elif message["type"] == "http.response.body":
                chunk = bytes(message.get("body", b""))
                (live.put if streaming.done() else parts.append)(chunk)
                if not message.get("more_body", False):
                    loop["answered"].set()
            elif message["type"] == "http.response.debug":
                debug.update(message["info"])

        async def run_app() -> None:
            loop.update(asked=False, answered=anyio.Event(), scope=anyio.CancelScope())
            try:
                with loop["scope"]:
                    await transport.app(scope, receive, send)
            finally:
                live.put(_END)

        with contextlib.ExitStack() as stack:
            portal = stack.enter_context(transport.portal_factory())
            done = portal.start_task_soon(run_app)

            @stack.callback
            def end() -> None:  # a stream closed before its end: the app is cancelled
                if not done.done():
                    portal.call(loop["scope"].cancel)
                wait([done])
                raised = None if done.cancelled() else done.exception()
                if raised is not None and transport.raise_server_exceptions:
                    raise raised

            wait([done, streaming], return_when=FIRST_COMPLETED)
            if not done.done():  # a streamed answer, handed over as it is written
                rest = stack.pop_all()
                self._open.add(rest.close)
                rest.callback(self._open.discard, rest.close)
                return self._response(request, start, debug, self._live(live), rest)
        if streaming.done():
            parts = list(self._live(live))
        return self._answer(request, start, parts, debug, done)

    def _answer(
        self,
        request: httpx.Request,
        start: dict[str, Any],
        parts: list[bytes],
        debug: dict[str, Any],
        done: Future[None],
    ) -> httpx.Response:
        raised = None if done.cancelled() else done.exception()
        if raised is not None and self.starlette.raise_server_exceptions:
            raise raised
        if not start:
            if self.starlette.raise_server_exceptions:
                raise AssertionError("TestClient did not receive any response.")
            start = {"status": 500}
        stream = httpx.ByteStream(b"" if request.method == "HEAD" else b"".join(parts))
        return self._response(request, start, debug, stream, None)

    @staticmethod
    def _live(live: queue.SimpleQueue[Any]) -> Iterator[bytes]:
        while (chunk := live.get()) is not _END:
            if chunk:
                yield chunk

    def _response(
        self,
        request: httpx.Request,
        start: dict[str, Any],
        debug: dict[str, Any],
        stream: Any,
        stack: contextlib.ExitStack | None,
    ) -> httpx.Response:
        if stack is not None:
            stream = _Stream(iter(stream), stack)
        response = httpx.Response(
            status_code=start["status"],
            headers=[(k.decode(), v.decode()) for k, v in start.get("headers", [])],
            stream=stream,
            request=request,
        )
        if debug:
            response.extensions["http.response.debug"] = debug
            for name in ("template", "context"):
                if name in debug:
                    setattr(response, name, debug[name])
        return response
