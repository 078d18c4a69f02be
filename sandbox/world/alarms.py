"""Alarms in the record and the one state machine every surface goes through.

``created → acknowledged → dispatched → resolved``; ``escalated`` from created or
acknowledged (and dispatched or resolved from there); annotations any time before resolved.
A resolved alarm is history: nothing moves it again. Each move is applied by
:func:`apply`, which the event log calls for every alarm happening, so an alarm moved through
``/v1``, the control API or a scheduled lifecycle step is moved by the same rule.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from sandbox.errors import Conflict, NotFound, ValidationFailed
from sandbox.store import Row
from sandbox.world import linked, media, snapshots
from sandbox.world.context import World

STATES = ("created", "acknowledged", "escalated", "dispatched", "resolved")
OPEN_STATES = STATES[:-1]
# the happening, the state it leads to, and the states it may leave from
MOVES: dict[str, tuple[str, tuple[str, ...]]] = {
    "alarm.acknowledged": ("acknowledged", ("created",)),
    "alarm.escalated": ("escalated", ("created", "acknowledged")),
    "alarm.dispatched": ("dispatched", ("acknowledged", "escalated")),
    "alarm.resolved": ("resolved", ("created", "acknowledged", "escalated", "dispatched")),
}
# happenings that name an alarm without moving it: it must exist and still be open
MENTIONS = ("verification.requested",)
STAMPED = {"acknowledged", "escalated", "dispatched", "resolved"}  # each has a ``<state>_at``
VERDICTS = ("intruder", "false-positive", "uncertain")
FIRST_NUMBER = 10001
# what goes where a link does: the link itself (view), or a slot to fill per request (page)
Linker = Callable[[str | None, dict[str, Any] | None, str], Any]


class InvalidTransition(Conflict):
    code = "invalid_transition"


def find(world: World, alarm_id: str, dealer_id: int | None = None) -> Row:
    """The alarm, within ``dealer_id``'s reach when given (out of reach answers as absent)."""
    # remembered within a transaction: a batch checks a move before it applies it
    rows = world.store.remembered(
        "SELECT * FROM alarms WHERE alarm_id = ?", (alarm_id,), {"alarms": None}
    )
    row = dict(rows[0]) if rows else None
    if row is None or (dealer_id is not None and row["dealer_id"] != dealer_id):
        raise NotFound(f"alarm {alarm_id} was not found", code="alarm_not_found")
    return row


def allowed_from(event_type: str) -> tuple[str, ...]:
    return MOVES[event_type][1] if event_type in MOVES else OPEN_STATES


def can(state: str, event_type: str) -> bool:
    return state in allowed_from(event_type)


def check(alarm: Row, event_type: str) -> None:
    """409 ``invalid_transition``, naming the state, unless the alarm can take the move."""
    if not can(alarm["state"], event_type):
        raise InvalidTransition(
            f"alarm {alarm['alarm_id']} is {alarm['state']}; {event_type} needs it "
            f"{' or '.join(allowed_from(event_type))}",
            field="state",
        )


def pick(
    world: World, rng: random.Random, event_type: str, site_id: int | None = None
) -> Row | None:
    """An alarm that may take ``event_type`` now (at ``site_id`` when given), drawn from the
    most recent ones."""
    allowed = allowed_from(event_type)
    marks = ",".join("?" * len(allowed))
    rows = world.store.all(
        f"SELECT * FROM alarms WHERE state IN ({marks})"
        + (" AND site_id = ?" if site_id is not None else "")
        + " ORDER BY number DESC LIMIT 20",
        (*allowed, *([site_id] if site_id is not None else [])),
    )
    return rng.choice(rows) if rows else None


def create(world: World, data: dict[str, Any], at: float) -> None:
    """An ``alarm.created`` happening: the alarm (and its snapshot) join the record."""
    alarm_id = data.get("alarm_id")
    if not isinstance(alarm_id, str) or not 1 <= len(alarm_id) <= 64:
        raise ValidationFailed("data.alarm_id", "alarm_id must be a string of 1 to 64 characters")
    if world.store.scalar("SELECT 1 FROM alarms WHERE alarm_id = ?", (alarm_id,)) is not None:
        raise Conflict(f"alarm {alarm_id} already exists; alarm ids are unique")
    number = int(
        world.store.scalar("SELECT COALESCE(MAX(number), ?) FROM alarms", (FIRST_NUMBER - 1,))
    )
    snapshot_id = f"snap_{alarm_id}"
    world.store.insert(
        "alarms",
        {
            "alarm_id": alarm_id,
            "number": number + 1,
            "dealer_id": data["dealer_id"],
            "site_id": data["site_id"],
            "external_site_id": data.get("external_site_id"),
            "device_id": data.get("device_id"),
            "external_device_id": data.get("external_device_id"),
            "zone_number": data.get("zone_number"),
            "priority": data.get("priority") or "MEDIUM",
            "trigger": data.get("trigger") or "custom",
            "location": data.get("location"),
            "contact_id_code": data.get("contact_id_code"),
            "state": "created",
            "snapshot_id": snapshot_id if data.get("device_id") else None,
            "snapshot_url": data.get("snapshot_url"),
            "clip_url": data.get("clip_url"),
            "created_at": at,
            "updated_at": at,
        },
    )
    if data.get("device_id"):
        snapshots.record(
            world,
            {**data, "snapshot_id": snapshot_id, "url": data.get("snapshot_url")},
            at,
        )


