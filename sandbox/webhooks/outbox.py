"""The outbox: events waiting to happen, deliveries waiting to be attempted, and the journal
of every attempt — all in the store, so a crash loses nothing that was acknowledged.

An event becomes due at its ``created_at`` (lifecycle steps are scheduled in the future);
when it is due it fans out into one delivery per matching subscription, each with a body
fixed once and sent byte-identical on every attempt.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sandbox.store import Row
from sandbox.webhooks.chaos import Faults
from sandbox.webhooks.profiles import Happening, render
from sandbox.world import World, catalog, events, formats, subscriptions

# what the delivery journal can be filtered by, and how many attempts one read returns
ATTEMPT_FILTERS = frozenset({"event_id", "webhook_id", "outcome", "delivery_id"})
ATTEMPTS_PAGE = 10_000

# seconds after the previous attempt; the 8th attempt is pinned to exactly 24 h after the 1st
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000)
MAX_ATTEMPTS = 8
WINDOW = 24 * 3600
JITTER = 0.10
FORGED_PREFIX = "dlv_forged_"  # deliveries signed with a wrong secret on purpose


def _named(sub: Row, event: Row, data: dict[str, Any]) -> str | None:
    """What the subscription's profile calls the event, when it sends it and the subscription
    lists it (by catalogue type or by that name)."""
    name = formats.name_in(sub["profile"], event["type"], data)
    if name is None or event["target_webhook_id"] is not None:
        return name
    listed = sub.get("listed") or json.loads(sub["events"])
    return name if subscriptions.matches(listed, sub["profile"], event["type"], name) else None


def enabled_subscriptions(world: World) -> list[Row]:
    """Every enabled subscription, with what its credential may read: a subscription hears
    what the credential that wrote it may read (an API key's own scopes, not its client's);
    rows from before that was recorded fall back to the client's. Read once per batch of
    due events, not once per event."""
    rows = world.store.all(
        "SELECT w.*, c.kind, c.dealer_id AS own_dealer, COALESCE(w.scopes, c.scopes) AS reach "
        "FROM webhooks w LEFT JOIN clients c USING (client_id) WHERE w.status = 'enabled' "
        "ORDER BY w.created_at"
    )
    return [{**row, "listed": json.loads(row["events"])} for row in rows]  # parsed once


def _subscriptions(
    world: World, event: Row, data: dict[str, Any], candidates: Sequence[Row] | None = None
) -> list[tuple[Row, str]]:
    """Each subscription that hears the event, with the name its profile gives it."""
    if event["target_webhook_id"] is not None:
        rows = world.store.all(
            "SELECT * FROM webhooks WHERE webhook_id = ?", (event["target_webhook_id"],)
        )
        return [(row, name) for row in rows if (name := _named(row, event, data))]
    if candidates is None:
        candidates = enabled_subscriptions(world)
    chosen: list[tuple[Row, str]] = []
    for sub in candidates:
        name = _named(sub, event, data)
        if name is None:
            continue
        if sub["client_id"] is not None:
            if not subscriptions.hears((sub["reach"] or "").split(), event["type"]):
                continue
            dealer = event["dealer_id"]
            if sub["own_dealer"] is not None:
                if dealer != sub["own_dealer"]:
                    continue
            elif (
                world.store.scalar(
                    "SELECT 1 FROM connections WHERE client_id = ? AND dealer_id = ?",
                    (sub["client_id"], dealer),
                )
                is None
            ):
                continue
        chosen.append((sub, name))
    return chosen


def fan_out(
    world: World,
    event: Row,
    rng: random.Random | None = None,
    faults: Faults | None = None,
    candidates: Sequence[Row] | None = None,
    into: list[Row] | None = None,
) -> int:
    """Turn a due event into deliveries; returns how many. The webhook ``faults``: a
    ``reorder_window`` holds each delivery back a random part of it, so receivers see events
    out of order; the body knobs (:mod:`sandbox.webhooks.chaos`) shape it or add another.
    ``candidates``: :func:`enabled_subscriptions`, when the caller already read them;
    ``into``: the new rows are added there, for the caller to write (:func:`write`)."""
    reorder_window = faults.reorder_window if faults is not None else 0.0
    if event["type"] not in catalog.EVENTS:
        return 0  # in the record, but CHeKT sends no webhook for it (alarm.escalated)
    data = json.loads(event["data"])
    happening = Happening(world, event, data)
    count = 0
    for sub, name in _subscriptions(world, event, data, candidates):
        if sub["client_id"] is not None and "dealer_id" in data:
            external = world.store.scalar(
                "SELECT external_dealer_id FROM connections WHERE client_id = ? AND dealer_id = ?",
                (sub["client_id"], data["dealer_id"]),
            )
            data_for_sub = {**data, "external_dealer_id": external}
        else:
            data_for_sub = data
        body = render(sub["profile"], name, happening, data_for_sub, sub["url"])
        if body is None:
            continue
        hold = rng.uniform(0, reorder_window) if rng is not None and reorder_window else 0.0
        due = max(event["created_at"], world.now()) + hold
        if faults is not None and faults.shapes_bodies:
            count += _with_chaos(world, faults, event["event_id"], sub, body, due)
            continue
        new_delivery(world, event["event_id"], sub["webhook_id"], body, due, into=into)
        count += 1
    return count


def _with_chaos(
    world: World, faults: Faults, event_id: str, sub: Row, body: bytes, due: float
) -> int:
    """The delivery, shaped by the chaos knobs, and maybe one of an unknown event type
    (off the record) after it; how many deliveries were made."""
    unknown = faults.unknown(sub["profile"], body)
    shaped, marks = faults.shape(body)
    new_delivery(world, event_id, sub["webhook_id"], shaped, due, ", ".join(marks) or None)
    if unknown is None:
        return 1
    unknown_id, name, unknown_body = unknown
    unknown_body, marks = faults.shape(unknown_body)
    mark = ", ".join([f"unknown_type {name}", *marks])
    new_delivery(world, unknown_id, sub["webhook_id"], unknown_body, due, mark)
    return 2


def new_delivery(
    world: World,
    event_id: str,
    webhook_id: str,
    body: bytes,
    due: float,
    chaos: str | None = None,
    into: list[Row] | None = None,
) -> str:
    """A delivery due at ``due``; ``chaos`` says what webhook chaos made or shaped it.
    Written now, or added to ``into`` for the caller to :func:`write` with others."""
    delivery_id = "dlv_" + secrets.token_hex(8)
    row = {
        "delivery_id": delivery_id,
        "event_id": event_id,
        "webhook_id": webhook_id,
        "body": body,
        "state": "pending",
        "first_at": due,
        "next_at": due,
        "created_at": world.now(),
        "chaos": chaos,
    }
    if into is not None:
        into.append(row)
    else:
        world.store.insert("deliveries", row)
    return delivery_id


def write(world: World, deliveries: Sequence[Row]) -> None:
    """Insert new deliveries (rows of :func:`new_delivery`) in one statement."""
    if deliveries:
        columns = list(deliveries[0])
        world.store.executemany(
            f"INSERT INTO deliveries ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})",
            [tuple(row[c] for c in columns) for row in deliveries],
        )


def emit_due(world: World, rng: random.Random | None = None, faults: Faults | None = None) -> int:
    """Fan out every event whose time has come."""
    now = world.now()
    if (
        world.store.scalar(
            "SELECT 1 FROM events WHERE emitted = 0 AND created_at <= ? LIMIT 1", (now,)
        )
        is None
    ):
        return 0  # the common case, without opening a write transaction
    with world.store.transaction(durable=False):  # made again from the events if undone
        due = world.store.all(
            "SELECT * FROM events WHERE emitted = 0 AND created_at <= ? ORDER BY created_at, rowid",
            (now,),
        )
        candidates = enabled_subscriptions(world)
        made: list[Row] = []
        for event in due:
            if not events.apply_due(world, event):
                continue  # the record refused it when its time came: void
            fan_out(world, event, rng, faults, candidates, made)
        # every row read above, in one statement (nothing else writes in this transaction)
        world.store.execute(
            "UPDATE events SET emitted = 1 WHERE emitted = 0 AND created_at <= ?", (now,)
        )
        write(world, made)
    return len(due)


def claim_due(
    world: World,
    room: Callable[[str], int],
    limit: int,
    full: Sequence[str] = (),
    claimed: Mapping[int, str] | None = None,
) -> list[Row]:
    """Due deliveries, oldest first, at most ``room(webhook_id)`` per subscription, leaving
    out the ``claimed`` (rowid → subscription, in flight). Subscriptions in ``full`` are not
    read, so a backlog of theirs cannot fill the batch and starve others.

    Each subscription's oldest due rows come from its own index range, just as many as it
    has room for, with the claimed rows (in flight, or ended but not yet journaled: up to a
    flush's worth) left out by SQLite; the oldest ``limit`` of those are the batch. The
    claim is the caller's memory, not a write: a restart makes every unfinished attempt due
    again anyway, and a write per claim would cost a commit."""
    claimed = claimed or {}
    now, skip = world.now(), set(full)
    picked: list[Row] = []
    for sub in world.store.all("SELECT webhook_id FROM webhooks"):
        webhook = sub["webhook_id"]
        space = 0 if webhook in skip else min(room(webhook), limit)
        if space > 0:
            held = [rid for rid, owner in claimed.items() if owner == webhook]
            picked += world.store.all(_CLAIM, (webhook, now, json.dumps(held), space))
    picked.sort(key=lambda row: (row["next_at"], row["rid"]))
    return picked[:limit]


_CLAIM = (  # one subscription's oldest due deliveries that are not claimed, ready to send
    "SELECT d.rowid AS rid, d.*, w.url, w.secret, w.profile, w.status AS webhook_status "
    "FROM deliveries d JOIN webhooks w USING (webhook_id) WHERE d.state = 'pending' "
    "AND d.webhook_id = ? AND d.next_at <= ? "
    "AND d.rowid NOT IN (SELECT value FROM json_each(?)) ORDER BY d.next_at, d.rowid LIMIT ?"
)


def next_due(world: World, after: float = float("-inf")) -> float | None:
    """When something next needs doing (after ``after``): an event to fan out or an attempt
    to make."""
    due = world.store.scalar(  # one statement: the dispatcher asks after every wake
        "SELECT MIN(t) FROM (SELECT MIN(created_at) AS t FROM events "
        "WHERE emitted = 0 AND created_at > :after UNION ALL SELECT MIN(next_at) FROM deliveries "
        "WHERE state = 'pending' AND next_at > :after)",
        {"after": after},
    )
    return None if due is None else float(due)


def due_left(world: World, claimed: Mapping[int, str]) -> bool:
    """Whether a delivery is due now that is not ``claimed`` (one held back by its
    subscription's cap)."""
    rows = world.store.all(
        "SELECT d.rowid AS rid FROM deliveries d JOIN webhooks w USING (webhook_id) "
        "WHERE d.state = 'pending' AND d.next_at <= ? LIMIT ?",
        (world.now(), len(claimed) + 1),
    )
    return any(row["rid"] not in claimed for row in rows)


def earliest_retry(delivery: Row, attempt: int) -> float:
    """The earliest time attempt ``attempt`` (due at the delivery's ``next_at``) can
    schedule the next one for, whatever its outcome (jitter and Retry-After only delay)."""
    if attempt >= MAX_ATTEMPTS:
        return float("inf")
    final = float(delivery["first_at"]) + WINDOW
    if attempt == MAX_ATTEMPTS - 1:
        return final
    return min(float(delivery["next_at"]) + RETRY_DELAYS[attempt - 1] * (1 - JITTER), final)


def recover(world: World) -> None:
    """After a crash: attempts that were in flight are simply due again (``sending`` is
    what versions that wrote their claims left behind)."""
    world.store.execute("UPDATE deliveries SET state = 'pending' WHERE state = 'sending'")


def next_attempt_at(
    delivery: Row, attempt: int, rng: random.Random, retry_after: float | None, now: float
) -> float | None:
    """When attempt ``attempt + 1`` is due, or None when ``attempt`` was the last."""
    if attempt >= MAX_ATTEMPTS:
        return None
    final = float(delivery["first_at"]) + WINDOW
    if attempt == MAX_ATTEMPTS - 1:
        planned = final
    else:
        planned = float(delivery["next_at"]) + RETRY_DELAYS[attempt - 1] * rng.uniform(
            1 - JITTER, 1 + JITTER
        )
    if retry_after is not None:
        planned = max(planned, now + retry_after)
    return min(planned, final)


Outcome = tuple[Row, dict[str, Any], str, float | None]  # delivery, attempt, state, next_at


ATTEMPT_COLUMNS = (
    "delivery_id",
    "event_id",
    "webhook_id",
    "attempt",
    "scheduled_at",
    "sent_at",
    "outcome",
    "status_code",
    "request",
    "response",
    "latency_ms",
    "error",
    "next_at",
    "chaos",
)
_INSERT_ATTEMPT = (
    f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(ATTEMPT_COLUMNS))})"
)


