"""The control API under ``/_sandbox``: what the pytest plugin, the CLI and scenario runs
drive. It needs ``X-Sandbox-Admin-Token`` only when the sandbox is bound off loopback."""

from __future__ import annotations

from typing import Any

from sandbox.api.control import RESETTABLE
from sandbox.api.control_events import MAX_RANDOM, VARIANTS
from sandbox.api.openapi.partner import webhook_change, webhook_schema
from sandbox.api.openapi.schema import body, listed, obj, operation, query
from sandbox.auth.guard import TIERS
from sandbox.recorder import FILTERS
from sandbox.world import subscriptions
from sandbox.world.subscriptions import EVENT_TYPES

NUMBER = {"type": "number", "minimum": 0}
INTEGER = {"type": "integer"}
STRING = {"type": "string"}
ADMIN = {
    "name": "X-Sandbox-Admin-Token",
    "in": "header",
    "required": False,
    "description": "the admin token; required when the sandbox is bound off loopback",
    "schema": {"type": "string"},
}
CLOCK = obj(("now", "virtual"), now={"type": "number"}, virtual={"type": "boolean"})
FAULTS = obj(
    ("duplicate_rate", "reorder_window"),
    duplicate_rate={"type": "number", "minimum": 0, "maximum": 1},
    reorder_window={"type": "number", "minimum": 0, "maximum": 3600},
)


def _op(summary: str, ok: int, result: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    op = operation(summary, None, ok, result, tag="Sandbox control", **extra)
    op["parameters"].append(ADMIN)
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
        "tier": "api_key, secret, assertion or user",
        "limit": "at most this many (the newest)",
        "reveal": "true: test credentials shown (loopback only)",
    }
    schemas: dict[str, dict[str, Any]] = {
        "tier": {"type": "string", "enum": list(TIERS)},
        "reveal": {"type": "string", "enum": ["true", "false"]},
        "status": {"type": "string", "pattern": "^[1-5]([0-9][0-9]|xx|XX)$"},
        "method": {"type": "string", "pattern": "^[A-Za-z]{1,16}$"},
    }
    return tuple(query(name, schemas.get(name, STRING), described[name]) for name in FILTERS)


def _attempt() -> dict[str, Any]:
    return obj(
        ("seq", "event_id", "delivery_id", "webhook_id", "attempt", "outcome"),
        seq=INTEGER,
        event_id=STRING,
        delivery_id=STRING,
        webhook_id=STRING,
        attempt=INTEGER,
        outcome={"type": "string", "description": "delivered, failed, timeout, ..."},
        status_code={"type": ["integer", "null"]},
        url={"type": ["string", "null"]},
        request={"type": "object"},
        response={"type": ["object", "null"]},
    )


