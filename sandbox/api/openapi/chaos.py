"""The control routes of failure on demand: fault rules, rate limits and auth chaos
(:mod:`sandbox.api.control_chaos`)."""

from __future__ import annotations

from typing import Any

from sandbox.api.openapi.control import control_op
from sandbox.api.openapi.schema import listed, named, obj
from sandbox.auth.guard import TIERS
from sandbox.auth.ratelimit import MAX_BURST, MAX_PER_MINUTE
from sandbox.faults import MAX_LATENCY_MS, SURFACES
from sandbox.settings import MAX_SKEW
from sandbox.vocabulary import RATE_LIMITS
from sandbox.webhooks import chaos

STRING = {"type": "string"}
NUMBER = {"type": "number"}
FLAG = {"type": "boolean"}
MS = {"type": "number", "minimum": 0, "maximum": MAX_LATENCY_MS}
LATENCY = named(
    "FaultLatency",
    {
        "description": "fixed ms, {min, max} (uniform) or {median, sigma} (log-normal); the "
        "sandbox's own real-time sleep, not the sandbox clock",
        "anyOf": [
            MS,
            obj(("min", "max"), min=MS, max=MS),
            obj(("median", "sigma"), median=MS, sigma={"type": "number", "minimum": 0}),
        ],
    },
)
RULE_FIELDS: dict[str, Any] = {
    "method": STRING,
    "path": {"type": "string", "description": "a glob over the path, e.g. /partner/v1/*"},
    "client_id": STRING,
    "tier": named("FaultTier", {"enum": list(TIERS)}),
    "surface": named("FaultSurface", {"enum": list(SURFACES)}),
    "status": {"type": "integer", "minimum": 400, "maximum": 599},
    "retry_after": {"type": "number", "minimum": 0, "description": "with status 429 or 503"},
    "latency_ms": LATENCY,
    "drop": FLAG,
    "truncate": {
        "anyOf": [FLAG, {"type": "number", "minimum": 0, "exclusiveMaximum": 1}],
        "description": "true (half) or the share of the body sent before hanging up",
    },
    "empty": FLAG,
    "malformed_json": FLAG,
    "processed": {
        "type": "boolean",
        "description": "handle the request before the status or drop strikes",
    },
    "probability": {"type": "number", "minimum": 0, "maximum": 1},
    "count": {"type": "integer", "minimum": 1},
}
RULE_INPUT = named(
    "InboundFaultInput",
    {"type": "object", "additionalProperties": False, "properties": RULE_FIELDS},
)
RULE = named(
    "InboundFault",
    obj(
        ("id", "matched", "fired", "remaining"),
        id=STRING,
        **RULE_FIELDS,
        matched={"type": "integer"},
        fired={"type": "integer"},
        remaining={"type": ["integer", "null"]},
    ),
)
CHAOS_ABOUT = {
    "burst": "the next N deliveries' first attempts skip the per-subscription concurrency "
    "cap (emit events without a rate to have them arrive at once); counts down",
    "slow_send_ms": "every attempt's body trickles out in chunks over this many ms",
    "oversize": "bytes each new delivery's body is padded to, with a `padding` field in its "
    "data (still valid JSON, still signed); 0 is off",
    "unknown_types": "share of deliveries followed by one of an event type the catalogue does "
    "not have, in the subscription's format (off the record)",
    "extra_fields": "share of deliveries with fields a receiver does not know added to the "
    "envelope and the data",
}
CHAOS_KNOBS: dict[str, Any] = {
    name: {
        "type": "integer" if name in chaos.WHOLE else "number",
        "minimum": 0,
        "maximum": chaos.LIMITS[name],
        "description": CHAOS_ABOUT[name],
    }
    for name in chaos.KNOBS
}
FAULTS = named(
    "Faults",
    obj(
        ("duplicate_rate", "reorder_window", *chaos.KNOBS, "inbound"),
        duplicate_rate={"type": "number", "minimum": 0, "maximum": 1},
        reorder_window={"type": "number", "minimum": 0, "maximum": 3600},
        **CHAOS_KNOBS,
        inbound=listed(RULE),
    ),
)
FAULTS_INPUT = named(
    "FaultsInput",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "duplicate_rate": {"type": "number", "minimum": 0, "maximum": 1},
            "reorder_window": {"type": "number", "minimum": 0, "maximum": 3600},
            **CHAOS_KNOBS,
            "inbound": listed(RULE_INPUT),
        },
    },
)
NULLABLE_INT = {"type": ["integer", "null"]}
CEILING = {
    "tier": {"type": "string", "description": "free, pro, enterprise, custom or off"},
    "per_minute": NULLABLE_INT,
    "burst": NULLABLE_INT,
}
RATE_LIMITS_VIEW = named(
    "RateLimits",
    obj(
        ("tier", "per_minute", "burst", "clients"),
        **CEILING,
        clients=listed(named("ClientRateLimit", obj(("client_id",), client_id=STRING, **CEILING))),
    ),
)
RATE_LIMITS_INPUT = named(
    "RateLimitsInput",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "tier": {"enum": [*RATE_LIMITS, "default"]},
            "per_minute": {"type": "integer", "minimum": 1, "maximum": MAX_PER_MINUTE},
            "burst": {"type": "integer", "minimum": 1, "maximum": MAX_BURST},
            "client_id": STRING,
        },
    },
)
KEYS = named(
    "SigningKeyStatuses",
    obj(("keys",), keys=listed(named("SigningKeyStatus", obj(("kid", "status"))))),
)
SKEW = named(
    "ClockSkew",
    obj(("skew", "now", "stamped_now"), skew=NUMBER, now=NUMBER, stamped_now=NUMBER),
)


