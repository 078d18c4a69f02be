"""The dashboard, ``/_sandbox/ui``: server-rendered pages (Jinja2) a partner keeps open while
developing — the live request journal, the deliveries timeline, Emit, the clock, inbound
events, the report card, coverage, credentials and subscriptions, the world. Live updates
come from server-sent events and htmx (vendored in ``static/``, nothing fetched at run
time). The same rules as the control API hold (see :mod:`sandbox.ui.access`)."""

from __future__ import annotations

from pathlib import Path

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sandbox.api.common import route
from sandbox.ui import insights, pages, setup, stream
from sandbox.ui.access import PREFIX, Protected
from sandbox.ui.render import Dashboard

__all__ = ["PREFIX", "Dashboard", "routes"]


async def _root(request: Request) -> Response:
    """``/``: a browser that opens the sandbox's base URL lands on the dashboard."""
    return RedirectResponse(f"{PREFIX}/requests", 303)


def _pages() -> list[BaseRoute]:
    return [
        route("/", GET=pages.home),
        route("/requests", GET=pages.requests_page),
        route("/requests/rows", GET=pages.requests_rows),
        route("/requests/{seq}", GET=pages.request_detail),
        route("/deliveries", GET=pages.deliveries_page),
        route("/deliveries/timeline", GET=pages.deliveries_timeline),
        route("/deliveries/attempts/{seq}", GET=pages.attempt_detail),
        route("/deliveries/resend", POST=pages.resend),
        route("/deliveries/recover", POST=pages.recover),
        route("/emit", GET=pages.emit_page, POST=pages.emit_submit),
        route("/clock", GET=pages.clock_badge, POST=pages.clock_move),
        route("/report", GET=insights.report_page),
        route("/report/card", GET=insights.report_card),
        route("/report/forged", POST=insights.forge_submit),
        route("/coverage", GET=insights.coverage_page),
        route("/coverage/body", GET=insights.coverage_body),
        route("/inbound", GET=insights.inbound_page),
        route("/inbound/rows", GET=insights.inbound_rows),
        route("/credentials", GET=setup.credentials_page),
        route("/credentials/reveal", GET=setup.reveal),
        route("/subscriptions", POST=setup.add_subscription),
        route("/subscriptions/status", POST=setup.set_subscription),
        route("/world", GET=setup.world_page),
        route("/world/alarms", GET=setup.alarms_table),
        route("/stream", GET=stream.stream),
        route("/login", GET=setup.login_page, POST=setup.login),
        route("/logout", POST=setup.logout),
        Mount("/static", StaticFiles(directory=Path(__file__).with_name("static"))),
    ]


routes: list[BaseRoute] = [
    Route("/", _root, methods=["GET", "HEAD"]),
    Mount(PREFIX, routes=_pages(), middleware=[Middleware(Protected)]),
]