def record_attempts(world: World, outcomes: Sequence[Outcome]) -> None:
    """Journal attempts and move their deliveries on, all in one transaction and two
    statements (one commit for a whole batch of concurrent attempts is what lets delivery
    keep up)."""
    journal = []
    moves = []
    ids = [delivery["delivery_id"] for delivery, *_ in outcomes]
    kept = {  # an attempt in flight across a reset: its delivery is gone, and so is it
        row["delivery_id"]
        for row in world.store.all(
            f"SELECT delivery_id FROM deliveries WHERE delivery_id IN ({','.join('?' * len(ids))})",
            ids,
        )
    }
    for delivery, attempt, state, next_at in outcomes:
        if delivery["delivery_id"] not in kept:
            continue
        row = {
            **attempt,
            "delivery_id": delivery["delivery_id"],
            "event_id": delivery["event_id"],
            "webhook_id": delivery["webhook_id"],
            "next_at": next_at,
        }
        journal.append(tuple(row.get(column) for column in ATTEMPT_COLUMNS))
        moves.append((state, attempt["attempt"], next_at, delivery["delivery_id"]))
    with world.store.transaction(durable=False):  # undone, the attempt is made again
        world.store.executemany(_INSERT_ATTEMPT, journal)
        world.store.executemany(
            "UPDATE deliveries SET state = ?, attempts = ?, next_at = ? WHERE delivery_id = ?",
            moves,
        )


