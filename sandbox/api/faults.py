"""Inbound faults, as pure ASGI middleware: a request a rule strikes (:mod:`sandbox.faults`)
waits its latency on real time (never the sandbox clock), then is answered with an error in
its surface's own envelope, dropped, or answered with its real response emptied, cut short
or made malformed. The journal marks it (``fault``).

It sits outside the OpenAPI self-check, which sees the real response and never the broken
one a rule makes of it, and inside the request context, which journals what the client got.
An error or a drop strikes before the request is handled unless the rule says
``processed``; a changed body is always the handled request's own.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.auth.guard import TIERS
from sandbox.auth.oauth import basic_credentials
from sandbox.faults import InboundFaults, Strike, surface_of
from sandbox.settings import Settings, SettingsError

HANG_UP = "chekt.hang_up"  # scope key: closes the connection (set by sandbox.protocol)
STREAMED = b"text/event-stream"
_CODES = {
    400: "bad_request",
    401: "invalid_token",
    403: "permission_denied",
    404: "not_found",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
_OAUTH_CODES = {
    400: "invalid_request",
    401: "invalid_client",
    403: "access_denied",
    429: "too_many_requests",
    503: "temporarily_unavailable",
}


def inbound_faults(settings: Settings) -> InboundFaults:
    """The settings file's rules, in force (and in force again after every reset)."""
    faults = InboundFaults(settings.seed)
    for index, spec in enumerate(settings.faults):
        if spec.tier is not None and spec.tier not in TIERS:
            raise SettingsError(f"settings: faults[{index}].tier must be one of {', '.join(TIERS)}")
        faults.add(spec)
    return faults


class FaultInjection:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = scope["app"].state.services
        faults: InboundFaults = services.faults
        if not faults.rules:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        surface = surface_of(path)
        strike = (
            None
            if surface == "control"
            else faults.strike(scope["method"], path, surface, lambda: _caller(scope, services))
        )
        if strike is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["fault"] = strike.mark()
        if strike.delay_ms:
            await asyncio.sleep(strike.delay_ms / 1000)
        await _apply(self.app, strike, surface, scope, receive, send)


def _caller(scope: Scope, services: Any) -> tuple[str | None, str | None]:
    """Who the request says it is (unverified, as the journal names a refused request)."""
    raw = next((v for k, v in scope["headers"] if k == b"authorization"), None)
    if raw is None:
        return None, None
    authorization = raw.decode("latin-1")
    if authorization[:6].lower() == "basic ":
        basic = basic_credentials(authorization)
        return (basic[0] if basic else None), "secret"
    if authorization[:7].lower() == "bearer ":
        claimed: tuple[str | None, str | None] = services.guard.claimed(authorization)
        return claimed
    return None, None


async def _apply(
    app: ASGIApp, strike: Strike, surface: str | None, scope: Scope, receive: Receive, send: Send
) -> None:
    spec = strike.spec
    if spec.status is None and not spec.drop and not spec.mangles:
        await app(scope, receive, send)  # latency alone
        return
    if not spec.mangles and not spec.processed:
        await _strike_now(strike, surface, scope, send)
        return
    held: list[Message] = []
    streamed = False

    async def hold(message: Message) -> None:
        nonlocal streamed
        if message["type"] == "http.response.start":
            streamed = STREAMED in dict(message.get("headers", [])).get(b"content-type", b"")
        if streamed:  # an endless stream cannot be held: it passes unharmed
            await send(message)
        else:
            held.append(message)

    await app(scope, receive, hold)
    if streamed or not held:
        return
    if not spec.mangles:
        await _strike_now(strike, surface, scope, send)  # handled, then struck
        return
    await _mangled(strike, held, scope, send)


async def _strike_now(strike: Strike, surface: str | None, scope: Scope, send: Send) -> None:
    if strike.spec.drop:
        await _hang_up(scope, send)
        return
    status = strike.spec.status
    assert status is not None
    request_id = scope.get("state", {}).get("request_id", "req_unknown")
    message = f"the sandbox injected this {status} (fault rule {strike.rule.id})"
    headers = [(b"content-type", b"application/json")]
    if surface == "auth":
        body: dict[str, Any] = {
            "error": _OAUTH_CODES.get(status, "server_error" if status >= 500 else "access_denied"),
            "error_description": message,
        }
        headers += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
    else:
        error: dict[str, Any] = {
            "code": _CODES.get(status, "http_error"),
            "message": message,
            "request_id": request_id,
        }
        if surface == "dealer":
            error["detail"] = None
        body = {"error": error}
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="chekt", error="invalid_token"'))
    if strike.spec.retry_after is not None:
        headers.append((b"retry-after", str(strike.spec.retry_after).encode()))
    raw = json.dumps(body).encode()
    headers.append((b"content-length", str(len(raw)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


async def _mangled(strike: Strike, held: list[Message], scope: Scope, send: Send) -> None:
    """The handled response, emptied, cut short (then hung up) or made malformed JSON."""
    spec = strike.spec
    start = held[0]
    body = b"".join(m.get("body", b"") for m in held[1:] if m["type"] == "http.response.body")
    headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
    if spec.truncate is not None:
        part = body[: int(len(body) * spec.truncate)]
        headers.append((b"content-length", str(len(body)).encode()))  # the whole was promised
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": part, "more_body": True})
        await _hang_up(scope, send, started=True)
        return
    sent = b"" if spec.empty else (body[: len(body) // 2] if len(body) > 1 else b'{"')
    headers.append((b"content-length", str(len(sent)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": sent})


async def _hang_up(scope: Scope, send: Send, *, started: bool = False) -> None:
    """Close the connection; without the sandbox's server (a TestClient), the nearest thing:
    a response that promises a body and ends without it."""
    hang_up = scope.get(HANG_UP)
    if hang_up is not None:
        hang_up()
        return
    if started:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]}
    )
    await send({"type": "http.response.body", "body": b"", "more_body": False})
