"""Control routes for time and webhooks: the clock, sandbox-wide subscriptions, emitting
events, and the delivery journal (``/_sandbox/clock``, ``/subscriptions``, ``/events``,
``/deliveries``)."""

from __future__ import annotations

import difflib
import json
import random
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import (
    Services,
    check_destination,
    no_content,
    read_json,
    reply,
    request_id,
    route,
    services,
)
from sandbox.api.control import admin
from sandbox.clock import VirtualClock
from sandbox.errors import BadRequest, NotFound, PermissionDenied, ValidationFailed
from sandbox.redaction import Scrub, may_hold_secret
from sandbox.vocabulary import RESOLUTIONS, one_of
from sandbox.webhooks import outbox
from sandbox.world import catalog, record, subscriptions
from sandbox.world.audit import Actor
from sandbox.world.catalog import EVENT_TYPES
from sandbox.world.fields import validate

MAX_RANDOM = 100_000


def _clock_state(request: Request) -> dict[str, Any]:
    clock = services(request).world.clock
    return {"now": clock.now(), "virtual": clock.virtual}


async def get_clock(request: Request) -> Response:
    admin(request)
    return reply(_clock_state(request))


def _number(body: Any, name: str) -> float:
    value = body.get(name) if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValidationFailed(name, f"{name} must be a non-negative number")
    return float(value)


async def _move_clock(request: Request, name: str) -> Response:
    admin(request)
    await move_clock(services(request), name, (await read_json(request)))
    return reply(_clock_state(request))


async def move_clock(found: Services, name: str, body: Any) -> None:
    """Advance (``seconds``) or set (``now``) the virtual clock; returns once the dispatcher
    has stepped it there (awaited here: the caller runs on the dispatcher's own loop)."""
    clock = found.world.clock
    if not isinstance(clock, VirtualClock):
        raise BadRequest("the sandbox runs on the system clock; start it with --clock virtual")
    value = body.get(name) if isinstance(body, dict) else None
    try:
        target = clock.target_after(value) if name == "seconds" else clock.target_at(value)
    except ValueError as exc:
        raise ValidationFailed(name, str(exc)) from None
    await found.dispatcher.advance_to(target)


async def advance_clock(request: Request) -> Response:
    return await _move_clock(request, "seconds")


async def set_clock(request: Request) -> Response:
    return await _move_clock(request, "now")


async def create_subscription(request: Request) -> Response:
    admin(request)
    return reply(new_subscription(request, await read_json(request)), 201)


def new_subscription(request: Request, body: Any) -> dict[str, Any]:
    """A sandbox-wide subscription, validated as the control API validates it."""
    s = services(request)
    values = validate(body, subscriptions.SUBSCRIPTION_FIELDS, read_only=subscriptions.READ_ONLY)
    check_destination(request, values)
    return subscriptions.create(s.world, None, values, default_profile=s.settings.webhook_profile)


async def list_subscriptions(request: Request) -> Response:
    admin(request)
    items = subscriptions.list_all(services(request).world)
    return reply(items, headers={"X-Total-Count": str(len(items))})


async def change_subscription(request: Request) -> Response:
    admin(request)
    s = services(request)
    webhook_id = request.path_params["webhook_id"]
    owner = subscriptions.owner(s.world, webhook_id)
    if request.method == "DELETE":
        subscriptions.delete(s.world, owner, webhook_id)
        return no_content()
    values = validate(
        await read_json(request),
        subscriptions.SUBSCRIPTION_FIELDS,
        partial=True,
        read_only=subscriptions.READ_ONLY,
    )
    check_destination(request, values)
    return reply(subscriptions.update(s.world, owner, webhook_id, values))


def _rng(body: dict[str, Any]) -> random.Random:
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValidationFailed("seed", "seed must be an integer")
    return random.Random(seed)


def _actor(request: Request) -> Actor:
    return Actor("sandbox", "sandbox", "control", "the sandbox's control API", request_id(request))


async def emit_events(request: Request) -> Response:
    admin(request)
    body = await read_json(request)
    return reply(emit(services(request).world, body, _actor(request)), 202)


