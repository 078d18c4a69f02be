"""The control routes over the record: make an app's API key, and read every dealer's
alarms and the audit log (what tests, the CLI and scenario checks assert on)."""

from __future__ import annotations

from typing import Any

from sandbox.api.control_record import KEY_FIELDS
from sandbox.api.openapi.control import control_op
from sandbox.api.openapi.objects import ALARM_OBJECT, ALARM_STATE, ID_NUMBER, STAMP
from sandbox.api.openapi.partner import PAGING, TOTAL, webhook_schema
from sandbox.api.openapi.schema import (
    ERROR,
    body,
    json_content,
    listed,
    named,
    obj,
    query,
)
from sandbox.auth.clients import APPS_SCOPES, PARTNER_SCOPES
from sandbox.world import audit, inbound, subscriptions

TEXT = {"type": "string"}
WEBHOOK = body(subscriptions.SUBSCRIPTION_FIELDS, title="WebhookInput")
MAYBE_TEXT = {"type": ["string", "null"]}
SCOPE = {"title": "Scope", "enum": [*APPS_SCOPES, *PARTNER_SCOPES]}
KEY_REQUEST = body(
    KEY_FIELDS,
    title="ApiKeyRequest",
    given={
        "scopes": {
            "type": "array",
            "minItems": 1,
            "items": SCOPE,
            "description": "Apps API scopes (resource:verb), Partner API scopes, or a mix",
        },
        "webhook": {
            "anyOf": [
                body(subscriptions.SUBSCRIPTION_FIELDS, title="WebhookInput"),
                {"type": "null"},
            ],
            "description": "a subscription that hears what the key's scopes allow",
        },
    },
)
APP_KEY_MADE = named(
    "AppApiKey",
    obj(
        ("key", "dealer_id", "scopes", "name", "client_id"),
        key={"type": "string", "description": "chekt_test_..., shown only here"},
        dealer_id={"type": "integer"},
        scopes=listed(SCOPE),
        name=TEXT,
        client_id={"type": "string", "description": "the app's id in the audit log"},
        webhook=webhook_schema(True),
    ),
)
AUDIT_ENTRY = named(
    "AuditEntry",
    obj(
        ("seq", "at", "dealer_id", "actor_kind", "actor_id", "surface", "action", "target"),
        seq={"type": "integer"},
        at=STAMP,
        dealer_id={"type": ["integer", "null"]},
        actor_kind={"title": "ActorKind", "enum": list(audit.ACTOR_KINDS)},
        actor_id=TEXT,
        actor_name=MAYBE_TEXT,
        surface={"title": "AuditSurface", "enum": list(audit.SURFACES)},
        action={"type": "string", "description": "the event type, or a verb (alarm.annotated)"},
        target={"type": "string", "examples": ["alarm A-10293", "device 100002"]},
        event_id=MAYBE_TEXT,
        request_id=MAYBE_TEXT,
    ),
)
INVALID = {"description": "`validation_failed` (with `field`)", **json_content(ERROR)}


def _alarms() -> dict[str, Any]:
    filters = (
        query("state", TEXT, f"only alarms in this state ({', '.join(ALARM_STATE['enum'])})"),
        query("site_id", ID_NUMBER, "only this site's"),
        query("device_id", ID_NUMBER, "only this device's"),
        query("dealer_id", ID_NUMBER, "only this dealer's"),
        query("priority", TEXT, "only this priority"),
    )
    listing = control_op(
        "Every dealer's alarms, newest first",
        200,
        listed(ALARM_OBJECT),
        queries=(*PAGING, *filters),
        headers=TOTAL,
    )
    get = control_op("Any dealer's alarm", 200, ALARM_OBJECT, params=("alarm_id",))
    get["responses"]["404"] = {
        "description": "`alarm_not_found`: no such alarm",
        **json_content(ERROR),
    }
    return {"/_sandbox/alarms": {"get": listing}, "/_sandbox/alarms/{alarm_id}": {"get": get}}


def _audit() -> dict[str, Any]:
    described = {
        "actor_kind": ", ".join(audit.ACTOR_KINDS),
        "actor_id": "an app's or client's id, a user, op_sandbox, seed ...",
        "surface": ", ".join(audit.SURFACES),
        "action": "an event type, or a verb such as alarm.annotated",
        "target": "such as `alarm A-10293`",
    }
    queries = (
        query("dealer_id", ID_NUMBER, "only this dealer's"),
        *(query(name, TEXT, f"only this {name}: {text}") for name, text in described.items()),
        query("since_seq", ID_NUMBER, "entries after this seq"),
        PAGING[0],
    )
    return {
        "/_sandbox/audit": {
            "get": control_op(
                "The audit log: who changed the record, through which surface, under which "
                "request id; oldest first",
                200,
                listed(AUDIT_ENTRY),
                queries=queries,
            )
        }
    }


def paths() -> dict[str, Any]:
    make = control_op(
        "Make an app and its API key for one dealer (and, optionally, its webhook)",
        201,
        APP_KEY_MADE,
        request=KEY_REQUEST,
    )
    make["responses"]["422"] = INVALID
    return {"/_sandbox/api-keys": {"post": make}, **_alarms(), **_audit(), **_inbound()}


INBOUND_EVENT = named(
    "InboundEvent",
    obj(
        ("seq", "source", "client_id", "site_id", "event_type", "alarm_id", "received_at"),
        seq={"type": "integer"},
        source={"title": "InboundSource", "enum": list(inbound.SOURCES)},
        client_id={"type": "string", "description": "the Event API's caller, or bridge-<id>"},
        event_id={"type": ["string", "null"], "description": "the partner's 16-digit id"},
        dealer_id={"type": "integer"},
        site_id={"type": "integer"},
        device_id={"type": ["integer", "null"]},
        channel={"type": ["integer", "null"]},
        event_type={"title": "InboundEventType", "enum": list(inbound.EVENT_TYPES)},
        event_status=MAYBE_TEXT,
        description=MAYBE_TEXT,
        alarm_id={"type": ["string", "null"], "description": "the alarm it raised, if any"},
        record_event_ids=listed(TEXT),
        request_id=MAYBE_TEXT,
        received_at=STAMP,
    ),
)


def _inbound() -> dict[str, Any]:
    queries = (
        query("source", {"enum": list(inbound.SOURCES)}, "only events from this surface"),
        query("channel", ID_NUMBER, "only events on this channel"),
        query("site_id", ID_NUMBER, "only this site's"),
        query("event_type", {"enum": list(inbound.EVENT_TYPES)}, "only this type"),
        query("since_seq", ID_NUMBER, "events after this seq"),
        PAGING[0],
    )
    listing = control_op(
        "Events that came into CHeKT through the Partner Event API or a bridge's local API, "
        "oldest first, each with the alarm it raised",
        200,
        listed(INBOUND_EVENT),
        queries=queries,
    )
    listing["responses"]["422"] = INVALID
    return {"/_sandbox/inbound": {"get": listing}}
