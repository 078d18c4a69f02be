"""The control API under ``/_sandbox``: what the pytest plugin, the CLI and scenario runs
drive. It needs ``X-Sandbox-Admin-Token`` only when the sandbox is bound off loopback."""

from __future__ import annotations

from typing import Any

from sandbox.api.control import RESETTABLE
from sandbox.api.control_events import MAX_RANDOM
from sandbox.api.openapi.partner import webhook_change, webhook_schema
from sandbox.api.openapi.schema import (
    ERROR,
    EVENT_TYPE,
    body,
    json_content,
    listed,
    named,
    obj,
    operation,
    query,
)
from sandbox.auth.guard import TIERS
from sandbox.clock import MAX_TIME, TIME_HEADER
from sandbox.journal_filters import FILTERS, SURFACES
from sandbox.vocabulary import RESOLUTIONS
from sandbox.world import subscriptions

NUMBER = {"type": "number", "minimum": 0}
JWK = named("Jwk", {"type": "object"})
INTEGER = {"type": "integer"}
STRING = {"type": "string"}
ADMIN = {
    "name": "X-Sandbox-Admin-Token",
    "in": "header",
    "required": False,
    "description": "the admin token; required when the sandbox is bound off loopback",
    "schema": {"type": "string"},
}
CLOCK = named("Clock", obj(("now", "virtual"), now={"type": "number"}, virtual={"type": "boolean"}))
SECONDS = {"type": "number", "minimum": 0, "maximum": MAX_TIME}
SANDBOX_TIME = {
    TIME_HEADER: {
        "description": "the sandbox clock when the response was sent, in unix seconds (every "
        "response and every webhook delivery carries it)",
        "schema": {"type": "string", "pattern": r"^[0-9]+\.[0-9]{6}$"},
    }
}
STEPPING = (
    "Steps like a simulation clock: to each due time on the way, standing there until the "
    "webhook attempts due then have an outcome (each step waits at most `webhook_timeout` "
    "plus a second), and answers at the target with nothing due left in flight. Refuses "
    "(422) NaN, infinities, negatives, going backwards and anything past "
    "9999-12-31T23:59:59Z."
)


def control_op(
    summary: str, ok: int, result: dict[str, Any] | None, **extra: Any
) -> dict[str, Any]:
    op = operation(summary, None, ok, result, tag="Sandbox control", **extra)
    op["parameters"].append(ADMIN)
    return op


def _client_op(
    summary: str, ok: int, result: dict[str, Any] | None, **extra: Any
) -> dict[str, Any]:
    """An operation on one client, named by its (string) id in the path."""
    op = control_op(summary, ok, result, **extra)
    client_id = {"name": "client_id", "in": "path", "required": True, "schema": STRING}
    op["parameters"].insert(0, client_id)
    return op


def _closed(**properties: Any) -> dict[str, Any]:
    """A request body object with only these (optional) properties."""
    return {"type": "object", "additionalProperties": False, "properties": properties}


def _required(schema: dict[str, Any], *names: str) -> dict[str, Any]:
    return {**schema, "required": list(names)}


def _journal_queries() -> tuple[dict[str, Any], ...]:
    described = {
        "method": "an HTTP method",
        "path": "a glob over the path, e.g. /partner/v1/*",
        "path_regex": "a regular expression searched in the path's first 512 characters "
        "(at most 200 characters, two open-ended quantifiers, none nested)",
        "client_id": "the authenticated client",
        "status": "a status, or a class such as 4xx",
        "since_seq": "entries after this sequence number",
        "since": "entries at or after this time (unix seconds)",
        "until": "entries before this time (unix seconds)",
        "trace_id": "the partner's X-Partner-Trace-Id",
        "tier": "api_key, secret, assertion, user or bridge",
        "surface": "event_api (POST /partner/v1/events and its uploads) or bridge (the "
        "bridges' local API listener)",
        "limit": "at most this many (the newest)",
        "reveal": "true: test credentials shown (loopback only)",
    }
    schemas: dict[str, dict[str, Any]] = {
        "tier": {"type": "string", "enum": list(TIERS)},
        "surface": {"type": "string", "enum": list(SURFACES)},
        "reveal": {"type": "string", "enum": ["true", "false"]},
        "status": {"type": "string", "pattern": "^[1-5]([0-9][0-9]|xx|XX)$"},
        "method": {"type": "string", "pattern": "^[A-Za-z]{1,16}$"},
    }
    return tuple(query(name, schemas.get(name, STRING), described[name]) for name in FILTERS)


