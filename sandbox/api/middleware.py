"""Pure ASGI middleware (Starlette's ``BaseHTTPMiddleware`` costs about 3x in throughput):
gives every request an id, echoes the partner's trace id, records the exchange in the
journal (credentials hidden before it is stored), and turns any uncaught exception into a 500
envelope so a client never sees a bare traceback or a dropped connection. It also answers a
polled list again from the answer its handler gave, while that answer holds
(:mod:`sandbox.api.replay`): the one layer every request passes reads its headers once."""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.api.replay import PENDING, Key, Replay
from sandbox.auth.guard import Guard
from sandbox.clock import time_header
from sandbox.errors import ApiError
from sandbox.logs import safe_logger
from sandbox.recorder import BODY_LIMIT, Entry, pack

log = safe_logger("sandbox")
TRACE_HEADER = b"x-partner-trace-id"


class RequestContext:
    """``surface`` marks every entry of a listener that serves one surface (the bridge's)."""

    def __init__(self, app: ASGIApp, surface: str | None = None) -> None:
        self.app = app
        self.surface = surface
        # request ids: a random per-process prefix and a counter (urandom per request costs)
        self._prefix = "req_" + os.urandom(5).hex()
        self._counter = itertools.count(1)
        self._app: Any = None
        self._services: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"{self._prefix}{next(self._counter):010x}"
        # one pass over the headers: what this layer and a replay need (first of each name)
        trace_id = authorization = host = None
        size = 0
        for name, value in scope["headers"]:
            size += len(name) + len(value)
            if name == b"authorization":
                authorization = authorization or value
            elif name == b"host":
                host = value if host is None else host
            elif name == TRACE_HEADER:
                trace_id = trace_id or value
            elif name == b"content-length" or name == b"transfer-encoding":
                size = -(1 << 62)  # a body: never replayed
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        if self.surface is not None:
            state["surface"] = self.surface
        extra = [(b"x-request-id", request_id.encode())]
        if trace_id is not None:
            _trace(state, trace_id)
            extra.append((TRACE_HEADER, trace_id))
        app = scope["app"]
        if app is not self._app:  # the services, looked up once (Starlette's State is slow)
            self._app, self._services = app, app.state.services
        services = self._services
        clock_started = time.perf_counter()
        key: Key = (
            scope["path"],
            scope.get("query_string", b""),
            authorization or b"",
            host,
            scope.get("scheme", "http"),
            None if host is not None else tuple(scope.get("server") or ()),
        )
        # the main listener's polled lists (a bridge's listener serves other routes)
        if authorization is not None and scope["method"] == "GET" and self.surface is None:
            replay = _found(services, key, size, app)
            if replay is not None:
                await _replayed(scope, send, services, state, replay, extra, key[2], clock_started)
                return
        await self._handled(scope, receive, send, services, state, extra, key, clock_started)

    async def _handled(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        services: Any,
        state: dict[str, Any],
        extra: list[tuple[bytes, bytes]],
        key: Key,
        clock_started: float,
    ) -> None:
        """The request the normal way, through the app; its answer kept for replay when its
        handler offered it."""
        request_id: str = state["request_id"]
        app = scope["app"]
        recording = not scope["path"].startswith("/_sandbox")
        entry = Entry(
            seq=0,
            time=services.world.now(),
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b""),
            headers=pack(scope["headers"]),
            body=b"",
            request_id=request_id,
        )
        request_body: list[bytes] = []
        response_body: list[bytes] = []
        kept = 0  # bytes of the response body recorded
        started = False

        async def receive_recorded() -> Message:
            message = await receive()
            if message["type"] == "http.request" and sum(map(len, request_body)) < BODY_LIMIT:
                request_body.append(message.get("body", b""))
            return message

        async def send_with_ids(message: Message) -> None:
            nonlocal kept, started
            if message["type"] == "http.response.start":
                started = True
                clock = time_header(services.world.now())  # at the answer: advance moves it
                headers = [*message.get("headers", []), *extra, clock]
                message["headers"] = headers
                entry.status = message["status"]
                entry.response_headers = pack(headers)
                offered = state.pop(PENDING, None)
                if (
                    offered is not None
                    and message["status"] == 200
                    and keepable
                    and "fault" not in state
                ):
                    services.replays.keep(key, offered, state.get("principal"))
            elif message["type"] == "http.response.body" and kept < BODY_LIMIT:
                chunk = message.get("body", b"")
                response_body.append(chunk)
                kept += len(chunk)
            await send(message)

        keepable = scope["method"] == "GET" and self.surface is None
        try:
            await self.app(scope, receive_recorded if recording else receive, send_with_ids)
        except Exception as exc:
            _failed(scope, app, exc)
            if not started:
                await send_error(
                    send_with_ids,
                    ApiError("the sandbox failed to handle this request; this is a bug"),
                    request_id,
                )
        finally:
            if recording:
                raw_authorization = key[2] or None
                authorization_text = _finish(
                    entry,
                    state,
                    request_body,
                    response_body,
                    clock_started,
                    services.guard,
                    raw_authorization,
                )
                services.recorder.add(entry, _revealable(services.guard, authorization_text, state))