def summaries(world: World, event_ids: Sequence[str]) -> list[dict[str, Any]]:
    """``{event_id, type, at}`` of each event, in the order asked, and the ``alarm_id`` it
    is about when it names one (so a caller can follow the alarm it just created)."""
    marks = ",".join("?" * len(event_ids))
    rows = world.store.all(
        "SELECT event_id, type, created_at, json_extract(data, '$.alarm_id') AS alarm_id "
        f"FROM events WHERE event_id IN ({marks})",
        event_ids,
    )
    due = {
        r["event_id"]: {
            "event_id": r["event_id"],
            "type": r["type"],
            "at": r["created_at"],
            **({"alarm_id": r["alarm_id"]} if r["alarm_id"] is not None else {}),
        }
        for r in rows
    }
    return [due[e] for e in event_ids]


def attempts(
    world: World, filters: Mapping[str, str], since_seq: int, limit: int = ATTEMPTS_PAGE
) -> list[Row]:
    """Delivery attempts after ``since_seq``, matching the ``filters`` (column = value)."""
    unknown = set(filters) - ATTEMPT_FILTERS
    assert not unknown, unknown  # the surface checks names; a column name is never user text
    where = " AND ".join([*(f"{name} = ?" for name in filters), "seq > ?"])
    return world.store.all(
        f"SELECT * FROM attempts WHERE {where} ORDER BY seq LIMIT ?",
        [*filters.values(), since_seq, limit],
    )