def paths() -> dict[str, Any]:
    emitted = obj(("event_ids", "events"), event_ids=listed(STRING), events=listed(obj()))
    events = _closed(
        type={"enum": list(EVENT_TYPES)},
        data={"type": "object"},
        repeat={"type": "integer", "minimum": 1, "maximum": MAX_RANDOM},
        lifecycle={"const": "alarm"},
        variant={"enum": list(VARIANTS)},
        random={"type": "integer", "minimum": 1, "maximum": MAX_RANDOM},
        types=listed({"enum": list(EVENT_TYPES)}),
        rate={"type": "number", "exclusiveMinimum": 0},
        seed=INTEGER,
    )
    fields = subscriptions.SUBSCRIPTION_FIELDS
    return {
        "/_sandbox/health": {"get": _op("Is it up?", 200, obj(("status",), status=STRING))},
        "/_sandbox/credentials": {
            "get": _op(
                "The seeded credentials: clients, API keys, dealer admins, the token URL",
                200,
                obj(("issuer", "token_url", "clients", "api_keys")),
            )
        },
        "/_sandbox/reset": {
            "post": _op(
                "Reset the world (reseeded), the journal and the deliveries, or some of them",
                200,
                obj(("reset", "seed"), reset=listed(STRING), seed=INTEGER),
                request=_closed(seed=INTEGER, only=listed({"enum": list(RESETTABLE)})),
            )
        },
        "/_sandbox/keys/rotate": {
            "post": _op("Rotate the token signing key", 200, obj(("keys",), keys=listed(obj())))
        },
        "/_sandbox/api-keys/rotate": {
            "post": _op(
                "Rotate an API key (the old one stays valid for 24 h on the sandbox clock)",
                201,
                obj(("key",), key=STRING),
                request=_required(_closed(key=STRING), "key"),
            )
        },
        "/_sandbox/clients": {
            "post": _op(
                "Register a client: secret, public (PKCE), public key or JWKS URL",
                201,
                obj(("client_id",), client_id=STRING),
                request={"type": "object"},
            )
        },
        "/_sandbox/requests": {
            "get": _op(
                "The journal of requests received, oldest first (secrets redacted)",
                200,
                listed(obj(("seq", "method", "path", "status"))),
                queries=_journal_queries(),
            )
        },
        "/_sandbox/journal": {
            "get": _op(
                "The journal's size and evictions",
                200,
                obj(("entries", "bytes", "evicted", "last_seq")),
            )
        },
        "/_sandbox/clock": {"get": _op("The sandbox clock", 200, CLOCK)},
        "/_sandbox/clock/advance": {
            "post": _op(
                "Move the virtual clock forward (due retries and lifecycles run)",
                200,
                CLOCK,
                request=_required(_closed(seconds=NUMBER), "seconds"),
            )
        },
        "/_sandbox/clock/set": {
            "post": _op(
                "Set the virtual clock to a later time",
                200,
                CLOCK,
                request=_required(_closed(now=NUMBER), "now"),
            )
        },
        "/_sandbox/subscriptions": {
            "post": _op(
                "Subscribe a URL to every dealer's events",
                201,
                webhook_schema(True),
                request=body(fields),
            ),
            "get": _op("Every subscription, of every client", 200, listed(webhook_schema())),
        },
        "/_sandbox/subscriptions/{webhook_id}": {
            "patch": _op(
                "Change any subscription",
                200,
                webhook_schema(),
                request=webhook_change(partial=True),
                params=("webhook_id",),
            ),
            "delete": _op("Remove any subscription", 204, None, params=("webhook_id",)),
        },
        "/_sandbox/events": {
            "post": _op(
                "Emit one event type (repeat, rate), an alarm lifecycle, or random events",
                202,
                emitted,
                request=events,
            )
        },
        "/_sandbox/events/{event_id}/resend": {
            "post": _op(
                "Deliver an event again to its subscriptions",
                202,
                obj(("event_id", "delivery_ids"), event_id=STRING, delivery_ids=listed(STRING)),
                params=("event_id",),
            )
        },
        "/_sandbox/deliveries": {
            "get": _op(
                "Delivery attempts, oldest first",
                200,
                listed(_attempt()),
                queries=(
                    *(
                        query(name, STRING, f"only this {name}")
                        for name in ("event_id", "webhook_id", "delivery_id", "outcome")
                    ),
                    query("since_seq", {"type": "integer", "minimum": 0}, "attempts after"),
                    query("reveal", {"enum": ["true", "false"]}, "show signatures (loopback)"),
                ),
            )
        },
        "/_sandbox/deliveries/recover": {
            "post": _op(
                "Redeliver what failed since a time",
                202,
                obj(("delivery_ids",), delivery_ids=listed(STRING)),
                request=_required(_closed(since=NUMBER), "since"),
            )
        },
        "/_sandbox/faults": {
            "get": _op("The webhook fault knobs", 200, FAULTS),
            "post": _op(
                "Set webhook faults: duplicates and reordering",
                200,
                FAULTS,
                request=_closed(
                    duplicate_rate=FAULTS["properties"]["duplicate_rate"],
                    reorder_window=FAULTS["properties"]["reorder_window"],
                ),
            ),
        },
    }