def emit(world: Any, body: Any, actor: Actor) -> dict[str, Any]:
    """One event (``type`` + ``data``), a lifecycle, or N random events at a rate. Each is a
    happening in the record (refused with a 4xx when the record does not allow it), unless
    ``adversarial`` asks for the payload alone. The control API and the dashboard's Emit
    form both come here."""
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object")
    modes = [key for key in ("type", "lifecycle", "random") if key in body]
    if len(modes) != 1:
        raise ValidationFailed("type", 'send exactly one of "type", "lifecycle" or "random"')
    for key in body:
        if key not in EMIT_FIELDS:
            raise ValidationFailed(key, f"unknown field {key!r}")
    data = body.get("data") or {}
    if not isinstance(data, dict):
        raise ValidationFailed("data", "data must be an object of field overrides")
    adversarial = body.get("adversarial", False)
    if not isinstance(adversarial, bool) or (adversarial and "type" not in body):
        raise ValidationFailed("adversarial", "adversarial is a boolean, for one event type")
    rng = _rng(body)
    with world.store.transaction():
        if "type" in body:
            if not isinstance(body["type"], str):
                raise ValidationFailed("type", "type must be an event type name")
            _check_data(world, body["type"], data)
            event_ids = _repeat(body, rng, world, data, actor, adversarial)
        elif "lifecycle" in body:
            if body["lifecycle"] != "alarm":
                raise ValidationFailed("lifecycle", 'the only lifecycle is "alarm"')
            variant = body.get("variant", "handled")
            if variant not in RESOLUTIONS:
                raise ValidationFailed("variant", f"variant must be {one_of(RESOLUTIONS)}")
            _check_data(world, "alarm.created", data)
            event_ids = record.lifecycle(world, rng, data, variant, actor)
        else:
            event_ids = _random(body, rng, world, actor)
    return {"event_ids": event_ids, "events": outbox.summaries(world, event_ids)}


EMIT_FIELDS = {
    "type",
    "data",
    "lifecycle",
    "variant",
    "random",
    "rate",
    "seed",
    "types",
    "repeat",
    "adversarial",
}


def _check_data(world: Any, event_type: str, data: dict[str, Any]) -> None:
    """Overrides must name fields the event has: a typo (``sight_id``) would otherwise be
    ignored and the event fire at a random site."""
    if not data:
        return
    if event_type not in catalog.EVENTS:
        raise ValidationFailed(
            "type", f"unknown event type {event_type!r}; use one of {', '.join(EVENT_TYPES)}"
        )
    known = {f.name for f in catalog.EVENTS[event_type].fields}
    for key in data:
        if key not in known:
            nearest = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {nearest[0]!r}?" if nearest else ""
            raise ValidationFailed(
                f"data.{key}",
                f"{event_type} has no field {key!r}{hint} (fields: {', '.join(sorted(known))})",
            )


def _rate(body: dict[str, Any]) -> float | None:
    rate = body.get("rate")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0
    ):
        raise ValidationFailed("rate", "rate must be a positive number of events per second")
    return None if rate is None else float(rate)


