"""Webhook subscriptions: which URL hears which events, signed with which secret.

A subscription belongs to the client that made it; another client sees a 404. The secret
is returned only on creation and rotation.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection
from typing import Any

from sandbox.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from sandbox.net import DestinationPolicy
from sandbox.settings import Settings, SettingsError
from sandbox.store import Row
from sandbox.vocabulary import PROFILES
from sandbox.world.catalog import ALARM_SCOPES, EVENT_SCOPES, EVENT_TYPES
from sandbox.world.context import World
from sandbox.world.fields import Field
from sandbox.world.formats import names

# the scopes that hear each event type (the catalogue's), and the happenings in the record
# CHeKT sends no webhook for, with who may read them in /v1/events
RECORD_SCOPES = {**EVENT_SCOPES, "alarm.escalated": ALARM_SCOPES}
STATUSES = ("enabled", "disabled")


def _aliases() -> dict[str, tuple[str, ...]]:
    """Every name a subscription may list, with the catalogue types it stands for: the types
    themselves and the names the older formats give them (the guide's own registration uses
    its legacy names)."""
    found: dict[str, tuple[str, ...]] = {}
    for profile in PROFILES:  # chekt-apps first: the catalogue types, each for itself
        for name, types in names(profile).items():
            found.setdefault(name, types)
    return found


ALIASES = _aliases()
EVENT_NAMES = tuple(ALIASES)


def _events_problem(events: Any) -> str | None:
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        return "must be an array of event type names"
    unknown = [e for e in events if e not in ALIASES]
    if unknown:
        return f"has unknown event type {unknown[0]!r}; known types: {', '.join(EVENT_NAMES)}"
    return None


def types_of(events: list[str]) -> tuple[str, ...]:
    """The catalogue types a subscription's event names stand for."""
    return tuple(dict.fromkeys(t for e in events for t in ALIASES[e]))


def matches(events: list[str], profile: str, event_type: str, name: str) -> bool:
    """Whether a subscription listing ``events`` hears an event its profile calls ``name``:
    listed by catalogue type, by that name, or by another format's name for the type (so
    ``camera_network`` on a dealer-v1 subscription leaves the bridges out)."""
    own = names(profile)
    return any(
        e in (event_type, name) or (e not in own and event_type in ALIASES[e]) for e in events
    )


SUBSCRIPTION_FIELDS = (
    # the destination policy (scheme, credentials, refused addresses) is applied by the
    # surfaces with the sandbox's own policy, and again on the resolved address at send time
    Field("url", required=True, max_length=2048),
    Field("events", kind=list, check=_events_problem),
    Field("secret", min_length=16, max_length=256),
    Field("profile", choices=PROFILES),
    Field("status", choices=STATUSES),
)
READ_ONLY = ("webhook_id", "created_at")


def hears(scopes: Collection[str], event_type: str) -> bool:
    """Whether a credential with ``scopes`` may receive ``event_type``."""
    return any(scope in scopes for scope in RECORD_SCOPES[event_type])


def _check_reach(events: list[str] | None, scopes: Collection[str]) -> None:
    """An explicitly listed event the credential may not hear is a mistake worth naming
    (an omitted list means "whatever I may hear")."""
    for event_type in types_of(events or []):
        if not hears(scopes, event_type):
            needed = " or ".join(EVENT_SCOPES[event_type])
            raise PermissionDenied(
                f"this credential may not receive {event_type}: that needs {needed}",
                scope=EVENT_SCOPES[event_type][0],
            )


def _check_cap(world: World, client_id: str, cap: int) -> None:
    count = world.store.scalar("SELECT COUNT(*) FROM webhooks WHERE client_id = ?", (client_id,))
    if count >= cap:
        raise Conflict(
            f"this client already has {count} webhook subscriptions, the most allowed "
            f"(max_webhooks_per_client = {cap}); delete one first"
        )


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _public(world: World, row: Row, *, with_secret: bool = False) -> dict[str, Any]:
    item = {
        "webhook_id": row["webhook_id"],
        "url": row["url"],
        "events": json.loads(row["events"]),
        "status": row["status"],
        "profile": row["profile"],
        "created_at": world.stamp(row["created_at"]),
        "client_id": row["client_id"],
    }
    if with_secret:
        item["secret"] = row["secret"]
    return item


def _row(world: World, client_id: str | None, webhook_id: str) -> Row:
    row = world.store.one(
        "SELECT * FROM webhooks WHERE webhook_id = ? AND client_id IS ?", (webhook_id, client_id)
    )
    if row is None:
        raise NotFound(f"webhook {webhook_id} was not found")
    return row


