"""Pure ASGI middleware (Starlette's ``BaseHTTPMiddleware`` costs about 3x in throughput):
gives every request an id, echoes the partner's trace id, and turns any uncaught exception
into a 500 envelope so a client never sees a bare traceback or a dropped connection."""

from __future__ import annotations

import json
import logging
import os
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.errors import ApiError, ValidationFailed

log = logging.getLogger("sandbox")
TRACE_HEADER = b"x-partner-trace-id"


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + os.urandom(10).hex()
        trace_id = next((v for k, v in scope["headers"] if k == TRACE_HEADER), None)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        extra = [(b"x-request-id", request_id.encode())]
        started = False

        async def send_with_ids(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        if trace_id is not None:
            try:
                state["trace_id"] = str(uuid.UUID(trace_id.decode("latin-1")))
            except ValueError:
                error = ValidationFailed("x-partner-trace-id", "x-partner-trace-id must be a UUID")
                await _send_error(send_with_ids, error, request_id)
                return
            extra.append((TRACE_HEADER, trace_id))
        try:
            await self.app(scope, receive, send_with_ids)
        except Exception as exc:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            app = scope.get("app")
            if app is not None:
                app.state.server_errors.append(exc)
            if not started:
                await _send_error(
                    send_with_ids,
                    ApiError("the sandbox failed to handle this request; this is a bug"),
                    request_id,
                )


async def _send_error(send: Send, error: ApiError, request_id: str) -> None:
    body = json.dumps(error.body(request_id)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
