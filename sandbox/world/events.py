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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


class Journal:
    """Happenings logged together inside the caller's transaction (a random or repeated
    emit of thousands): each is applied to the record at once and in order, but their event
    and audit rows wait for :meth:`write` (one statement each for the whole batch) and their
    seqs come from one reservation. Nothing between reads the event log. No savepoint per
    happening: a refused one fails the batch, and the caller's transaction undoes it all."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.events: list[Row] = []
        self.audit: list[Row] = []
        self._first: int | None = None  # the first seq this batch took (the store's)
        self._seq: int | None = None  # the last

    def seq(self) -> int:
        """The next seq: the store hands out the first (and keeps it), the rest follow."""
        if self._seq is None:
            self._first = self._seq = _next_seq(self.world)
        else:
            self._seq += 1
        return self._seq

    def write(self) -> None:
        """Insert the batch's rows, in the order they were logged, and keep its last seq."""
        store = self.world.store
        for table, rows in (("events", self.events), ("audit", self.audit)):
            if rows:
                columns = list(rows[0])
                store.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join(':' + c for c in columns)})",
                    rows,
                )
        if self._seq != self._first:
            store.set_meta(_SEQ_META, str(self._seq))
        self.events, self.audit, self._first, self._seq = [], [], None, None


@contextmanager
def batch(world: World) -> Iterator[Journal]:
    """A :class:`Journal` in a transaction of its own, written when the block ends; a
    failure anywhere in the block undoes the whole batch."""
    with world.store.transaction():
        journal = Journal(world)
        yield journal
        journal.write()


def log(
    world: World,
    event_type: str,
    data: dict[str, Any],
    *,
    actor: Actor,
    at: float | None = None,
    history: str | None = None,
    journal: Journal | None = None,
) -> str:
    """Log a happening; applied now when due now, else when its time comes. ``history``
    (the seeded past, given its event id) is applied at once and never delivered.
    ``journal``: one of a batch, whose rows the caller writes (:class:`Journal`)."""
    now = world.now() if history is None else float("inf")
    at = now if at is None else at
    event_id = history or new_event_id()
    if at > now:
        row = _row(event_id, event_type, data, at, actor, "scheduled", None)
        if journal is None:
            world.store.insert("events", row)
        else:
            journal.events.append(row)
        return event_id
    if journal is None:
        with batch(world) as single:
            log(world, event_type, data, actor=actor, at=at, history=history, journal=single)
        return event_id
    APPLY[event_type](world, event_type, data, at)
    journal.events.append(
        _row(
            event_id,
            event_type,
            data,
            at,
            actor,
            "happened",
            journal.seq(),
            emitted=int(bool(history)),
        )
    )
    journal.audit.append(
        audit.entry(
            world,
            actor,
            event_type,
            target(event_type, data),
            dealer_id=data.get("dealer_id"),
            event_id=event_id,
            at=at,
        )
    )
    return event_id


def _row(
    event_id: str,
    event_type: str,
    data: dict[str, Any],
    at: float,
    actor: Actor,
    status: str,
    seq: int | None,
    emitted: int = 0,
    target_webhook_id: str | None = None,
) -> Row:
    """An ``events`` row."""
    return {
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
    }


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
    world.store.insert(
        "events",
        _row(
            event_id,
            event_type,
            data,
            when,
            SANDBOX,
            "off_record",
            None,
            target_webhook_id=target_webhook_id,
        ),
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
            APPLY[event["type"]](world, event["type"], data, event["created_at"])
            seq = _next_seq(world)
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
