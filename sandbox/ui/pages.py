"""The dashboard's working pages: the request journal, the deliveries timeline, the Emit
form and the clock. Each reads and acts through the functions the control API uses."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sandbox.api.common import request_id, services
from sandbox.api.control import check_filters
from sandbox.api.control_events import attempt_view, emit, move_clock
from sandbox.errors import NotFound, ValidationFailed
from sandbox.recorder import export, summary
from sandbox.ui.access import PREFIX, form
from sandbox.ui.render import guarded, page_and_part, render
from sandbox.ui.timeline import timelines
from sandbox.vocabulary import RESOLUTIONS
from sandbox.webhooks import outbox
from sandbox.world import catalog, subscriptions
from sandbox.world.audit import Actor
from sandbox.world.catalog import EVENT_TYPES

PAGE = 50
REQUEST_FILTERS = ("method", "path", "client_id", "tier", "status")
CHANGED = "sandbox-changed"  # what a form's answer tells the page: refresh what is live
ADVANCES = (("+5 m", 300), ("+1 h", 3600), ("+24 h", 86400))


def _journal_page(request: Request) -> dict[str, Any]:
    """One page of the journal, newest first, with the filters the page was asked for."""
    asked = {k: v.strip() for k, v in request.query_params.items() if k in REQUEST_FILTERS}
    filters = check_filters({k: v for k, v in asked.items() if v})
    before_raw = request.query_params.get("before", "")
    if before_raw and not (before_raw.isascii() and before_raw.isdigit()):
        raise ValidationFailed("before", "before must be a journal seq")
    before = int(before_raw) if before_raw else None
    entries, more = services(request).recorder.newest(filters, before, PAGE)
    rows = [summary(e) for e in entries]
    query = urlencode(filters)
    return {
        "rows": rows,
        "filters": asked,
        "filter_query": filters,
        "older": rows[-1]["seq"] if more and rows else None,
        "live": before is None,
        "query": query,
        "stats": services(request).recorder.stats(),
    }


requests_page, requests_rows = page_and_part(
    "requests", "requests.html", "requests_rows.html", _journal_page
)


@guarded
async def request_detail(request: Request) -> Response:
    raw = request.path_params["seq"]
    entry = services(request).recorder.find(int(raw)) if raw.isdigit() and len(raw) < 19 else None
    if entry is None:
        raise NotFound(f"request {raw} is not in the journal (never recorded, or evicted)")
    return render(request, "request.html", page="requests", entry=export(entry))


def _deliveries(request: Request) -> dict[str, Any]:
    world = services(request).world
    subs = subscriptions.list_all(world)
    return {
        "events": timelines(world, attempt_view),
        "now": world.now(),
        "watching": subs,
        "profile_of": {s["webhook_id"]: s["profile"] for s in subs},
    }


deliveries_page, deliveries_timeline = page_and_part(
    "deliveries", "deliveries.html", "timeline.html", _deliveries
)


@guarded
async def attempt_detail(request: Request) -> Response:
    """One delivery attempt (forged ones too: the report card's evidence), redacted as
    ``GET /_sandbox/deliveries`` shows it."""
    raw = request.path_params["seq"]
    seq = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else 0
    rows = outbox.attempts(services(request).world, {}, seq - 1, 1) if seq else []
    if not rows or rows[0]["seq"] != seq:
        raise NotFound(f"delivery attempt {raw} was not found")
    return render(request, "attempt.html", page="deliveries", attempt=attempt_view(rows[0]))


@guarded
async def resend(request: Request) -> Response:
    fields = await form(request)
    world = services(request).world
    event_id = fields.get("event_id", "")
    if not outbox.has_event(world, event_id):
        raise NotFound(f"event {event_id} was not found")
    delivery_ids = outbox.resend(world, event_id)
    return render(request, "flash.html", message=f"resent {event_id}: {len(delivery_ids)} new")


@guarded
async def recover(request: Request) -> Response:
    fields = await form(request)
    world = services(request).world
    try:
        hours = float(fields.get("hours", "24"))
    except ValueError:
        raise ValidationFailed("hours", "hours must be a number") from None
    if not 0 < hours <= 24 * 365:
        raise ValidationFailed("hours", "hours must be more than 0 and at most a year")
    delivery_ids = outbox.recover_failed(world, world.now() - hours * 3600)
    return render(request, "flash.html", message=f"recovered: {len(delivery_ids)} new deliveries")


def _sites(request: Request) -> list[dict[str, Any]]:
    rows = services(request).world.store.all(
        "SELECT site_id, dealer_id, name FROM sites ORDER BY dealer_id, site_id LIMIT 500"
    )
    return [dict(r) for r in rows]


@guarded
async def emit_page(request: Request) -> Response:
    return render(
        request,
        "emit.html",
        page="emit",
        types=EVENT_TYPES,
        variants=RESOLUTIONS,
        sites=_sites(request),
        **_deliveries(request),
    )


def emit_body(fields: dict[str, str]) -> dict[str, Any]:
    """The Emit form as the body ``POST /_sandbox/events`` takes."""
    mode = fields.get("mode", "type")
    body: dict[str, Any]
    if mode == "lifecycle":
        body = {"lifecycle": "alarm", "variant": fields.get("variant") or "handled"}
        first = "alarm.created"
    elif mode == "random":
        count = fields.get("count", "10")
        if not (count.isascii() and count.isdigit()):
            raise ValidationFailed("count", "count must be a whole number")
        return {"random": int(count)}
    elif mode == "type":
        body = {"type": fields.get("type", "")}
        first = body["type"]
    else:
        raise ValidationFailed("mode", "mode is type, lifecycle or random")
    site = fields.get("site_id", "")
    if site:
        if not (site.isascii() and site.isdigit()):
            raise ValidationFailed("site_id", "site_id must be a site id")
        event = catalog.EVENTS.get(first)
        if event is not None and "site_id" in {f.name for f in event.fields}:
            body["data"] = {"site_id": int(site)}
    return body


@guarded
async def emit_submit(request: Request) -> Response:
    fields = await form(request)
    actor = Actor("sandbox", "sandbox", "dashboard", "the sandbox's dashboard", request_id(request))
    body = emit_body(fields)
    body["seed"] = random.SystemRandom().randrange(2**31)
    done = emit(services(request).world, body, actor)
    response = render(request, "emitted.html", events=done["events"])
    response.headers["HX-Trigger"] = CHANGED
    return response


@guarded
async def clock_badge(request: Request) -> Response:
    return render(request, "clock.html", advances=ADVANCES)


@guarded
async def clock_move(request: Request) -> Response:
    fields = await form(request)
    found = services(request)
    if fields.get("seconds"):
        try:
            seconds = float(fields["seconds"])
        except ValueError:
            raise ValidationFailed("seconds", "seconds must be a number") from None
        await move_clock(found, "seconds", {"seconds": seconds})
    else:
        await move_clock(found, "now", {"now": _timestamp(fields.get("now", ""))})
    response = render(request, "clock.html", advances=ADVANCES)
    response.headers["HX-Trigger"] = CHANGED
    return response


def _timestamp(text: str) -> float:
    """``2026-12-02T10:00`` (the form's datetime-local, read as UTC) or unix seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().removesuffix("Z"))
    except ValueError:
        raise ValidationFailed("now", "now is a date and time (UTC) or unix seconds") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def home(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/requests", 303)
