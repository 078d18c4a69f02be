"""A site's contacts as the dealer API keeps them: the call list, each entry with its alarm
notification flags and the state of its phone's SMS validation.

The Partner API shares the rows (``email`` there is ``email_address`` here). A validation
completes ``VALIDATION_SECONDS`` of sandbox time after it was asked for; nothing runs to
complete it, its status is read from the clock, so advancing the clock completes it.
Every change is audited in the transaction that makes it.
"""

from __future__ import annotations

from typing import Any

from sandbox.errors import NotFound, ValidationFailed
from sandbox.store import Row
from sandbox.world import audit
from sandbox.world.audit import Actor
from sandbox.world.context import World
from sandbox.world.fields import EMAIL, PHONE, Field, external_id, validate
from sandbox.world.resources import CONTACT, ensure_external_id_free

VALIDATION_SECONDS = 30  # an SMS round trip, on the sandbox clock
FLAG = (0, 1)
# the dealer API's field -> the column it is kept in
COLUMNS = {"email_address": "email"}
FIELDS = (
    external_id("external_contact_id"),
    Field("first_name", required=True, max_length=100),
    Field("last_name", required=True, max_length=100),
    Field("title", max_length=100),
    Field("slot_number", kind=int, minimum=1, maximum=999),
    Field("email_address", pattern=EMAIL, pattern_hint="an email address"),
    Field("phone_number", pattern=PHONE, pattern_hint="a phone number such as +15551234567"),
    Field("sms_alarm_enabled", kind=int, choices=FLAG),
    Field("email_alarm_enabled", kind=int, choices=FLAG),
)
READ_ONLY = ("contact_id", "site_id", "sms_validation")
_ORDER = "ORDER BY slot_number IS NULL, slot_number, contact_id"


def validation(world: World, requested_at: float | None) -> dict[str, Any]:
    """``{status, requested_at}``: 1 once ``VALIDATION_SECONDS`` have passed since the last
    request, 0 before that and before any request."""
    done = requested_at is not None and world.now() >= requested_at + VALIDATION_SECONDS
    return {
        "status": int(done),
        "requested_at": None if requested_at is None else world.stamp(requested_at),
    }


def view(world: World, row: Row) -> dict[str, Any]:
    return {
        "contact_id": row["contact_id"],
        "site_id": row["site_id"],
        "external_contact_id": row["external_contact_id"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "title": row["title"],
        "slot_number": row["slot_number"],
        "email_address": row["email"],
        "phone_number": row["phone_number"],
        "sms_alarm_enabled": row["sms_alarm_enabled"],
        "email_alarm_enabled": row["email_alarm_enabled"],
        "sms_validation": validation(world, row["sms_validation_requested_at"]),
    }


def find(world: World, site_id: int, contact_id: int) -> Row:
    row = world.store.one(
        "SELECT * FROM contacts WHERE contact_id = ? AND site_id = ?", (contact_id, site_id)
    )
    if row is None:
        raise NotFound(f"contact {contact_id} was not found", code="contact_not_found")
    return row


def of_site(world: World, site_id: int) -> list[Row]:
    return world.store.all(f"SELECT * FROM contacts WHERE site_id = ? {_ORDER}", (site_id,))


def listing(world: World, site_id: int) -> list[dict[str, Any]]:
    return [view(world, row) for row in of_site(world, site_id)]


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    return {COLUMNS.get(name, name): value for name, value in values.items()}


def _audit(world: World, actor: Actor, action: str, site: Row, contact_id: int) -> None:
    target = f"site {site['site_id']} contact {contact_id}"
    audit.write(world, actor, action, target, dealer_id=site["dealer_id"])


def create(world: World, site: Row, body: Any, actor: Actor) -> dict[str, Any]:
    values = validate(body, FIELDS, read_only=READ_ONLY)
    with world.store.transaction():
        external = values["external_contact_id"]
        ensure_external_id_free(world, CONTACT, site["site_id"], external)
        row = {
            **_columns({k: v for k, v in values.items() if v is not None}),
            "site_id": site["site_id"],
            "created_at": world.now(),
        }
        contact_id = world.store.insert("contacts", row)
        _audit(world, actor, "contact.created", site, contact_id)
        return view(world, find(world, site["site_id"], contact_id))


def update(world: World, site: Row, contact_id: int, body: Any, actor: Actor) -> dict[str, Any]:
    """The fields given are set (the others kept); ``external_contact_id`` may be repeated,
    never changed; a new phone number needs a new validation."""
    values = validate(body, FIELDS, partial=True, read_only=READ_ONLY)
    with world.store.transaction():
        row = find(world, site["site_id"], contact_id)
        external = values.pop("external_contact_id", row["external_contact_id"])
        if external != row["external_contact_id"]:
            raise ValidationFailed(
                "external_contact_id",
                f"external_contact_id is immutable: contact {contact_id} keeps "
                f"{row['external_contact_id']!r}",
            )
        for name in ("sms_alarm_enabled", "email_alarm_enabled"):  # flags are 0 or 1
            if name in values and values[name] is None:
                raise ValidationFailed(name, f"{name} cannot be null")
        changes = _columns(values)
        if "phone_number" in changes and changes["phone_number"] != row["phone_number"]:
            changes["sms_validation_requested_at"] = None
        if changes:
            sets = ", ".join(f"{name} = ?" for name in changes)
            world.store.execute(
                f"UPDATE contacts SET {sets} WHERE contact_id = ?", (*changes.values(), contact_id)
            )
        _audit(world, actor, "contact.updated", site, contact_id)
        return view(world, find(world, site["site_id"], contact_id))


def delete(world: World, site: Row, contact_id: int, actor: Actor) -> None:
    with world.store.transaction():
        find(world, site["site_id"], contact_id)
        world.store.execute("DELETE FROM contacts WHERE contact_id = ?", (contact_id,))
        _audit(world, actor, "contact.deleted", site, contact_id)


def request_validation(world: World, site: Row, contact_id: int, actor: Actor) -> dict[str, Any]:
    """Send the contact's phone a validation SMS (again: the clock restarts)."""
    with world.store.transaction():
        row = find(world, site["site_id"], contact_id)
        if not row["phone_number"]:
            raise ValidationFailed(
                "phone_number", f"contact {contact_id} has no phone_number to validate"
            )
        world.store.execute(
            "UPDATE contacts SET sms_validation_requested_at = ? WHERE contact_id = ?",
            (world.now(), contact_id),
        )
        _audit(world, actor, "contact.validation_requested", site, contact_id)
        return view(world, find(world, site["site_id"], contact_id))