def forgery(world: World, webhook_id: str) -> dict[str, Any] | None:
    """What a forged delivery to a subscription sends: its latest delivery's body, to its
    URL, under a new ``FORGED_PREFIX`` id and a wrong secret; None when it has none yet."""
    row = world.store.one(
        "SELECT d.event_id, d.body, w.url, w.profile FROM deliveries d JOIN webhooks w "
        "USING (webhook_id) WHERE d.webhook_id = ? ORDER BY d.rowid DESC LIMIT 1",
        (webhook_id,),
    )
    if row is None:
        return None
    return {
        **dict(row),
        "delivery_id": FORGED_PREFIX + secrets.token_hex(8),
        "webhook_id": webhook_id,
        "secret": "whsec_forged_" + secrets.token_urlsafe(24),
        "next_at": world.now(),
    }


def has_event(world: World, event_id: str) -> bool:
    return world.store.scalar("SELECT 1 FROM events WHERE event_id = ?", (event_id,)) is not None


def clear(world: World) -> None:
    """Forget every delivery and attempt, and every event still to come (a reset of the
    deliveries); what happened stays in the record, never to be delivered."""
    with world.store.transaction():
        for table in ("attempts", "deliveries"):
            world.store.execute(f"DELETE FROM {table}")
        world.store.execute("DELETE FROM events WHERE status != 'happened'")
        world.store.execute("UPDATE events SET emitted = 1 WHERE emitted = 0")