def move(world: World, event_type: str, data: dict[str, Any], at: float) -> None:
    """Apply one move (or check a mention) named by ``event_type`` to ``data['alarm_id']``."""
    alarm = find(world, str(data.get("alarm_id")))
    check(alarm, event_type)
    if event_type not in MOVES:
        return
    state = MOVES[event_type][0]
    changes: dict[str, Any] = {"state": state, "updated_at": at, f"{state}_at": at}
    if state == "acknowledged":
        changes |= {"operator_id": data.get("operator_id"), "reason": data.get("reason")}
    elif state == "escalated":
        changes["escalation_reason"] = data.get("reason")
    elif state == "dispatched":
        keys = ("responder_id", "responder_type", "eta_seconds", "tracking_url")
        changes["responder"] = json.dumps({k: data.get(k) for k in keys})
    else:
        changes |= {"resolution": data.get("resolution"), "notes": data.get("notes")}
    sets = ", ".join(f"{name} = ?" for name in changes)
    world.store.execute(
        f"UPDATE alarms SET {sets} WHERE alarm_id = ?", (*changes.values(), alarm["alarm_id"])
    )


def annotate(
    world: World, alarm_id: str, dealer_id: int, values: dict[str, Any], author: str
) -> Row:
    alarm = find(world, alarm_id, dealer_id)
    if alarm["state"] == "resolved":
        raise InvalidTransition(
            f"alarm {alarm_id} is resolved; a resolved alarm is history and takes no annotations",
            field="state",
        )
    now = world.now()
    world.store.insert(
        "annotations",
        {
            "alarm_id": alarm_id,
            "source": values["source"],
            "verdict": values["verdict"],
            "confidence": values.get("confidence"),
            "note": values.get("note"),
            "author": author,
            "created_at": now,
        },
    )
    world.store.execute("UPDATE alarms SET updated_at = ? WHERE alarm_id = ?", (now, alarm_id))
    return alarm


_SELECT = (
    "SELECT a.*, s.claims AS media FROM alarms a "
    "LEFT JOIN snapshots s ON s.snapshot_id = a.snapshot_id"
)


def _annotations(world: World, alarm_ids: list[str]) -> dict[str, list[Row]]:
    found: dict[str, list[Row]] = {alarm_id: [] for alarm_id in alarm_ids}
    if not alarm_ids:
        return found
    marks = ",".join("?" * len(alarm_ids))
    for note in world.store.all(
        "SELECT alarm_id, source, verdict, confidence, note, author, created_at "
        f"FROM annotations WHERE alarm_id IN ({marks}) ORDER BY annotation_id",
        alarm_ids,
    ):
        alarm_id = note.pop("alarm_id")
        found[alarm_id].append({**note, "created_at": world.stamp(note["created_at"])})
    return found


def get(world: World, alarm_id: str, dealer_id: int | None = None) -> dict[str, Any]:
    find(world, alarm_id, dealer_id)
    row = world.store.one(f"{_SELECT} WHERE a.alarm_id = ?", (alarm_id,))
    assert row is not None
    return view(world, row, _annotations(world, [alarm_id])[alarm_id])


def view(world: World, row: Row, annotations: list[Row]) -> dict[str, Any]:
    """An alarm as ``/v1`` and the control API show it: the ids its webhooks carried, its
    state with the time of each step, and links that work now."""
    return _view(world, row, annotations, lambda url, claims, ext: _link(world, url, claims, ext))


def _view(world: World, row: Row, annotations: list[Row], link: Linker) -> dict[str, Any]:
    shows = json.loads(row["media"]) if row["media"] else None
    responder = json.loads(row["responder"]) if row["responder"] else None
    if responder:
        url = responder.get("tracking_url")
        responder["tracking_url"] = link(url, _tracking_claims(world, row, url), "")
    stamp = world.stamp
    return {
        "alarm_id": row["alarm_id"],
        "dealer_id": row["dealer_id"],
        "site_id": row["site_id"],
        "external_site_id": row["external_site_id"],
        "device_id": row["device_id"],
        "external_device_id": row["external_device_id"],
        "zone_number": row["zone_number"],
        "state": row["state"],
        "priority": row["priority"],
        "trigger": row["trigger"],
        "location": row["location"],
        "contact_id_code": row["contact_id_code"],
        "snapshot_id": row["snapshot_id"],
        "snapshot_url": link(row["snapshot_url"], shows, "jpg"),
        "clip_url": link(row["clip_url"], shows and {**shows, "kind": "clip"}, "mp4"),
        "operator_id": row["operator_id"],
        "reason": row["reason"],
        "escalation_reason": row["escalation_reason"],
        "responder": responder,
        "resolution": row["resolution"],
        "notes": row["notes"],
        "annotations": annotations,
        "created_at": stamp(row["created_at"]),
        "updated_at": stamp(row["updated_at"]),
        **{f"{s}_at": stamp(row[f"{s}_at"]) if row[f"{s}_at"] else None for s in sorted(STAMPED)},
    }