def _failed(scope: Scope, app: Any, exc: Exception) -> None:
    log.exception("unhandled error in %r %r", scope.get("method"), scope.get("path"))
    app.state.server_errors.append(exc)


def _found(services: Any, key: Key, size: int, app: Any) -> Replay | None:
    """The replay for ``key``, or None; a failure to look is reported, and the request then
    goes the normal way."""
    try:
        replay: Replay | None = services.replays.find(services, key, size)
    except Exception as exc:
        log.exception("looking for a replay of %r failed", key[0])
        app.state.server_errors.append(exc)
        return None
    return replay


async def _replayed(
    scope: Scope,
    send: Send,
    services: Any,
    state: dict[str, Any],
    replay: Replay,
    extra: list[tuple[bytes, bytes]],
    authorization: bytes,
    clock_started: float,
) -> None:
    """Answer with ``replay`` and record it as any answer (see :mod:`sandbox.api.replay`).
    Nothing is awaited before the answer starts, so the request's moment is the answer's."""
    now = services.world.now()
    clock = time_header(now)
    principal = state["principal"] = replay.principal
    body = replay.body
    headers = [*replay.headers, *extra, clock]
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    except Exception as exc:
        _failed(scope, scope["app"], exc)
    finally:
        if not scope["path"].startswith("/_sandbox"):
            # the headers the sandbox made (request id, clock, the answer's checked once) are
            # plain; only an echoed trace id is checked, as in any other answer
            if not replay.packed:
                packed, plain = pack(headers), 0
            elif len(extra) == 1:  # no trace id: all of them
                packed = b"\n".join([replay.packed, pack(extra), pack([clock])])
                plain = len(packed)
            else:
                known = replay.packed + b"\n" + pack(extra[:1])
                packed, plain = known + b"\n" + pack([*extra[1:], clock]), len(known)
            entry = Entry(
                seq=0,
                time=now,
                method="GET",
                path=scope["path"],
                query=scope.get("query_string", b""),
                headers=pack(scope["headers"]),
                body=b"",
                status=200,
                response_headers=packed,
                response_body=body[:BODY_LIMIT],
                duration_ms=round((time.perf_counter() - clock_started) * 1000, 3),
                client_id=principal.client_id,
                tier=principal.tier,
                dealer_id=principal.dealer_id,
                trace_id=state.get("trace_id"),
                request_id=state["request_id"],
                note=state.get("note"),
                plain_head=plain,
                response_type=replay.content_type,
                response_repeats=replay.repeats and len(body) <= BODY_LIMIT,
            )
            text = authorization.decode("latin-1")
            services.recorder.add(entry, _revealable(services.guard, text, state))


def _trace(state: dict[str, Any], raw: bytes) -> None:
    """The partner's trace id; one that is not a UUID is still echoed, and noted."""
    text = raw.decode("latin-1")
    try:
        state["trace_id"] = str(uuid.UUID(text))
    except ValueError:
        state["trace_id"] = text
        state["note"] = "x-partner-trace-id is not a UUID"


def _finish(
    entry: Entry,
    state: dict[str, Any],
    request_body: list[bytes],
    response_body: list[bytes],
    started: float,
    guard: Guard,
    raw_authorization: bytes | None,
) -> str | None:
    """Fill in what the exchange told; returns the (first) Authorization header it carried."""
    entry.body = b"".join(request_body)[:BODY_LIMIT]
    entry.response_body = b"".join(response_body)[:BODY_LIMIT]
    entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    entry.trace_id = state.get("trace_id")
    entry.note = state.get("note")
    entry.fault = state.get("fault")
    entry.surface = state.get("surface")
    authorization = None if raw_authorization is None else raw_authorization.decode("latin-1")
    principal = state.get("principal")
    if principal is not None:
        entry.client_id = principal.client_id
        entry.tier = principal.tier
        entry.dealer_id = principal.dealer_id
    elif "tier" in state:
        entry.client_id = state.get("client_id")
        entry.tier = state["tier"]
    elif authorization is not None and authorization[:7].lower() == "bearer ":
        entry.client_id, entry.tier = guard.claimed(authorization)  # refused: who it claimed
    return authorization


def _revealable(
    guard: Guard, authorization: str | None, state: dict[str, Any]
) -> Callable[[str], bool]:
    """Which hidden credentials the journal may keep for reveal: test credentials only."""
    accepted = None
    if authorization is not None and state.get("principal") is not None:
        accepted = authorization.partition(" ")[2].strip()  # the guard verified it

    def test(value: str) -> bool:
        return value == accepted or guard.test_credential(value)

    return test


async def send_error(send: Send, error: ApiError, request_id: str, *, close: bool = False) -> None:
    """Answer with the envelope directly (``close`` when the body was not read)."""
    body = json.dumps(error.body(request_id)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
        *([(b"connection", b"close")] if close else []),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
