"""The event log: every happening in the record, in the order it happened.

A happening is logged by :func:`log` and applied to the record (an alarm moves, a partition
arms, a device goes offline) in the same transaction, with its audit entry; a refused
happening (acknowledging a resolved alarm) raises and leaves nothing behind. A happening
planned for later (a lifecycle's next step) waits as ``scheduled`` and is applied by
:func:`apply_due` when its time comes, or ``void`` if the record no longer allows it.

Each happening gets two ids from the one row: ``evt_…`` (chekt-apps webhooks, ``/v1``) and an
increasing integer ``seq`` (the dealer API, dealer-v1 webhooks). Test pings and adversarial
deliveries are ``off_record``: delivered, never part of the record. The outbox fans out every
logged row that is not scheduled or void.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from sandbox.errors import ApiError
from sandbox.store import Row
from sandbox.world import alarms, arming, audit, device_status, snapshots
from sandbox.world.audit import SANDBOX, Actor
from sandbox.world.context import World

Apply = Callable[[World, str, dict[str, Any], float], None]
APPLY: dict[str, Apply] = {
    "alarm.created": lambda world, kind, data, at: alarms.create(world, data, at),
    **{kind: alarms.move for kind in (*alarms.MOVES, *alarms.MENTIONS)},
    "snapshot.created": lambda world, kind, data, at: snapshots.record(world, data, at),
    "device.online": device_status.apply,
    "device.offline": device_status.apply,
    "device.firmware_updated": device_status.apply,
    "site.armed": arming.apply,
    "site.disarmed": arming.apply,
}
_SEQ_META = "event_seq"  # the last seq handed out, kept across resets


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(8)


def _next_seq(world: World) -> int:
    """One more than any seq this store ever handed out, so a receiver that dedupes on the
    numeric id never mistakes a new world's event for an old one (one statement: it is paid
    by every happening)."""
    cursor = world.store.execute(
        "INSERT INTO meta (key, value) VALUES (:key, 1 + MAX("
        "IFNULL((SELECT MAX(seq) FROM events), 0), "
        "IFNULL((SELECT CAST(value AS INTEGER) FROM meta WHERE key = :key), 0))) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value RETURNING value",
        {"key": _SEQ_META},
    )
    (row,) = cursor.fetchall()  # to the end: no statement is left running
    return int(row["value"])


def target(event_type: str, data: dict[str, Any]) -> str:
    """What a happening is about, as the audit log names it."""
    if data.get("alarm_id") and event_type != "snapshot.created":
        return f"alarm {data['alarm_id']}"
    if data.get("snapshot_id"):
        return f"snapshot {data['snapshot_id']}"
    if data.get("device_id") and event_type.startswith("device."):
        return f"device {data['device_id']}"
    partition = f" partition {data['partition']}" if "partition" in data else ""
    return f"site {data.get('site_id')}{partition}"


def _happen(world: World, event_type: str, data: dict[str, Any], at: float, actor: Actor) -> int:
    APPLY[event_type](world, event_type, data, at)
    return _next_seq(world)


def log(
    world: World,
    event_type: str,
    data: dict[str, Any],
    *,
    actor: Actor,
    at: float | None = None,
    history: str | None = None,
) -> str:
    """Log a happening; applied now when due now, else when its time comes. ``history``
    (the seeded past, given its event id) is applied at once and never delivered."""
    now = world.now() if history is None else float("inf")
    at = now if at is None else at
    event_id = history or new_event_id()
    if at <= now:
        with world.store.transaction():
            seq = _happen(world, event_type, data, at, actor)
            _insert(
                world,
                event_id,
                event_type,
                data,
                at,
                actor,
                "happened",
                seq,
                emitted=int(bool(history)),
            )
            audit.write(
                world,
                actor,
                event_type,
                target(event_type, data),
                dealer_id=data.get("dealer_id"),
                event_id=event_id,
                at=at,
            )
        return event_id
    _insert(world, event_id, event_type, data, at, actor, "scheduled", None)
    return event_id


def _insert(
    world: World,
    event_id: str,
    event_type: str,
    data: dict[str, Any],
    at: float,
    actor: Actor,
    status: str,
    seq: int | None,
    emitted: int = 0,
    target_webhook_id: str | None = None,
) -> None:
    world.store.insert(
        "events",
        {
            "event_id": event_id,
            "type": event_type,
            "dealer_id": data.get("dealer_id"),
            "data": json.dumps(data),
            "created_at": at,
            "status": status,
            "seq": seq,
            "actor": actor.dumps(),
            "emitted": emitted,
            "target_webhook_id": target_webhook_id,
        },
    )


def off_record(
    world: World,
    event_type: str,
    data: dict[str, Any],
    at: float | None = None,
    target_webhook_id: str | None = None,
) -> str:
    """A delivery that is not a happening: a subscription's test ping, or an adversarial
    payload a partner asked for on purpose."""
    event_id = new_event_id()
    when = world.now() if at is None else at
    _insert(
        world,
        event_id,
        event_type,
        data,
        when,
        SANDBOX,
        "off_record",
        None,
        target_webhook_id=target_webhook_id,
    )
    return event_id


def apply_due(world: World, event: Row) -> bool:
    """Apply a scheduled happening whose time has come; False when the record refuses it
    (then it is void: never listed, never delivered)."""
    if event["status"] != "scheduled":
        return bool(event["status"] != "void")
    data, actor = json.loads(event["data"]), Actor.loads(event["actor"])
    try:
        with world.store.transaction():
            seq = _happen(world, event["type"], data, event["created_at"], actor)
            world.store.execute(
                "UPDATE events SET status = 'happened', seq = ? WHERE event_id = ?",
                (seq, event["event_id"]),
            )
            audit.write(
                world,
                actor,
                event["type"],
                target(event["type"], data),
                dealer_id=data.get("dealer_id"),
                event_id=event["event_id"],
                at=event["created_at"],
            )
        return True
    except ApiError as refused:
        world.store.execute(
            "UPDATE events SET status = 'void', emitted = 1 WHERE event_id = ?",
            (event["event_id"],),
        )
        audit.write(
            world,
            actor,
            f"{event['type']} (void: {refused.message})",
            target(event["type"], data),
            dealer_id=data.get("dealer_id"),
            event_id=event["event_id"],
            at=event["created_at"],
        )
        return False


def envelope(world: World, row: Row) -> dict[str, Any]:
    """A happening as ``/v1/events`` shows it: the chekt-apps webhook envelope, plus its
    numeric id."""
    return {
        "id": row["event_id"],
        "event_id": row["seq"],
        "type": row["type"],
        "created_at": world.stamp(row["created_at"]),
        "data": alarms.links(world, row["type"], json.loads(row["data"])),
    }


def happened(
    world: World,
    dealer_id: int,
    after_seq: int,
    limit: int,
    types: tuple[str, ...],
    since: float | None = None,
) -> list[Row]:
    """The dealer's happenings of ``types`` after ``after_seq``, in order."""
    marks = ",".join("?" * len(types))
    sql = (
        "SELECT * FROM events WHERE dealer_id = ? AND status = 'happened' AND seq > ? "
        f"AND type IN ({marks})"
    )
    params: list[Any] = [dealer_id, after_seq, *types]
    if since is not None:
        sql += " AND created_at >= ?"
        params.append(since)
    return world.store.all(sql + " ORDER BY seq LIMIT ?", (*params, limit))