def _attempt() -> dict[str, Any]:
    return named(
        "DeliveryAttempt",
        obj(
            ("seq", "event_id", "delivery_id", "webhook_id", "attempt", "outcome"),
            seq=INTEGER,
            event_id=STRING,
            delivery_id=STRING,
            webhook_id=STRING,
            attempt=INTEGER,
            outcome={"type": "string", "description": "delivered, failed, timeout, ..."},
            status_code={"type": ["integer", "null"]},
            url={"type": ["string", "null"]},
            request=named("SentRequest", {"type": "object"}),
            chaos={
                "type": ["string", "null"],
                "description": "the webhook chaos the attempt met (burst, slow_send, oversize, "
                "unknown_type, extra_fields), if any",
            },
            response={"anyOf": [named("ReceivedResponse", {"type": "object"}), {"type": "null"}]},
        ),
    )


def _clock_move(summary: str, title: str, field: str) -> dict[str, Any]:
    request = _required(named(title, _closed(**{field: SECONDS})), field)
    operation = control_op(summary, 200, CLOCK, request=request, headers=SANDBOX_TIME)
    return {"post": {**operation, "description": STEPPING}}


def _emit(emitted: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    op = control_op(
        "Emit one event type (repeat, rate), an alarm lifecycle, or random events: each a "
        "happening in the record, unless adversarial",
        202,
        emitted,
        request=request,
    )
    for status, description in {
        "404": "`alarm_not_found`: data.alarm_id names no alarm",
        "409": "`invalid_transition`: the alarm named cannot take this move now; `no_alarm`: "
        "none was named and no alarm can take it",
        "422": "`validation_failed` (with `field`)",
    }.items():
        op["responses"][status] = {"description": description, **json_content(ERROR)}
    return op


def paths() -> dict[str, Any]:
    emitted = named(
        "EmittedEvents",
        obj(
            ("event_ids", "events"),
            event_ids=listed(STRING),
            events=listed(named("EmittedEvent", obj())),
        ),
    )
    events = _closed(
        type=EVENT_TYPE,
        data=named("EventDataOverrides", {"type": "object"}),
        repeat={"type": "integer", "minimum": 1, "maximum": MAX_RANDOM},
        lifecycle={"const": "alarm"},
        variant=named("EventVariant", {"enum": list(RESOLUTIONS)}),
        random={"type": "integer", "minimum": 1, "maximum": MAX_RANDOM},
        types=listed(EVENT_TYPE),
        rate={"type": "number", "exclusiveMinimum": 0},
        seed=INTEGER,
        adversarial={
            "type": "boolean",
            "default": False,
            "description": "with type: deliver the payload as drawn (about no alarm, or one "
            "that cannot take it) and leave the record alone",
        },
    )
    events = named("EmitRequest", events)
    fields = subscriptions.SUBSCRIPTION_FIELDS
    return {
        "/_sandbox/health": {
            "get": control_op("Is it up?", 200, named("Health", obj(("status",), status=STRING)))
        },
        "/_sandbox/credentials": {
            "get": control_op(
                "The seeded credentials: clients, API keys, dealer admins, the token URL",
                200,
                named("Credentials", obj(("issuer", "token_url", "clients", "api_keys"))),
            )
        },
        "/_sandbox/reset": {
            "post": control_op(
                "Reset the world (reseeded), the journal and the deliveries, or some of them; "
                '"clients" (only when listed) returns the clients to what the settings define',
                200,
                named("ResetDone", obj(("reset", "seed"), reset=listed(STRING), seed=INTEGER)),
                request=named(
                    "ResetRequest",
                    _closed(
                        seed=INTEGER, only=listed(named("Resettable", {"enum": list(RESETTABLE)}))
                    ),
                ),
            )
        },
        "/_sandbox/keys/rotate": {
            "post": control_op(
                "Rotate the token signing key",
                200,
                named("SigningKeys", obj(("keys",), keys=listed(JWK))),
            )
        },
        "/_sandbox/api-keys/rotate": {
            "post": control_op(
                "Rotate an API key (the old one stays valid for 24 h on the sandbox clock)",
                201,
                named("ApiKey", obj(("key",), key=STRING)),
                request=_required(named("ApiKeyRotation", _closed(key=STRING)), "key"),
            )
        },
        "/_sandbox/clients": {
            "post": control_op(
                "Register a client: secret, public (PKCE), public key or JWKS URL",
                201,
                named("RegisteredClient", obj(("client_id",), client_id=STRING)),
                request=named("ClientRegistration", {"type": "object"}),
            )
        },
        "/_sandbox/clients/{client_id}": {
            "patch": _client_op(
                "Change a client: redirect URIs, scopes, secret, public key or JWKS URL, ...",
                200,
                obj(
                    ("client_id", "kind", "scopes", "redirect_uris", "logout_urls"),
                    client_id=STRING,
                    client_secret={"type": ["string", "null"]},
                    kind=STRING,
                    scopes=listed(STRING),
                    redirect_uris=listed(STRING),
                    logout_urls=listed(STRING),
                    dealer_ids=listed(INTEGER),
                ),
                request={"type": "object"},
            ),
            "delete": _client_op("Remove a client and revoke what it was issued", 204, None),
        },
        "/_sandbox/requests": {
            "get": control_op(
                "The journal of requests received, oldest first (secrets redacted)",
                200,
                listed(named("JournalEntry", obj(("seq", "method", "path", "status")))),
                queries=_journal_queries(),
            )
        },
        "/_sandbox/journal": {
            "get": control_op(
                "The journal's size and evictions",
                200,
                named("JournalSize", obj(("entries", "bytes", "evicted", "last_seq"))),
            )
        },
        "/_sandbox/clock": {
            "get": control_op("The sandbox clock", 200, CLOCK, headers=SANDBOX_TIME)
        },
        "/_sandbox/clock/advance": _clock_move(
            "Move the virtual clock forward, through every due retry and lifecycle step",
            "ClockAdvance",
            "seconds",
        ),
        "/_sandbox/clock/set": _clock_move(
            "Move the virtual clock forward to a time, as advance does", "ClockSet", "now"
        ),
        "/_sandbox/subscriptions": {
            "post": control_op(
                "Subscribe a URL to every dealer's events",
                201,
                webhook_schema(True),
                request=body(fields, title="WebhookInput"),
            ),
            "get": control_op("Every subscription, of every client", 200, listed(webhook_schema())),
        },
        "/_sandbox/subscriptions/{webhook_id}": {
            "patch": control_op(
                "Change any subscription",
                200,
                webhook_schema(),
                request=webhook_change(partial=True),
                params=("webhook_id",),
            ),
            "delete": control_op("Remove any subscription", 204, None, params=("webhook_id",)),
        },
        "/_sandbox/events": {"post": _emit(emitted, events)},
        "/_sandbox/events/{event_id}/resend": {
            "post": control_op(
                "Deliver an event again to its subscriptions",
                202,
                named(
                    "ResentEvent",
                    obj(("event_id", "delivery_ids"), event_id=STRING, delivery_ids=listed(STRING)),
                ),
                params=("event_id",),
            )
        },
        "/_sandbox/deliveries": {
            "get": control_op(
                "Delivery attempts, oldest first",
                200,
                listed(_attempt()),
                queries=(
                    *(
                        query(name, STRING, f"only this {name}")
                        for name in ("event_id", "webhook_id", "delivery_id", "outcome")
                    ),
                    query("since_seq", {"type": "integer", "minimum": 0}, "attempts after"),
                    query(
                        "reveal",
                        named("Reveal", {"enum": ["true", "false"]}),
                        "show signatures (loopback)",
                    ),
                ),
            )
        },
        "/_sandbox/deliveries/recover": {
            "post": control_op(
                "Redeliver what failed since a time",
                202,
                named("RecoveredDeliveries", obj(("delivery_ids",), delivery_ids=listed(STRING))),
                request=_required(named("RecoverRequest", _closed(since=NUMBER)), "since"),
            )
        },
    }
