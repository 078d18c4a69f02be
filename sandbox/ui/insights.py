"""The dashboard's judging pages: the report card (with a forged delivery per subscription,
for its ``signature_checked`` finding), coverage of the documented surface, and the events
devices and partners posted inbound. The judging and the listing are the control API's own
functions (:mod:`sandbox.api.control_insights`, :func:`sandbox.world.inbound.listing`); this
module only bounds them (the newest ``RECENT`` requests and attempts, so a page stays fast
with a full journal) and shapes them for the templates."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import services
from sandbox.api.control_insights import covered, forge, judged
from sandbox.insights.coverage import percent
from sandbox.ui.access import form
from sandbox.ui.render import guarded, page_and_part, render
from sandbox.world import inbound, subscriptions

RECENT = 2000  # journal entries (and delivery attempts) a page judges: the newest ones
INBOUND = 100  # inbound events listed
VERDICTS = {True: "PASS", False: "FAIL", None: "—"}
CHANGED = "sandbox-changed"


def _card(request: Request) -> dict[str, Any]:
    card = judged(services(request), {}, RECENT)
    return {
        "card": card,
        "verdicts": VERDICTS,
        "recent": RECENT,
    }


@guarded
async def report_page(request: Request) -> Response:
    subs = subscriptions.list_all(services(request).world)
    return render(request, "report.html", page="report", subscriptions=subs, **_card(request))


@guarded
async def report_card(request: Request) -> Response:
    return render(request, "report_card.html", **_card(request))


@guarded
async def forge_submit(request: Request) -> Response:
    """The card's button: the same forged delivery ``POST
    /_sandbox/subscriptions/{id}/forged`` sends, and how the receiver took it."""
    fields = await form(request)
    sent = await forge(services(request), fields.get("webhook_id", ""))
    status = sent["status_code"] if sent["status_code"] is not None else "no answer"
    message = f"forged delivery to {sent['webhook_id']}: {status} ({sent['verdict']})"
    response = render(request, "flash.html", message=message)
    response.headers["HX-Trigger"] = CHANGED
    return response


def _coverage(request: Request) -> dict[str, Any]:
    found = covered(services(request), {}, RECENT)
    only_untouched = request.query_params.get("untouched") == "1"
    operations = [op for op in found["operations"] if not (only_untouched and op["calls"])]
    return {
        "report": found,
        "operations": operations,
        "untouched": only_untouched,
        "percent": percent(found),
        "recent": RECENT,
    }


coverage_page, coverage_body = page_and_part(
    "coverage", "coverage.html", "coverage_body.html", _coverage
)


def _inbound(request: Request) -> dict[str, Any]:
    """The newest inbound events, newest first, each with its alarm's state now."""
    world = services(request).world
    last = int(world.store.scalar("SELECT MAX(seq) FROM inbound") or 0)
    rows = inbound.listing(world, {"since_seq": max(0, last - INBOUND)}, INBOUND)[::-1]
    alarm_ids = sorted({r["alarm_id"] for r in rows if r["alarm_id"]})
    states: dict[str, str] = {}
    if alarm_ids:
        found = world.store.all(
            f"SELECT alarm_id, state FROM alarms WHERE alarm_id IN "
            f"({','.join('?' * len(alarm_ids))})",
            alarm_ids,
        )
        states = {str(r["alarm_id"]): str(r["state"]) for r in found}
    return {"events": rows, "states": states, "limit": INBOUND}


inbound_page, inbound_rows = page_and_part("inbound", "inbound.html", "inbound_rows.html", _inbound)
