"""``create_app(settings)``: the one place where the store, clock, keys, guard and surfaces
are wired together into a Starlette app that owns them (``app.state.services``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from sandbox import ui
from sandbox.api import (
    apps,
    apps_stream,
    authorize,
    bridge,
    control,
    control_chaos,
    control_events,
    control_insights,
    control_record,
    dealer,
    dealer_activity,
    dealer_contacts,
    dealer_devices,
    dealer_verifications,
    events,
    live,
    media,
    oauth,
    partner,
    spec,
)
from sandbox.api.browser import BrowserGuard
from sandbox.api.common import Services, request_id
from sandbox.api.faults import FaultInjection, inbound_faults
from sandbox.api.limits import Limits
from sandbox.api.middleware import RequestContext
from sandbox.auth.assertions import AssertionVerifier
from sandbox.auth.clients import ensure_credentials
from sandbox.auth.guard import Guard
from sandbox.auth.oauth import TokenEndpoint
from sandbox.auth.ratelimit import RateLimiter, ceiling_for
from sandbox.auth.tokens import KeyRing
from sandbox.clock import Clock, make_clock
from sandbox.errors import ApiError, MethodNotAllowed, NotFound, OAuthError
from sandbox.net import DestinationPolicy
from sandbox.recorder import Recorder
from sandbox.settings import Settings, SettingsError
from sandbox.store import Store
from sandbox.webhooks.dispatcher import Dispatcher
from sandbox.world import World, inbound, subscriptions
from sandbox.world.live import LiveFrames
from sandbox.world.media import Media, configure
from sandbox.world.seed import seed_world


class _Sandbox(Starlette):
    """Starlette without its outermost layer, ``ServerErrorMiddleware``: the first of ours,
    :class:`RequestContext`, already turns any uncaught exception into the 500 envelope (the
    other never saw one), and every request, a replayed one most of all, then passes one
    wrapper of ``send`` fewer."""

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack.app if isinstance(stack, ServerErrorMiddleware) else stack


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    dealer_api = request.url.path.startswith(dealer.PREFIX)
    body = exc.body(request_id(request), detail=dealer_api)
    return JSONResponse(body, exc.status, headers=exc.headers)


async def _oauth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if exc.basic_challenge:
        headers["WWW-Authenticate"] = 'Basic realm="chekt"'
    if exc.cors:
        headers["Access-Control-Allow-Origin"] = "*"
    body = {"error": exc.error, "error_description": exc.description}
    return JSONResponse(body, exc.status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: ApiError
    if exc.status_code == 404:
        error = NotFound(f"no endpoint at {request.url.path}")
    elif exc.status_code == 405:
        error = MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}",
            headers=dict(exc.headers or {}),
        )
    else:
        error = ApiError(str(exc.detail))
        error.status = exc.status_code
        error.code = "bad_request" if exc.status_code == 400 else "http_error"
    return await _api_error(request, error)


def build_services(
    settings: Settings,
    store: Store | None = None,
    clock: Clock | None = None,
    draw_apart: bool = False,
) -> Services:
    store = store or Store(settings.db)
    clock = clock or make_clock(settings.clock)
    base_url = (settings.issuer or settings.origin).rstrip("/")
    world = World(store, clock, settings.timestamp_style, base_url, draws_apart=draw_apart)
    if store.get_meta("seed") != str(settings.seed):
        seed_world(world, settings.seed, settings.dealers, settings.sites_per_dealer)
        store.set_meta("seed", str(settings.seed))
    ensure_credentials(world, settings)
    configure(store, settings.media_url_lifetime)
    keys = KeyRing(store, clock.now())
    policy = DestinationPolicy(
        allow_private=settings.allow_private_destinations, own_ports=settings.own_ports
    )
    dispatcher = Dispatcher(world, settings, policy)  # drives a virtual clock while it runs
    subscriptions.ensure_callback(world, settings)
    world.skew = settings.clock_skew
    return Services(
        settings=settings,
        world=world,
        keys=keys,
        guard=Guard(world, keys, settings),
        tokens=TokenEndpoint(world, keys, settings, AssertionVerifier(world, policy)),
        dispatcher=dispatcher,
        recorder=Recorder(settings.journal_entries, settings.journal_bytes),
        limiter=RateLimiter(world.now, ceiling_for(settings.rate_limit), settings.rate_limit),
        faults=inbound_faults(settings),
    )


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    dispatcher: Dispatcher = app.state.services.dispatcher
    await dispatcher.start()
    try:
        yield
    finally:
        await dispatcher.stop()


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    draw_apart: bool = False,
) -> Starlette:
    """The sandbox's app. ``draw_apart``: draw the seeded world in a child process (what a
    long-running ``serve`` does, so Faker's memory never enters it)."""
    settings = settings or Settings()
    app = _Sandbox(
        # the Partner API first: it is the hot path, and routes are matched in order
        routes=[
            *partner.routes,
            *events.routes,
            *apps.routes,
            *apps_stream.routes,
            *dealer.routes,
            *dealer_contacts.routes,
            *dealer_activity.routes,
            *dealer_verifications.routes,
            *dealer_devices.routes,
            *live.routes,
            *oauth.routes,
            *authorize.routes,
            *control.routes,
            *control_events.routes,
            *control_chaos.routes,
            *control_record.routes,
            *control_insights.routes,
            *media.routes,
            *spec.routes,
            *ui.routes,
        ],
        middleware=[
            Middleware(RequestContext),
            Middleware(BrowserGuard, settings=settings),  # refusals get a request id, a record
            Middleware(FaultInjection),  # outside the self-check: it sees the real response
            *_self_check(settings),  # inside the context: the journal keeps what clients got
            Middleware(
                Limits,
                max_body=settings.max_body,
                max_headers=settings.max_headers,
                timeout=settings.request_timeout,
                uploads=(events.PATH + "/", max(inbound.UPLOAD_LIMITS.values())),
            ),
        ],
        lifespan=lifespan,
        exception_handlers={
            ApiError: _api_error,
            OAuthError: _oauth_error,
            HTTPException: _http_error,
        },
    )
    app.state.services = build_services(settings, store, clock, draw_apart)
    app.state.media = Media(app.state.services.world.store, settings.seed)
    app.state.live = LiveFrames(settings.seed)
    app.state.bell = apps_stream.Bell(app.state.services.world.store)
    app.state.dashboard = ui.Dashboard()
    app.state.server_errors = []
    app.state.bridge_url = None  # set once the bridges' listener serves
    app.state.bridge_wanted = None  # the port asked for it (serve falls back off a taken 30003)
    return app


def bridge_app(main: Starlette) -> Starlette:
    """The bridges' local API (``serve --bridge-port``): a listener of its own that shares
    ``main``'s services (store, clock, journal), so a bridge's alarm is the record's alarm.
    Its failures are reported with ``main``'s."""
    settings: Settings = main.state.services.settings
    app = _Sandbox(
        routes=bridge.routes,
        middleware=[
            Middleware(RequestContext, surface=bridge.SURFACE),
            Middleware(BrowserGuard, settings=settings),
            Middleware(
                Limits,
                max_body=inbound.BRIDGE_MAX_BODY,
                max_headers=settings.max_headers,
                timeout=settings.request_timeout,
            ),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )
    app.state.services = main.state.services
    app.state.server_errors = main.state.server_errors
    return app


def _self_check(settings: Settings) -> list[Middleware]:
    if not settings.check_responses:
        return []
    try:
        from sandbox.api.conformance import ResponseCheck, document_check
    except ImportError as exc:  # jsonschema comes with the dev extra
        raise SettingsError(f"check_responses needs the jsonschema package ({exc})") from None
    return [Middleware(ResponseCheck, check=document_check())]