def resend(world: World, event_id: str, webhook_ids: Sequence[str] | None = None) -> list[str]:
    """Deliver an event again: same event id, new delivery ids, a fresh schedule."""
    rows = world.store.all(
        "SELECT webhook_id, body, chaos FROM deliveries WHERE event_id = ? GROUP BY webhook_id",
        (event_id,),
    )
    return [
        new_delivery(world, event_id, row["webhook_id"], row["body"], world.now(), row["chaos"])
        for row in rows
        if webhook_ids is None or row["webhook_id"] in webhook_ids
    ]


def recover_failed(world: World, since: float) -> list[str]:
    """Resend every event with a delivery that failed for good since ``since``."""
    events = world.store.all(
        "SELECT DISTINCT d.event_id, d.webhook_id FROM deliveries d JOIN attempts a "
        "USING (delivery_id) WHERE d.state IN ('failed', 'disabled') AND a.sent_at >= ?",
        (since,),
    )
    created: list[str] = []
    for row in events:
        created += resend(world, row["event_id"], [row["webhook_id"]])
    return created


def recent_events(world: World, limit: int) -> list[Row]:
    """The ``limit`` events delivered most recently, newest first, each with its type and
    time (what the dashboard's Deliveries view draws)."""
    return world.store.all(
        "SELECT e.event_id, e.type, e.created_at, MAX(d.rowid) AS latest FROM deliveries d "
        "JOIN events e USING (event_id) GROUP BY d.event_id ORDER BY latest DESC LIMIT ?",
        (limit,),
    )


def deliveries_of(world: World, event_ids: Sequence[str]) -> list[Row]:
    """The deliveries of these events, oldest first."""
    marks = ",".join("?" * len(event_ids))
    return world.store.all(
        "SELECT d.delivery_id, d.event_id, d.webhook_id, d.state, d.attempts, d.first_at, "
        f"d.next_at FROM deliveries d WHERE d.event_id IN ({marks}) ORDER BY d.rowid",
        list(event_ids),
    )


def attempts_of(world: World, delivery_ids: Sequence[str]) -> list[Row]:
    """Every attempt of these deliveries, oldest first."""
    marks = ",".join("?" * len(delivery_ids))
    return world.store.all(
        f"SELECT * FROM attempts WHERE delivery_id IN ({marks}) ORDER BY seq", list(delivery_ids)
    )
