"""The control routes that judge the partner's traffic: the report card, coverage and the
forged delivery (:mod:`sandbox.api.control_insights`)."""

from __future__ import annotations

from typing import Any

from sandbox.api.openapi.control import control_op
from sandbox.api.openapi.schema import listed, named, obj, query
from sandbox.insights.card import FINDING_IDS

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
FINDING = named(
    "ReportFinding",
    obj(
        ("id", "ok", "title", "detail", "evidence", "attempts"),
        id={"type": "string", "description": "one of " + ", ".join(FINDING_IDS)},
        ok={
            "type": ["boolean", "null"],
            "description": "true: behaved; false: misbehaved; null: nothing to judge it by",
        },
        title=STRING,
        detail={"type": "string", "description": "what was judged, and how it came out"},
        evidence=listed(INTEGER) | {"description": "journal seqs (GET /_sandbox/requests)"},
        attempts=listed(INTEGER)
        | {"description": "delivery attempt seqs (GET /_sandbox/deliveries)"},
    ),
)
REPORT = named(
    "ReportCard",
    obj(
        ("ok", "failed", "passed", "findings"),
        ok={"type": "boolean", "description": "no finding failed"},
        failed=INTEGER,
        passed=INTEGER,
        findings=listed(FINDING),
    ),
)
OPERATION = named(
    "CoveredOperation",
    obj(
        ("operation_id", "method", "path", "calls", "statuses"),
        operation_id=STRING,
        method=STRING,
        path={"type": "string", "description": "the documented path template"},
        tag={"type": ["string", "null"]},
        calls=INTEGER,
        statuses=COUNTS | {"description": "calls by response status"},
    ),
)
COVERAGE = named(
    "Coverage",
    obj(
        ("operations", "covered", "total", "event_types", "error_codes", "tiers", "unmatched"),
        operations=listed(OPERATION),
        covered={"type": "integer", "description": "operations called at least once"},
        total={"type": "integer", "description": "documented operations (control excluded)"},
        event_types=listed(
            named("CoveredEventType", obj(("type", "delivered"), type=STRING, delivered=INTEGER))
        ),
        error_codes=listed(
            named("CoveredErrorCode", obj(("code", "received"), code=STRING, received=INTEGER))
        ),
        tiers=listed(named("CoveredTier", obj(("tier", "calls"), tier=STRING, calls=INTEGER))),
        unmatched=listed(
            named(
                "UndocumentedCall",
                obj(("method", "path", "calls"), method=STRING, path=STRING, calls=INTEGER),
            )
        ),
    ),
)
FORGED = named(
    "ForgedDelivery",
    obj(
        ("seq", "webhook_id", "event_id", "delivery_id", "outcome", "status_code", "verdict"),
        seq={"type": "integer", "description": "the attempt's seq in /_sandbox/deliveries"},
        webhook_id=STRING,
        event_id=STRING,
        delivery_id=STRING,
        outcome=STRING,
        status_code={"type": ["integer", "null"]},
        latency_ms={"type": ["number", "null"]},
        verdict={"enum": ["accepted", "refused", "no_verdict"]},
    ),
)


def _filters() -> tuple[dict[str, Any], ...]:
    return (
        query("client_id", STRING, "only this client's requests (and subscriptions)"),
        query("since_seq", {"type": "string", "pattern": "^[0-9]+$"}, "journal entries after"),
        query("since", STRING, "from this sandbox time on (unix seconds)"),
    )


def paths() -> dict[str, Any]:
    webhook_id = {"name": "webhook_id", "in": "path", "required": True, "schema": STRING}
    forge = control_op(
        "Send the subscription a delivery signed with a wrong secret (the report card's "
        "signature_checked): 2xx back means the receiver does not verify",
        201,
        FORGED,
    )
    forge["parameters"].insert(0, webhook_id)
    return {
        "/_sandbox/report": {
            "get": control_op(
                "The report card: how the partner's client and webhook receiver behaved, "
                "each finding with the journal entries and attempts that prove it",
                200,
                REPORT,
                queries=_filters(),
            )
        },
        "/_sandbox/coverage": {
            "get": control_op(
                "Which documented operations, event types, error codes and auth tiers the "
                "partner's traffic exercised, and which it never touched",
                200,
                COVERAGE,
                queries=_filters(),
            )
        },
        "/_sandbox/subscriptions/{webhook_id}/forged": {"post": forge},
    }
