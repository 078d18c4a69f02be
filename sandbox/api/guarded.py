"""The guarded endpoint every API surface shares: authenticate the bearer credential, check
the scope, and apply ``Idempotency-Key`` semantics to writes."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import Handler, actor_of, issuer_of, services
from sandbox.api.replay import rate_headers
from sandbox.auth.guard import Principal
from sandbox.errors import ApiError, BadRequest, Unauthorized
from sandbox.world import audit, idempotency

Impl = Callable[[Request, Principal], Awaitable[Response]]
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def endpoint(scope: str | None, *, api_key_only: str | None = None) -> Callable[[Impl], Handler]:
    """``api_key_only`` names an API that takes an API key, never a token (the Apps API,
    the dealer API); those audit their own changes, as happenings. A Partner API write that
    succeeds is audited here, as the method and route it took."""

    def wrap(impl: Impl) -> Handler:
        async def handler(request: Request) -> Response:
            if "access_token" in request.query_params:
                raise BadRequest(
                    "send the token only in the Authorization header, never in the query string "
                    "(RFC 6750 §2.3 is not supported)",
                    code="invalid_request",
                    headers={"WWW-Authenticate": 'Bearer realm="chekt", error="invalid_request"'},
                )
            found = services(request)
            principal = found.guard.authenticate(
                request.headers.get("authorization"), lambda: issuer_of(request)
            )
            request.state.principal = principal
            if found.limiter.active:
                return await _limited(request, principal, guarded)
            return await guarded(request, principal)

        async def guarded(request: Request, principal: Principal) -> Response:
            if api_key_only and principal.tier != "api_key":
                raise Unauthorized(
                    f"{api_key_only} takes an API key (Bearer chekt_test_...), not an access token",
                    code="invalid_api_key",
                    error="invalid_token",
                )
            if scope is not None:
                principal.require(scope)
            key = request.headers.get("idempotency-key")
            if key is None or request.method not in _WRITES:
                return await act(request, principal)
            return await _idempotent(request, principal, key, act)

        act = impl if api_key_only else _audited(impl)
        return handler

    return wrap


async def _limited(request: Request, principal: Principal, guarded: Impl) -> Response:
    """Take a token from the client's bucket (429 when empty) and put the rate-limit headers
    on whatever the request is answered, errors included."""
    headers = services(request).limiter.take(principal.client_id)
    if headers is None:
        return await guarded(request, principal)
    try:
        response = await guarded(request, principal)
    except ApiError as exc:
        exc.headers.update(headers)
        raise
    # new names on the answer: appended as they are, without MutableHeaders' rescans
    response.raw_headers.extend(rate_headers(headers))
    return response


def _audited(impl: Impl) -> Impl:
    async def act(request: Request, principal: Principal) -> Response:
        response = await impl(request, principal)
        if request.method in _WRITES and response.status_code < 400:
            route = request.scope.get("route")
            template = getattr(route, "path", request.url.path)
            audit.write(
                services(request).world,
                actor_of(request, principal, "partner"),
                f"{request.method} {template}",
                request.url.path,
                dealer_id=principal.dealer_id,
            )
        return response

    return act


async def _idempotent(request: Request, principal: Principal, key: str, impl: Impl) -> Response:
    world = services(request).world
    raw = await request.body()
    fingerprint = hashlib.sha256(request.url.query.encode() + b"\0" + raw).hexdigest()
    where = (principal.client_id, request.method, request.url.path, key)
    replay = idempotency.begin(
        world, *where, fingerprint, services(request).settings.idempotency_ttl
    )
    if replay is not None:
        status, body = replay
        media = "application/json" if body else None
        return Response(body, status, {"Idempotent-Replayed": "true"}, media_type=media)
    try:
        response = await impl(request, principal)
    except BaseException:
        idempotency.abandon(world, *where)
        raise
    idempotency.finish(world, *where, response.status_code, bytes(response.body))
    return response
