"""Webhook subscriptions: which URL hears which events, signed with which secret.

A subscription belongs to the client that made it; another client sees a 404. The secret
is returned only on creation and rotation.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sandbox.errors import NotFound, ValidationFailed
from sandbox.net import DestinationPolicy
from sandbox.settings import Settings, SettingsError
from sandbox.store import Row
from sandbox.world.context import World
from sandbox.world.fields import Field

EVENT_TYPES = (
    "alarm.created",
    "alarm.acknowledged",
    "alarm.dispatched",
    "alarm.resolved",
    "device.online",
    "device.offline",
    "device.firmware_updated",
    "verification.requested",
    "snapshot.created",
    "site.armed",
    "site.disarmed",
)
PROFILES = ("chekt-apps", "legacy-guide", "dealer-v1")
STATUSES = ("enabled", "disabled")


def _events_problem(events: Any) -> str | None:
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        return "must be an array of event type names"
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        return f"has unknown event type {unknown[0]!r}; known types: {', '.join(EVENT_TYPES)}"
    return None


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
) -> dict[str, Any]:
    """``client_id`` None is a sandbox-wide subscription: every event of every dealer."""
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
    }
    world.store.insert("webhooks", row)
    return _public(world, row, with_secret=True)


def get(world: World, client_id: str | None, webhook_id: str) -> dict[str, Any]:
    return _public(world, _row(world, client_id, webhook_id))


def list_for(world: World, client_id: str | None) -> list[dict[str, Any]]:
    rows = world.store.all(
        "SELECT * FROM webhooks WHERE client_id IS ? ORDER BY created_at, webhook_id", (client_id,)
    )
    return [_public(world, row) for row in rows]


def update(
    world: World, client_id: str | None, webhook_id: str, values: dict[str, Any]
) -> dict[str, Any]:
    _row(world, client_id, webhook_id)
    changes = dict(values)
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


def ensure_callback(world: World, settings: Settings) -> None:
    """The sandbox-wide subscription of ``serve --callback URL``, with a stable id."""
    if settings.callback is None:
        return
    policy = DestinationPolicy(
        allow_private=settings.allow_private_destinations, own_port=settings.port
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
