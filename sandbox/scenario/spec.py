"""The scenario language: every keyword, what it takes, and the JSON Schema made from it.

One table drives the loader's checks, its "did you mean" suggestions, the README and the
JSON Schema shipped in the package, so they cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.faults import SURFACES
from sandbox.vocabulary import OUTCOMES, PROFILES, RESOLUTIONS
from sandbox.world import inbound
from sandbox.world.alarms import STATES, VERDICTS
from sandbox.world.catalog import EVENT_TYPES

TOP_LEVEL = {
    "name": "str",
    "description": "str",
    "seed": "int",
    "profile": "profile",
    "settings": "map",
    "world": "map",
    "steps": "steps",
}
REQUIRED_TOP = ("name", "steps")
ADVERSARIAL = (
    "tampered_signature",
    "stale_timestamp",
    "missing_signature",
    "replayed_event",
    "duplicate",
    "out_of_order",
)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CREDENTIALS = ("partner", "api_key", "dealer_admin")
# the settings a scenario may pick: how the simulation behaves, never paths, binds or keys
SETTINGS = (
    "seed",
    "clock",
    "dealers",
    "sites_per_dealer",
    "token_lifetime",
    "code_lifetime",
    "idempotency_ttl",
    "timestamp_style",
    "error_style",
    "webhook_profile",
    "signature_variant",
    "webhook_timeout",
    "webhook_concurrency",
    "duplicate_rate",
    "reorder_window",
    "webhook_burst",
    "webhook_slow_send_ms",
    "webhook_oversize",
    "webhook_unknown_types",
    "webhook_extra_fields",
    "rate_limit",
    "clock_skew",
)

# step keyword -> field -> kind; "*" marks a required field; a str kind is a scalar step
STEPS: dict[str, dict[str, str] | str] = {
    "emit": {
        "type": "event_type",
        "data": "map",
        "lifecycle": "lifecycle",
        "variant": "variant",
        "repeat": "count",
        "rate": "positive",
        "save_as": "str",
    },
    "random": {"count*": "count", "types": "event_types", "seed": "int", "rate": "positive"},
    "advance": "duration",
    "wait": "duration",
    "call": {
        "method*": "method",
        "path*": "path",
        "json": "any",
        "as": "credential",
        "user": "str",
        "expect_status": "status",
        "save_as": "str",
    },
    "expect_request": {
        "method": "method",
        "path": "path",
        "json": "map",
        "headers": "map",
        "query": "map",
        "status": "status",
        "within": "duration",
        "times": "count0",
    },
    "expect_no_request": {"method": "method", "path": "path", "within": "duration"},
    "expect_delivery": {
        "status": "status",
        "outcome": "outcome",
        "rejected": "bool",
        "within": "duration",
        "attempt": "count",
    },
    "expect_alarm": {
        "alarm*": "str",
        "state": "alarm_state",
        "annotated": "bool",
        "verdict": "annotation_verdict",
        "by": "str",
        "within": "duration",
    },
    "expect_event": {
        "source": "inbound_source",
        "channel": "count",
        "event_type": "inbound_type",
        "state": "alarm_state",
        "within": "duration",
        "save_as": "str",
    },
    "fault": {
        "duplicate_rate": "rate",
        "reorder_window": "duration",
        # webhook chaos (sandbox.webhooks.chaos)
        "burst": "count0",
        "slow_send_ms": "count0",
        "oversize": "count0",
        "unknown_types": "rate",
        "extra_fields": "rate",
        # an inbound fault rule (sandbox.faults), added for the rest of the run
        "method": "method",
        "path": "path",
        "client_id": "str",
        "tier": "str",
        "surface": "surface",
        "status": "error_status",
        "retry_after": "duration",
        "latency_ms": "any",
        "drop": "bool",
        "truncate": "any",
        "empty": "bool",
        "malformed_json": "bool",
        "processed": "bool",
        "probability": "rate",
        "count": "count",
    },
    "adversarial": {
        "kind*": "adversarial",
        "expect": "verdict",
        "event_type": "event_type",
        "side_effect": "map",
    },
    "check": {"requests": "map", "deliveries": "map", "latency": "map"},
}
CHECK_FIELDS = {
    "requests": {
        "method": "method",
        "path": "path",
        "count": "count0",
        "min": "count0",
        "max": "count0",
        "status": "status",
    },
    "deliveries": {
        "outcome": "outcome",
        "count": "count0",
        "min": "count0",
        "max": "count0",
        "every_event": "bool",
    },
    "latency": {"p50_ms": "positive", "p99_ms": "positive", "max_ms": "positive"},
}
# the fault step's webhook half
KNOBS = (
    "duplicate_rate",
    "reorder_window",
    "burst",
    "slow_send_ms",
    "oversize",
    "unknown_types",
    "extra_fields",
)
SIDE_EFFECT_FIELDS = {"method": "method", "path": "path", "times": "count0", "within": "duration"}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}


def duration(value: Any) -> float | None:
    """Seconds from ``90``, ``1.5``, ``"250ms"``, ``"30s"``, ``"5m"``, ``"2h"``, ``"1d"``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    return None


