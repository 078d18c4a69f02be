"""Verification requests from the dealer API: ask some of a site's contacts to confirm an
alarm, by SMS, email, push or a call, within a timeout.

A request names the alarm through one of its events (the numeric event id the activity log
and the dealer-v1 webhooks carry) or by its ``alarm_id``; the record logs it as a
``verification.requested`` happening, which is audited and delivered like any other. The
alarm must still be open (a resolved alarm is history: 409).
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.errors import NotFound, ValidationFailed
from sandbox.store import Row
from sandbox.world import alarms, contacts, record
from sandbox.world.audit import Actor
from sandbox.world.catalog import METHODS
from sandbox.world.context import World
from sandbox.world.fields import Field, validate

DEFAULT_METHOD = "sms"
DEFAULT_TIMEOUT = 300
MAX_CONTACTS = 20
FIELDS = (
    Field("contacts", kind=object, required=True, check=lambda v: _contacts_problem(v)),
    Field("method", choices=METHODS),
    Field("message", max_length=1000),
    Field("timeout_seconds", kind=int, minimum=30, maximum=86400),
)
# the second form names what it is about in the body: one of these
TARGETS = (
    Field("event_id", kind=int, minimum=1, maximum=2**62),
    Field("alarm_id", min_length=1, max_length=64),
)
# which of a contact's addresses each method reaches (push reaches the contact's app)
ADDRESS = {"sms": "phone_number", "call": "phone_number", "email": "email", "push": None}


def _contacts_problem(value: Any) -> str | None:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_CONTACTS
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)
    ):
        return f"must list 1 to {MAX_CONTACTS} contact ids (positive integers)"
    return None


def parse(body: Any, *, with_target: bool) -> dict[str, Any]:
    """The request's values; ``with_target``: the body also names exactly one of
    ``event_id`` and ``alarm_id``."""
    values = validate(body, (*FIELDS, *TARGETS) if with_target else FIELDS)
    if with_target:
        named = [f.name for f in TARGETS if values.get(f.name) is not None]
        if len(named) != 1:
            raise ValidationFailed("event_id", "name the alarm by one of event_id or alarm_id")
    return values


def _event(world: World, dealer_id: int, seq: int) -> Row:
    row = world.store.one(
        "SELECT seq, type, data FROM events WHERE seq = ? AND dealer_id = ? "
        "AND status = 'happened'",
        (seq, dealer_id),
    )
    if row is None:
        raise NotFound(f"event {seq} was not found", code="event_not_found")
    return row


def _alarm_event(world: World, alarm_id: str) -> int | None:
    """The numeric id of the alarm's ``alarm.created`` happening."""
    found = world.store.scalar(
        "SELECT seq FROM events WHERE type = 'alarm.created' AND status = 'happened' "
        "AND json_extract(data, '$.alarm_id') = ?",
        (alarm_id,),
    )
    return None if found is None else int(found)


def _target(world: World, dealer_id: int, values: dict[str, Any]) -> tuple[str, int | None]:
    """The alarm the request is about, and the event id it was named by (or its creation)."""
    seq = values.get("event_id")
    if seq is None:
        alarm = alarms.find(world, str(values["alarm_id"]), dealer_id)
        return alarm["alarm_id"], _alarm_event(world, alarm["alarm_id"])
    event = _event(world, dealer_id, seq)
    alarm_id = json.loads(event["data"]).get("alarm_id")
    if not isinstance(alarm_id, str):
        raise ValidationFailed(
            "event_id", f"event {seq} is a {event['type']}, about no alarm: nothing to verify"
        )
    return alarm_id, seq


def _chosen(world: World, site_id: int, ids: list[int]) -> list[Row]:
    rows = {row["contact_id"]: row for row in contacts.of_site(world, site_id)}
    unknown = [i for i in ids if i not in rows]
    if unknown:
        raise ValidationFailed(
            "contacts",
            f"contact {unknown[0]} is not a contact of site {site_id} "
            f"(its contacts: {', '.join(map(str, rows)) or 'none'})",
        )
    return [rows[i] for i in dict.fromkeys(ids)]


def request(world: World, dealer_id: int, values: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """Send the request; ``{verification_id, event_id, status, method, sent_to, ...}``."""
    method = values.get("method") or DEFAULT_METHOD
    timeout = values.get("timeout_seconds") or DEFAULT_TIMEOUT
    with world.store.transaction():
        alarm_id, seq = _target(world, dealer_id, values)
        site_id = alarms.find(world, alarm_id, dealer_id)["site_id"]
        chosen = _chosen(world, site_id, values["contacts"])
        listed = [
            {k: row[k] for k in ("contact_id", "first_name", "last_name", "phone_number", "email")}
            for row in chosen
        ]
        logged: dict[str, Any] = {"method": method, "contacts": listed, "timeout_seconds": timeout}
        if values.get("message") is not None:
            logged["message"] = values["message"]
        data = record.request_verification(world, alarm_id, dealer_id, actor, logged)
    now = world.now()
    return {
        "verification_id": data["verification_id"],
        "event_id": seq,
        "alarm_id": alarm_id,
        "status": "sent",
        "method": method,
        "sent_to": [_sent_to(row, method) for row in chosen],
        "timeout_at": world.stamp(now + timeout),
        "sent_at": world.stamp(now),
    }


def _sent_to(row: Row, method: str) -> dict[str, Any]:
    address = ADDRESS[method]
    reached = address is None or bool(row[address])
    return {
        "contact_id": row["contact_id"],
        "name": f"{row['first_name']} {row['last_name']}".strip(),
        "phone": row["phone_number"],
        "status": "sent" if reached else "unreachable",
    }