def tracking_link(world: World, row: Row, url: str | None) -> str | None:
    """A working link to the responder's progress (a new one once the old has expired)."""
    found: str | None = _link(world, url, _tracking_claims(world, row, url), "")
    return found


def _tracking_claims(world: World, row: Row, url: str | None) -> dict[str, Any] | None:
    """What a dispatched alarm's tracking link shows (None before a dispatch)."""
    if not row["responder"] or row["dispatched_at"] is None:
        return None
    responder = json.loads(row["responder"])
    return media.claims_in(world.store, url) or media.tracking_claims(
        row["alarm_id"], row["site_id"], responder, row["dispatched_at"]
    )


def links(world: World, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The links of a logged happening's data, made to work now: the record hands out a new
    link once the one the webhook carried has expired (and for the seeded past)."""
    alarm_id = data.get("alarm_id")
    if event_type == "snapshot.created":
        row = world.store.one(
            "SELECT claims FROM snapshots WHERE snapshot_id = ?", (data.get("snapshot_id"),)
        )
        if row is None:
            return data
        claims = json.loads(row["claims"])
        return {**data, "url": snapshots.fresh_link(world, data.get("url"), claims, "jpg")}
    if event_type not in ("alarm.created", "alarm.dispatched") or not isinstance(alarm_id, str):
        return data
    row = world.store.one(f"{_SELECT} WHERE a.alarm_id = ?", (alarm_id,))
    if row is None:
        return data
    if event_type == "alarm.dispatched":
        return {**data, "tracking_url": tracking_link(world, row, data.get("tracking_url"))}
    shows = json.loads(row["media"]) if row["media"] else None
    clip = shows and {**shows, "kind": "clip"}
    return {
        **data,
        "snapshot_url": _link(world, data.get("snapshot_url"), shows, "jpg"),
        "clip_url": _link(world, data.get("clip_url"), clip, "mp4"),
    }


def _link(world: World, url: str | None, claims: dict[str, Any] | None, extension: str) -> Any:
    if claims is None:
        return url
    return snapshots.fresh_link(world, url, claims, extension)


ALARM_FILTERS = {"state": str, "site_id": int, "priority": str, "device_id": int, "dealer_id": int}


def _listed(
    world: World, dealer_id: int | None, filters: dict[str, Any], limit: int, offset: int
) -> tuple[list[Row], dict[str, list[Row]], int]:
    """Rows, their annotations and the total; a ``dealer_id`` filter narrows within the
    reach of ``dealer_id`` (another dealer's alarms answer as absent), never widens it."""
    assert set(filters) <= set(ALARM_FILTERS), filters  # names are checked by the surfaces
    reach = [] if dealer_id is None else [("dealer_id", dealer_id)]
    conditions = [*reach, *filters.items()]
    where = " AND ".join(["1 = 1", *(f"a.{name} = ?" for name, _ in conditions)])
    params = [value for _, value in conditions]
    total = int(world.store.cached_scalar(f"SELECT COUNT(*) FROM alarms a WHERE {where}", params))
    rows = world.store.cached_all(
        f"{_SELECT} WHERE {where} ORDER BY a.number DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    return rows, _annotations(world, [row["alarm_id"] for row in rows]), total


def listing(
    world: World, dealer_id: int | None, filters: dict[str, Any], limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The dealer's alarms (every dealer's: None), newest first."""
    rows, notes, total = _listed(world, dealer_id, filters, limit, offset)
    return [view(world, row, notes[row["alarm_id"]]) for row in rows], total


def page(
    world: World, dealer_id: int | None, filters: dict[str, Any], limit: int, offset: int
) -> tuple[linked.Body, int]:
    """:func:`listing` as JSON to finish per request: ``body.render(world.now())`` is the
    JSON of ``listing(...)`` at that moment, while the data stay as they are (polling a
    list is the hot path: its rows, views and JSON are made once)."""
    rows, notes, total = _listed(world, dealer_id, filters, limit, offset)
    items = [_view(world, row, notes[row["alarm_id"]], _slot) for row in rows]
    key, lifetime = media.secret(world.store), media.lifetime(world.store)
    return linked.Body(items, key, world.base_url, lifetime), total


def _slot(url: str | None, claims: dict[str, Any] | None, extension: str) -> Any:
    return url if claims is None else linked.Slot(url, claims, extension)