def field_names(spec: dict[str, str]) -> dict[str, str]:
    return {name.rstrip("*"): kind for name, kind in spec.items()}


def required(spec: dict[str, str]) -> list[str]:
    return [name.rstrip("*") for name in spec if name.endswith("*")]


_KIND_SCHEMA: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "count": {"type": "integer", "minimum": 1},
    "count0": {"type": "integer", "minimum": 0},
    "positive": {"type": "number", "exclusiveMinimum": 0},
    "rate": {"type": "number", "minimum": 0, "maximum": 1},
    "bool": {"type": "boolean"},
    "map": {"type": "object"},
    "any": {},
    "path": {"type": "string", "pattern": "^/"},
    "status": {"type": "integer", "minimum": 100, "maximum": 599},
    "error_status": {"type": "integer", "minimum": 400, "maximum": 599},
    "surface": {"enum": list(SURFACES)},
    "duration": {"type": ["number", "string"], "pattern": _DURATION.pattern},
    "event_type": {"enum": list(EVENT_TYPES)},
    "event_types": {"type": "array", "items": {"enum": list(EVENT_TYPES)}},
    "lifecycle": {"enum": ["alarm"]},
    "variant": {"enum": list(RESOLUTIONS)},
    "method": {"enum": list(METHODS)},
    "credential": {"enum": list(CREDENTIALS)},
    "outcome": {"enum": list(OUTCOMES)},
    "adversarial": {"enum": list(ADVERSARIAL)},
    "verdict": {"enum": ["reject", "accept"]},
    "alarm_state": {"enum": list(STATES)},
    "annotation_verdict": {"enum": list(VERDICTS)},
    "profile": {"enum": list(PROFILES)},
    "inbound_source": {"enum": list(inbound.SOURCES)},
    "inbound_type": {"enum": list(inbound.EVENT_TYPES)},
}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scenario file."""
    steps = []
    for keyword, spec in STEPS.items():
        if isinstance(spec, str):
            body: dict[str, Any] = _KIND_SCHEMA[spec]
        else:
            body = {
                "type": "object",
                "additionalProperties": False,
                "properties": {n: _KIND_SCHEMA[k] for n, k in field_names(spec).items()},
                "required": required(spec),
            }
        steps.append(
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {"name": {"type": "string"}, keyword: body},
                "required": [keyword],
            }
        )
    top = {n: _KIND_SCHEMA.get(k, {}) for n, k in TOP_LEVEL.items() if k != "steps"}
    top["settings"] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {name: {} for name in SETTINGS},
    }
    top["steps"] = {"type": "array", "minItems": 1, "items": {"oneOf": steps}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://chekt-sandbox.local/scenario.schema.json",
        "title": "chekt-sandbox scenario",
        "type": "object",
        "additionalProperties": False,
        "required": list(REQUIRED_TOP),
        "properties": top,
    }
