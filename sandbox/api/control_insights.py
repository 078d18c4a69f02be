"""Control routes that judge the partner from its traffic: the report card
(``/_sandbox/report``), coverage of the documented surface (``/_sandbox/coverage``) and the
forged delivery the card's ``signature_checked`` needs
(``/_sandbox/subscriptions/{webhook_id}/forged``). The judging is in :mod:`sandbox.insights`;
this module only gathers the journal and the delivery attempts for it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import Services, read_json, reply, route, services
from sandbox.api.control import admin
from sandbox.auth.guard import TIERS
from sandbox.errors import ApiError, Conflict, NotFound, ValidationFailed
from sandbox.insights.card import report_card
from sandbox.insights.coverage import coverage
from sandbox.recorder import export
from sandbox.webhooks import outbox, profiles
from sandbox.world import subscriptions
from sandbox.world.catalog import EVENT_TYPES

REPORT_FILTERS = ("client_id", "since_seq", "since")


def _params(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    params = dict(request.query_params)
    for name, value in params.items():
        if name not in allowed:
            raise ValidationFailed(name, f"unknown filter {name!r}; use {', '.join(allowed)}")
        if name == "since_seq" and not (value.isascii() and value.isdigit()):
            raise ValidationFailed(name, "since_seq must be a non-negative integer")
        if name == "since":
            try:
                float(value)
            except ValueError:
                raise ValidationFailed(name, "since must be unix seconds") from None
    return params


def _journal(s: Services, params: dict[str, str], recent: int | None) -> list[dict[str, Any]]:
    filters = {**params, "limit": str(s.recorder.max_entries)}
    if recent is not None:
        newest = s.recorder.stats()["last_seq"]
        filters["since_seq"] = str(max(int(params.get("since_seq", "0")), newest - recent))
    return [export(entry) for entry in s.recorder.query(filters)]


def _attempts(s: Services, params: dict[str, str], recent: int | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = 0
    if recent is not None:
        after = max(0, int(s.world.store.scalar("SELECT MAX(seq) FROM attempts") or 0) - recent)
    while page := outbox.attempts(s.world, {}, after):
        rows += page
        after = int(page[-1]["seq"])
    if "client_id" in params:
        theirs = {w["webhook_id"] for w in subscriptions.list_for(s.world, params["client_id"])}
        rows = [r for r in rows if r["webhook_id"] in theirs]
    if "since" in params:
        rows = [r for r in rows if r["sent_at"] >= float(params["since"])]
    return rows


def judged(s: Services, params: dict[str, str], recent: int | None = None) -> dict[str, Any]:
    """The report card (what ``GET /_sandbox/report`` answers); ``recent`` bounds it to the
    newest that many journal entries and delivery attempts (the dashboard's live view)."""
    timeout = s.settings.webhook_timeout
    deadlines = {  # the legacy guide's 5 s, where it applies
        w["webhook_id"]: profiles.timeout(w["profile"], timeout)
        for w in subscriptions.list_all(s.world)
    }
    findings = report_card(
        _journal(s, params, recent),
        _attempts(s, params, recent),
        deadline=timeout,
        deadlines=deadlines,
    )
    failed = sum(1 for f in findings if f["ok"] is False)
    return {
        "ok": not failed,
        "failed": failed,
        "passed": sum(1 for f in findings if f["ok"] is True),
        "findings": findings,
    }


async def report(request: Request) -> Response:
    """The report card of the partner's client and receiver, optionally for one client_id
    and from a journal sequence (since_seq) or a sandbox time (since) on."""
    admin(request)
    return reply(judged(services(request), _params(request, REPORT_FILTERS)))


def _error_codes() -> list[str]:
    """Every CHeKT error code the sandbox's own error classes answer with."""
    found: set[str] = set()
    pending: list[type[ApiError]] = [ApiError]
    while pending:
        cls = pending.pop()
        found.add(cls.code)
        pending += cls.__subclasses__()
    return sorted(found - {"internal_error"})


def covered(s: Services, params: dict[str, str], recent: int | None = None) -> dict[str, Any]:
    """The coverage report (what ``GET /_sandbox/coverage`` answers); ``recent`` as for
    :func:`judged`."""
    delivered: dict[str, int] = {}
    answered = [
        a
        for a in _attempts(s, params, recent)
        if a["status_code"] is not None
        and 200 <= a["status_code"] < 300
        and not str(a["delivery_id"]).startswith(outbox.FORGED_PREFIX)
    ]
    event_ids = sorted({a["event_id"] for a in answered})
    types = {e["event_id"]: e["type"] for e in outbox.summaries(s.world, event_ids)}
    for attempt in answered:
        kind = types.get(attempt["event_id"])
        if kind is not None:
            delivered[kind] = delivered.get(kind, 0) + 1
    from sandbox.api.openapi import issuer_free  # the document's modules load on first use

    return coverage(
        issuer_free()["paths"],
        _journal(s, params, recent),
        delivered,
        event_types=EVENT_TYPES,
        error_codes=_error_codes(),
        tiers=TIERS,
    )


async def coverage_report(request: Request) -> Response:
    """Which documented operations, event types, error codes and auth tiers the traffic
    exercised (optionally one client_id's, from since_seq / since on)."""
    admin(request)
    params = _params(request, REPORT_FILTERS)
    return reply(covered(services(request), params))


async def forged(request: Request) -> Response:
    """Send the subscription a delivery signed with a wrong secret (its latest delivery's
    body, a new delivery id) and answer with the attempt: a receiver that verifies
    signatures refuses it with a 4xx."""
    admin(request)
    if await request.body():
        await read_json(request)  # nothing to set: a body, if any, must still be JSON
    return reply(await forge(services(request), request.path_params["webhook_id"]), 201)


async def forge(s: Services, webhook_id: str) -> dict[str, Any]:
    """Send the forged delivery and say how the receiver took it (the route's answer; the
    dashboard's button calls this too)."""
    if not any(w["webhook_id"] == webhook_id for w in subscriptions.list_all(s.world)):
        raise NotFound(f"subscription {webhook_id} was not found")
    forgery = outbox.forgery(s.world, webhook_id)
    if forgery is None:
        raise Conflict(
            f"subscription {webhook_id} has had no delivery yet: a forged one copies the "
            "latest (emit an event it hears first)"
        )
    attempt = await s.dispatcher.forge(forgery)
    code = attempt["status_code"]
    verdict = (
        "accepted"
        if code is not None and 200 <= code < 300
        else ("refused" if code is not None and 400 <= code < 500 else "no_verdict")
    )
    return {
        "seq": attempt["seq"],
        "webhook_id": webhook_id,
        "event_id": attempt["event_id"],
        "delivery_id": attempt["delivery_id"],
        "outcome": attempt["outcome"],
        "status_code": code,
        "latency_ms": attempt.get("latency_ms"),
        "verdict": verdict,
    }


routes = [
    route("/_sandbox/report", GET=report),
    route("/_sandbox/coverage", GET=coverage_report),
    route("/_sandbox/subscriptions/{webhook_id}/forged", POST=forged),
]
