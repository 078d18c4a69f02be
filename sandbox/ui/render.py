"""Rendering the dashboard's pages: one Jinja2 environment (autoescaping every value), what
every page shows (the clock, the navigation, the CSRF token), and the guard each handler
goes through."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sandbox.api.common import services
from sandbox.errors import ApiError
from sandbox.ui.access import (
    CSRF_COOKIE,
    CSRF_HEADER,
    PREFIX,
    csrf_token,
    set_cookie,
    signed_in,
)

if TYPE_CHECKING:
    import jinja2

Handler = Callable[[Request], Awaitable[Response]]
NAV = (
    ("requests", "Requests"),
    ("deliveries", "Deliveries"),
    ("emit", "Emit"),
    ("inbound", "Inbound"),
    ("report", "Report card"),
    ("coverage", "Coverage"),
    ("credentials", "Credentials"),
    ("world", "World"),
)


def when(value: Any) -> str:
    """A sandbox-clock time (unix seconds) as UTC, to the millisecond."""
    if value is None or value == "":
        return "—"
    moment = datetime.fromtimestamp(float(value), UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def pretty(value: Any) -> str:
    """A body for reading: JSON indented, text as it is."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


class Dashboard:
    """The template environment, made once per app (``app.state.dashboard``) when the first
    page is rendered: a ``serve`` nobody opens in a browser never loads Jinja2."""

    @cached_property
    def env(self) -> jinja2.Environment:
        import jinja2

        env = jinja2.Environment(
            loader=jinja2.PackageLoader("sandbox.ui", "templates"),
            autoescape=True,  # every value, in every template, whatever its file name
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["when"] = when
        env.filters["pretty"] = pretty
        env.globals["prefix"] = PREFIX
        env.globals["nav"] = NAV
        env.globals["csrf_header"] = CSRF_HEADER
        return env

    def html(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        s = services(request)
        clock = s.world.clock
        context = {
            "clock": {"now": clock.now(), "virtual": clock.virtual},
            "csrf": csrf_token(request),
            "loopback": s.settings.loopback,
            "request": request,
            **context,
        }
        body = self.env.get_template(template).render(context)
        response = HTMLResponse(body, status, headers={"Cache-Control": "no-store"})
        if request.cookies.get(CSRF_COOKIE) != context["csrf"]:
            set_cookie(request, response, CSRF_COOKIE, context["csrf"])
        return response


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard.html(request, template, status, **context)


def guarded(handler: Handler) -> Handler:
    """Signed in, or sent to the login form (a page) or refused (a fragment, a form post);
    a refusal of the record or a bad field is shown on the page, never as a JSON error."""

    async def guard(request: Request) -> Response:
        if not signed_in(request):
            navigating = "hx-request" not in request.headers and "text/event-stream" not in (
                request.headers.get("accept", "")
            )
            if request.method == "GET" and navigating:
                return RedirectResponse(f"{PREFIX}/login", 303)
            return HTMLResponse("sign in again", 401, headers={"Cache-Control": "no-store"})
        try:
            return await handler(request)
        except ApiError as exc:  # htmx swaps (and the console stays quiet) only on a 2xx
            status = 200 if "hx-request" in request.headers else exc.status
            return render(request, "flash.html", status, error=exc.message)

    return guard


def page_and_part(
    page: str, template: str, part: str, context: Callable[[Request], dict[str, Any]]
) -> tuple[Handler, Handler]:
    """A page and the fragment of it that live updates fetch again, both drawn from the
    same ``context``: the page's ``template`` includes ``part``."""

    @guarded
    async def whole(request: Request) -> Response:
        return render(request, template, page=page, **context(request))

    @guarded
    async def fragment(request: Request) -> Response:
        return render(request, part, **context(request))

    return whole, fragment
