"""Control routes for failure on demand: fault rules (``/_sandbox/faults``: the webhook knobs
and the inbound rules), CHeKT's rate limits (``/_sandbox/rate-limits``) and auth chaos, each
one call: expire a client's tokens, revoke an API key, sign with a key not yet published
(and publish it), skew the stamping clock. A reset puts all of it back as the settings say.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import no_content, read_json, reply, route, services
from sandbox.api.control import admin
from sandbox.auth import chaos
from sandbox.auth.guard import TIERS
from sandbox.auth.ratelimit import MAX_BURST, MAX_PER_MINUTE, Ceiling, ceiling_for
from sandbox.errors import BadRequest, NotFound, ValidationFailed
from sandbox.faults import FaultSpec, RuleError, parse_rule
from sandbox.settings import MAX_SKEW
from sandbox.vocabulary import RATE_LIMITS, one_of
from sandbox.webhooks import chaos as webhook_chaos

KNOBS = ("duplicate_rate", "reorder_window", *webhook_chaos.KNOBS)


def _object(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object")
    for key in body:
        if key not in allowed:
            raise ValidationFailed(key, f"unknown field {key!r}; use {', '.join(allowed)}")
    return body


def _fraction(body: dict[str, Any], name: str, high: float) -> float:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
        raise ValidationFailed(name, f"{name} must be a number from 0 to {high:g}")
    return float(value)


def _chaos_knob(body: dict[str, Any], name: str) -> float | int:
    high = webhook_chaos.LIMITS[name]
    if name in webhook_chaos.WHOLE:
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            raise ValidationFailed(name, f"{name} must be a whole number from 0 to {high:g}")
        return value
    return _fraction(body, name, high)


def faults_view(request: Request) -> dict[str, Any]:
    s = services(request)
    return {**s.dispatcher.faults.view(), "inbound": [rule.view() for rule in s.faults.rules]}


def _rules(raw: Any) -> list[FaultSpec]:
    if not isinstance(raw, list):
        raise ValidationFailed("inbound", "inbound is a list of fault rules")
    specs = []
    for index, item in enumerate(raw):
        try:
            specs.append(parse_rule(item, TIERS))
        except RuleError as exc:
            raise ValidationFailed(f"inbound[{index}].{exc.field}", str(exc)) from None
    return specs


async def faults(request: Request) -> Response:
    """GET: the webhook knobs (``burst`` counts down as deliveries use it) and the inbound
    rules with how often each matched and fired. POST: set knobs and add rules (all checked
    before any is applied). DELETE: no faults."""
    admin(request)
    s = services(request)
    if request.method == "DELETE":
        s.faults.clear()
        s.dispatcher.faults.clear()
        return reply(faults_view(request))
    if request.method == "POST":
        body = _object(await read_json(request), (*KNOBS, "inbound"))
        rate = _fraction(body, "duplicate_rate", 1) if "duplicate_rate" in body else None
        window = _fraction(body, "reorder_window", 3600) if "reorder_window" in body else None
        knobs = {name: _chaos_knob(body, name) for name in webhook_chaos.KNOBS if name in body}
        specs = _rules(body["inbound"]) if "inbound" in body else []
        for name, value in knobs.items():
            setattr(s.dispatcher.faults, name, value)
        if rate is not None:
            s.dispatcher.faults.duplicate_rate = rate
        if window is not None:
            s.dispatcher.faults.reorder_window = window
        for spec in specs:
            s.faults.add(spec)
    return reply(faults_view(request))


async def remove_fault(request: Request) -> Response:
    admin(request)
    fault_id = request.path_params["fault_id"]
    if not services(request).faults.remove(fault_id):
        raise NotFound(f"fault rule {fault_id} was not found")
    return no_content()


def _whole(body: dict[str, Any], name: str, high: int) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ValidationFailed(name, f"{name} must be a whole number from 1 to {high}")
    return value


async def rate_limits(request: Request) -> Response:
    """GET: the ceiling in force. POST ``{"tier"}`` (free, pro, enterprise, off) or a custom
    ``{"per_minute", "burst"}``, for everyone or for one ``client_id`` (``"tier": "default"``
    puts that client back under the common ceiling). Buckets start full after a change."""
    admin(request)
    limiter = services(request).limiter
    if request.method == "POST":
        body = _object(await read_json(request), ("tier", "per_minute", "burst", "client_id"))
        client_id = body.get("client_id")
        if client_id is not None and (not isinstance(client_id, str) or not client_id):
            raise ValidationFailed("client_id", "client_id must be a client's id")
        custom = "per_minute" in body or "burst" in body
        if custom == ("tier" in body):
            raise ValidationFailed(
                "tier", 'send {"tier"} or a custom {"per_minute", "burst"}, not both'
            )
        if custom:
            ceiling = Ceiling(
                _whole(body, "per_minute", MAX_PER_MINUTE), _whole(body, "burst", MAX_BURST)
            )
            limiter.set("custom", ceiling, client_id)
        elif client_id is not None and body["tier"] == "default":
            limiter.forget(client_id)
        elif body["tier"] not in RATE_LIMITS:
            allowed = (*RATE_LIMITS, "default") if client_id else RATE_LIMITS
            raise ValidationFailed("tier", f"tier must be {one_of(allowed)}")
        else:
            limiter.set(body["tier"], ceiling_for(body["tier"]), client_id)
    return reply(limiter.view())


def _text(body: Any, name: str) -> str:
    if not isinstance(body, dict) or not isinstance(body.get(name), str) or not body[name]:
        raise ValidationFailed(name, f'send {{"{name}": "..."}}')
    value: str = body[name]
    return value


async def revoke_api_key(request: Request) -> Response:
    admin(request)
    key = _text(await read_json(request), "key")
    return reply(chaos.revoke_api_key(services(request).world, key))


async def expire_tokens(request: Request) -> Response:
    """Every access token issued to the client until now expires (new ones work)."""
    admin(request)
    client_id = request.path_params["client_id"]
    before = chaos.expire_tokens(services(request).world, client_id)
    return reply({"client_id": client_id, "expired_before": before})


def _keys_view(statuses: dict[str, str]) -> dict[str, Any]:
    return {"keys": [{"kid": kid, "status": status} for kid, status in statuses.items()]}


async def sign_unpublished(request: Request) -> Response:
    """New tokens are signed with a fresh key the JWKS does not list, until it is published
    (``/_sandbox/keys/publish``) or the next rotation."""
    admin(request)
    s = services(request)
    kid = s.keys.sign_unpublished(s.world.now())
    return reply({"kid": kid, **_keys_view(s.keys.statuses())})


async def publish_key(request: Request) -> Response:
    admin(request)
    s = services(request)
    return reply(_keys_view(s.keys.publish(s.world.now(), keep_for=s.settings.token_lifetime)))


async def clock_skew(request: Request) -> Response:
    """GET/POST ``{"seconds"}``: how far the times the sandbox stamps into tokens (iat, exp)
    and webhook signatures (X-CHeKT-Timestamp), and judges assertions by, are off from its
    clock; positive is ahead. The record, X-Sandbox-Time and rate limits keep the clock."""
    admin(request)
    world = services(request).world
    if request.method == "POST":
        body = _object(await read_json(request), ("seconds",))
        value = body.get("seconds")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not abs(value) <= MAX_SKEW
        ):
            raise ValidationFailed("seconds", f"seconds must be a number within ±{MAX_SKEW}")
        world.skew = float(value)
    return reply({"skew": world.skew, "now": world.now(), "stamped_now": world.signing_now()})


routes = [
    route("/_sandbox/faults", GET=faults, POST=faults, DELETE=faults),
    route("/_sandbox/faults/{fault_id}", DELETE=remove_fault),
    route("/_sandbox/rate-limits", GET=rate_limits, POST=rate_limits),
    route("/_sandbox/api-keys/revoke", POST=revoke_api_key),
    route("/_sandbox/clients/{client_id}/expire-tokens", POST=expire_tokens),
    route("/_sandbox/keys/unpublished", POST=sign_unpublished),
    route("/_sandbox/keys/publish", POST=publish_key),
    route("/_sandbox/clock/skew", GET=clock_skew, POST=clock_skew),
]
