"""What every surface shares: JSON in and out, path ids, the request's issuer, and the
services the app owns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import jsontext
from sandbox.api.browser import HostVerdicts
from sandbox.api.faults import inbound_faults
from sandbox.api.replay import Replays
from sandbox.auth.guard import Guard, Principal
from sandbox.auth.oauth import TokenEndpoint
from sandbox.auth.ratelimit import RateLimiter, ceiling_for
from sandbox.auth.tokens import KeyRing
from sandbox.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    ValidationFailed,
)
from sandbox.faults import InboundFaults
from sandbox.recorder import Recorder
from sandbox.settings import Settings
from sandbox.webhooks.dispatcher import Dispatcher
from sandbox.world import World
from sandbox.world.audit import Actor
from sandbox.world.linked import Body

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


class VersionCache(Generic[T]):
    """Lists made for one data version of the store, kept until the next write. A write makes
    every one stale, so they are dropped as soon as the version moves: kept until a count cap
    filled, 256 dead ``/v1/alarms`` pages under a steady stream of events grew the server by
    tens of MB a minute (``make soak``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._version: Any = None
        self._items: dict[Any, T] = {}

    def get(self, version: Any, key: Any) -> T | None:
        if version != self._version:
            self._items.clear()
            self._version = version
        return self._items.get(key)

    def put(self, key: Any, value: T) -> None:
        """Keep ``value`` for the version the last :meth:`get` asked about."""
        if len(self._items) >= self.limit:
            self._items.clear()
        self._items[key] = value


@dataclass
class Services:
    """Everything the app owns, hung on ``app.state.services``."""

    settings: Settings
    world: World
    keys: KeyRing
    guard: Guard
    tokens: TokenEndpoint
    dispatcher: Dispatcher
    recorder: Recorder
    limiter: RateLimiter  # CHeKT's rate limits (off unless asked)
    faults: InboundFaults  # inbound fault rules
    list_cache: VersionCache[tuple[bytes, int]] = field(default_factory=lambda: VersionCache(1024))
    # lists whose links are made per request (/v1/alarms): their JSON, the links left open
    linked_lists: VersionCache[tuple[Body, int]] = field(default_factory=lambda: VersionCache(256))
    replays: Replays = field(init=False)  # polled lists' answers, replayed while they hold

    def __post_init__(self) -> None:
        self.replays = Replays(self.settings, HostVerdicts(self.settings))

    @property
    def base_url(self) -> str:
        """Where links in payloads point (snapshots, tracking)."""
        return (self.settings.issuer or self.settings.origin).rstrip("/")

    def calm(self) -> None:
        """Inbound faults, rate limits and the stamping skew back to what the settings say
        (a reset does this)."""
        self.faults = inbound_faults(self.settings)
        self.limiter.reset(self.settings.rate_limit, ceiling_for(self.settings.rate_limit))
        self.world.skew = self.settings.clock_skew

    def close(self) -> None:
        """Close the store's connection and the journal's spill files: the app is done."""
        self.world.store.close()
        self.recorder.clear()


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "req_unknown"))


def actor_of(request: Request, principal: Principal, surface: str) -> Actor:
    """Who is acting, for the audit log: the signed-in user, an app's key or a client."""
    if principal.user_id is not None:
        return Actor("user", principal.user_id, surface, principal.client_id, request_id(request))
    kind = "app" if principal.tier == "api_key" else "client"
    return Actor(kind, principal.client_id, surface, None, request_id(request))


def issuer_of(request: Request) -> str:
    """The pinned issuer, else the origin this request used (scheme, host and port)."""
    pinned = services(request).settings.issuer
    if pinned:
        return pinned if pinned.endswith("/") else pinned + "/"
    host = request.headers.get("host")
    if not host:
        server_host, server_port = request.scope.get("server") or ("localhost", 80)
        host = f"{server_host}:{server_port}"
    return f"{request.scope.get('scheme', 'http')}://{host}/"


def check_destination(request: Request, values: dict[str, Any]) -> None:
    """Refuse a webhook URL the dispatcher would never deliver to (e.g. our own port)."""
    url = values.get("url")
    if url is not None:
        problem = services(request).dispatcher.policy.url_problem(url)
        if problem is not None:
            raise ValidationFailed("url", f"url {problem}")


def path_id(request: Request, name: str) -> int:
    raw = request.path_params[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18 or int(raw) == 0:
        raise NotFound(f"{name} {raw!r} was not found; CHeKT ids are positive integers")
    return int(raw)


def parse_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid UTF-8") from None
    try:
        return jsontext.loads(text)
    except ValueError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None


async def read_json(request: Request) -> Any:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise BadRequest("send the body as JSON with Content-Type: application/json")
    raw = await request.body()  # the Limits middleware has bounded it by settings.max_body
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON document")
    return parse_json(raw)


def query_lists(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    return params


def reply(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=dict(headers or {}))


def no_content() -> Response:
    return Response(status_code=204)


def route(path: str, **handlers: Handler) -> Route:
    """One route serving several methods, answering 405 with ``Allow`` for the rest."""
    table = {method.upper(): handler for method, handler in handlers.items()}
    allow = ", ".join(sorted(table))

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler = table.get(method)
        if handler is None:
            raise MethodNotAllowed(
                f"{request.method} is not allowed here; use {allow}", headers={"Allow": allow}
            )
        return await handler(request)

    return Route(path, dispatch, methods=_ALL_METHODS)