def create(
    world: World,
    client_id: str | None,
    values: dict[str, Any],
    *,
    default_profile: str = "chekt-apps",
    webhook_id: str | None = None,
    scopes: Collection[str] | None = None,
    cap: int | None = None,
) -> dict[str, Any]:
    """``client_id`` None is a sandbox-wide subscription: every event of every dealer.
    ``scopes`` are the creating credential's: the subscription hears only what they allow."""
    if client_id is not None and cap is not None:
        _check_cap(world, client_id, cap)
    if scopes is not None:
        _check_reach(values.get("events"), scopes)
    secret = values.get("secret")
    row = {
        "webhook_id": webhook_id or "wh_" + secrets.token_hex(8),
        "client_id": client_id,
        "url": values["url"],
        "events": json.dumps(values.get("events") or list(EVENT_TYPES)),
        "secret": secret or new_secret(),
        "status": values.get("status") or "enabled",
        "profile": values.get("profile") or default_profile,
        "created_at": world.now(),
        "scopes": None if scopes is None else " ".join(sorted(scopes)),
    }
    world.store.insert("webhooks", row)
    return _public(world, row, with_secret=True)


def get(world: World, client_id: str | None, webhook_id: str) -> dict[str, Any]:
    return _public(world, _row(world, client_id, webhook_id))


def reach(world: World, client_id: str | None, webhook_id: str) -> frozenset[str] | None:
    """The scopes a subscription hears with (None: not recorded, the client's apply)."""
    scopes = _row(world, client_id, webhook_id)["scopes"]
    return None if scopes is None else frozenset(scopes.split())


def list_all(world: World) -> list[dict[str, Any]]:
    """Every subscription, whoever made it (what the control API shows)."""
    rows = world.store.all("SELECT * FROM webhooks ORDER BY created_at, webhook_id")
    return [_public(world, row) for row in rows]


def owner(world: World, webhook_id: str) -> str | None:
    """The client that made a subscription (None for the sandbox's own, or when absent)."""
    found = world.store.scalar("SELECT client_id FROM webhooks WHERE webhook_id = ?", (webhook_id,))
    return None if found is None else str(found)


def list_for(world: World, client_id: str | None) -> list[dict[str, Any]]:
    rows = world.store.all(
        "SELECT * FROM webhooks WHERE client_id IS ? ORDER BY created_at, webhook_id", (client_id,)
    )
    return [_public(world, row) for row in rows]


def update(
    world: World,
    client_id: str | None,
    webhook_id: str,
    values: dict[str, Any],
    scopes: Collection[str] | None = None,
) -> dict[str, Any]:
    """``scopes``: the updating credential's, which the subscription takes on (so a narrower
    key of the same client cannot point a wider key's subscription at itself)."""
    _row(world, client_id, webhook_id)
    changes = dict(values)
    if scopes is not None:
        _check_reach(changes.get("events"), scopes)
        changes["scopes"] = " ".join(sorted(scopes))
    if "secret" in changes:
        raise ValidationFailed("secret", "change the secret with POST …/rotate-secret")
    if "events" in changes:
        changes["events"] = json.dumps(changes["events"] or list(EVENT_TYPES))
    if changes.get("status") == "enabled":
        changes["failing_since"] = None  # re-enabling starts a fresh failure window
    for name in ("url", "status", "profile"):
        if name in changes and changes[name] is None:
            raise ValidationFailed(name, f"{name} cannot be null")
    if changes:
        assignments = ", ".join(f"{name} = :{name}" for name in changes)
        world.store.execute(
            f"UPDATE webhooks SET {assignments} WHERE webhook_id = :_id",
            {**changes, "_id": webhook_id},
        )
    return get(world, client_id, webhook_id)


def delete(world: World, client_id: str | None, webhook_id: str) -> None:
    _row(world, client_id, webhook_id)
    world.store.execute("DELETE FROM webhooks WHERE webhook_id = ?", (webhook_id,))


def rotate_secret(world: World, client_id: str | None, webhook_id: str) -> dict[str, Any]:
    _row(world, client_id, webhook_id)
    world.store.execute(
        "UPDATE webhooks SET secret = ? WHERE webhook_id = ?", (new_secret(), webhook_id)
    )
    return _public(world, _row(world, client_id, webhook_id), with_secret=True)


def callback(world: World) -> Row | None:
    """The sandbox-wide subscription ``serve --callback`` made, if any."""
    return world.store.one("SELECT * FROM webhooks WHERE webhook_id = 'wh_callback'")


def ensure_callback(world: World, settings: Settings) -> None:
    """The sandbox-wide subscription of ``serve --callback URL``, with a stable id."""
    if settings.callback is None:
        return
    policy = DestinationPolicy(
        allow_private=settings.allow_private_destinations, own_ports=settings.own_ports
    )
    problem = policy.url_problem(settings.callback) or (
        _events_problem(list(settings.callback_events)) if settings.callback_events else None
    )
    if problem is not None:
        raise SettingsError(f"callback {problem}")
    if world.store.scalar("SELECT 1 FROM webhooks WHERE webhook_id = 'wh_callback'"):
        world.store.execute(
            "UPDATE webhooks SET url = ?, events = ? WHERE webhook_id = 'wh_callback'",
            (settings.callback, json.dumps(list(settings.callback_events or EVENT_TYPES))),
        )
        return
    values = {"url": settings.callback, "events": list(settings.callback_events) or None}
    if settings.callback_secret:
        values["secret"] = settings.callback_secret
    create(world, None, values, default_profile=settings.webhook_profile, webhook_id="wh_callback")