def _closed(title: str, required: tuple[str, ...], **properties: Any) -> dict[str, Any]:
    return named(
        title,
        {
            "type": "object",
            "additionalProperties": False,
            "properties": properties,
            "required": list(required),
        },
    )


def paths() -> dict[str, Any]:
    string_param = {"type": "string", "pattern": "^[A-Za-z0-9_.@-]+$"}
    fault_id = {"name": "fault_id", "in": "path", "required": True, "schema": string_param}
    client_id = {"name": "client_id", "in": "path", "required": True, "schema": STRING}
    remove = control_op("Remove one inbound fault rule", 204, None)
    remove["parameters"].insert(0, fault_id)
    expire = control_op(
        "Expire every access token issued to the client until now (new ones work)",
        200,
        named("ExpiredTokens", obj(("client_id", "expired_before"))),
    )
    expire["parameters"].insert(0, client_id)
    return {
        "/_sandbox/faults": {
            "get": control_op(
                "The webhook fault knobs and the inbound fault rules, with how often each "
                "matched and fired",
                200,
                FAULTS,
            ),
            "post": control_op(
                "Set webhook faults (duplicates, reordering, bursts, slow sending, oversized "
                "bodies, unknown event types, extra fields) and add inbound fault rules",
                200,
                FAULTS,
                request=FAULTS_INPUT,
            ),
            "delete": control_op("No faults: rules removed, knobs at 0", 200, FAULTS),
        },
        "/_sandbox/faults/{fault_id}": {"delete": remove},
        "/_sandbox/rate-limits": {
            "get": control_op("CHeKT's rate limits in force", 200, RATE_LIMITS_VIEW),
            "post": control_op(
                'Change the rate limits: {"tier"} or a custom {"per_minute", "burst"}, for '
                "everyone or one client_id",
                200,
                RATE_LIMITS_VIEW,
                request=RATE_LIMITS_INPUT,
            ),
        },
        "/_sandbox/api-keys/revoke": {
            "post": control_op(
                "Revoke an API key now",
                200,
                named("RevokedApiKey", obj(("client_id", "dealer_id", "revoked_at"))),
                request=_closed("ApiKeyRevocation", ("key",), key=STRING),
            )
        },
        "/_sandbox/clients/{client_id}/expire-tokens": {"post": expire},
        "/_sandbox/keys/unpublished": {
            "post": control_op(
                "Sign new tokens with a fresh key the JWKS does not list yet",
                200,
                named("UnpublishedKey", obj(("kid", "keys"), kid=STRING, keys=listed(obj()))),
            )
        },
        "/_sandbox/keys/publish": {
            "post": control_op("Publish the unpublished signing key", 200, KEYS)
        },
        "/_sandbox/clock/skew": {
            "get": control_op("How far stamped times are off from the clock", 200, SKEW),
            "post": control_op(
                "Skew the times stamped into tokens and webhook signatures",
                200,
                SKEW,
                request=_closed(
                    "ClockSkewInput",
                    ("seconds",),
                    seconds={"type": "number", "minimum": -MAX_SKEW, "maximum": MAX_SKEW},
                ),
            ),
        },
    }