def _repeat(
    body: dict[str, Any],
    rng: random.Random,
    world: Any,
    data: dict[str, Any],
    actor: Actor,
    adversarial: bool,
) -> list[str]:
    """One event type, ``repeat`` times, ``rate`` per second on the clock."""
    count = body.get("repeat", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RANDOM:
        raise ValidationFailed("repeat", f"repeat must be an integer from 1 to {MAX_RANDOM}")
    planned = [(body["type"], data)] * count
    return record.emit_all(
        world, rng, planned, actor=actor, rate=_rate(body), adversarial=adversarial
    )


def _random(body: dict[str, Any], rng: random.Random, world: Any, actor: Actor) -> list[str]:
    count = body["random"]
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RANDOM:
        raise ValidationFailed("random", f"random must be an integer from 1 to {MAX_RANDOM}")
    rate = _rate(body)
    types = body.get("types") or list(EVENT_TYPES)
    if not isinstance(types, list) or not types or any(t not in EVENT_TYPES for t in types):
        raise ValidationFailed("types", f"types must be a list drawn from {', '.join(EVENT_TYPES)}")
    planned = record.plan_random(world, rng, count, types)
    return record.emit_all(world, rng, planned, actor=actor, rate=rate)


SIGNATURE_HEADERS = {"x-chekt-signature", "x-webhook-signature"}


def _scrubbed_text(text: str | None) -> str | None:
    if not text or not may_hold_secret(text.encode()):
        return text
    return Scrub().body(text.encode(), "").decode("utf-8", "replace")


def _scrubbed_answer(raw: str | None) -> dict[str, Any] | None:
    """The receiver's answer with any credential it echoed hidden."""
    if not raw:
        return None
    answer: dict[str, Any] = json.loads(raw)
    if not may_hold_secret(raw.encode()):
        return answer
    clean = Scrub()
    headers = answer.get("headers") or {}
    return {
        **answer,
        "headers": {
            k: clean.header(k.encode("latin-1"), v.encode("latin-1", "replace")).decode("latin-1")
            for k, v in headers.items()
        },
        "body": _scrubbed_text(answer.get("body")),
    }


def attempt_view(row: dict[str, Any], reveal: bool = False) -> dict[str, Any]:
    """One attempt as exported: signatures shown only with ``reveal``; credentials in the
    callback URL or in what the receiver answered (it may echo anything) hidden always. The
    headers sent are the sandbox's own, and the payload is scanned for credential shapes."""
    request = json.loads(row["request"] or "{}")
    headers = request.get("headers")
    if headers and not reveal:
        headers = {
            k: "[redacted]" if k.lower() in SIGNATURE_HEADERS else v for k, v in headers.items()
        }
    body = request.get("body")
    return {
        "seq": row["seq"],
        "event_id": row["event_id"],
        "delivery_id": row["delivery_id"],
        "webhook_id": row["webhook_id"],
        "attempt": row["attempt"],
        "outcome": row["outcome"],
        "status_code": row["status_code"],
        "scheduled_at": row["scheduled_at"],
        "sent_at": row["sent_at"],
        "next_at": row["next_at"],
        "latency_ms": row["latency_ms"],
        "error": _scrubbed_text(row["error"]),
        "url": _scrubbed_text(request.get("url")),
        "request": {"headers": headers, "body": Scrub().text(body) if body else body},
        "response": _scrubbed_answer(row["response"]),
        "chaos": row.get("chaos"),
    }


async def list_deliveries(request: Request) -> Response:
    admin(request)
    reveal = request.query_params.get("reveal") == "true"
    if reveal and not services(request).settings.loopback:
        raise PermissionDenied("reveal=true is only allowed on a loopback bind")
    params = request.query_params
    filters = {name: params[name] for name in sorted(outbox.ATTEMPT_FILTERS) if name in params}
    since = params.get("since_seq", "0")
    if not (since.isascii() and since.isdigit()):
        raise ValidationFailed("since_seq", "since_seq must be a non-negative integer")
    rows = outbox.attempts(services(request).world, filters, int(since))
    return reply([attempt_view(row, reveal) for row in rows])


async def resend_event(request: Request) -> Response:
    admin(request)
    s = services(request)
    event_id = request.path_params["event_id"]
    if not outbox.has_event(s.world, event_id):
        raise NotFound(f"event {event_id} was not found")
    delivery_ids = outbox.resend(s.world, event_id)
    return reply({"event_id": event_id, "delivery_ids": delivery_ids}, 202)


async def recover_failed(request: Request) -> Response:
    admin(request)
    s = services(request)
    since = _number(await read_json(request), "since")
    delivery_ids = outbox.recover_failed(s.world, since)
    return reply({"delivery_ids": delivery_ids}, 202)


routes = [
    route("/_sandbox/clock", GET=get_clock),
    route("/_sandbox/clock/advance", POST=advance_clock),
    route("/_sandbox/clock/set", POST=set_clock),
    route("/_sandbox/subscriptions", POST=create_subscription, GET=list_subscriptions),
    route(
        "/_sandbox/subscriptions/{webhook_id}",
        PATCH=change_subscription,
        DELETE=change_subscription,
    ),
    route("/_sandbox/events", POST=emit_events),
    route("/_sandbox/events/{event_id}/resend", POST=resend_event),
    route("/_sandbox/deliveries", GET=list_deliveries),
    route("/_sandbox/deliveries/recover", POST=recover_failed),
]
