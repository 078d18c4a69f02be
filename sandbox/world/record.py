"""What surfaces ask of the record: emit a happening (from the control API, a lifecycle, a
random run) and the ``/v1`` commands (acknowledge, escalate, dispatch, resolve, annotate,
arm, change a device, take a snapshot). Each builds the happening's data from the catalogue
and logs it, so the record, the audit log and the webhooks move together."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from sandbox.errors import Conflict, ValidationFailed
from sandbox.world import (
    alarms,
    arming,
    audit,
    catalog,
    device_status,
    events,
    inbound,
    snapshots,
)
from sandbox.world.audit import Actor
from sandbox.world.context import World

ALARM_NUMBER = "alarm_number"  # meta: the last alarm number handed out (scheduled ones too)
# happenings that act on an existing alarm, which is picked when the caller names none
# (alarm.escalated is not among them: nothing emits it, CHeKT has no webhook for it)
ON_ALARM = tuple(t for t in (*alarms.MOVES, *alarms.MENTIONS) if t in catalog.EVENTS)


def new_alarm_id(world: World) -> str:
    """The next ``A-…`` id: after every alarm that exists or is scheduled to exist, and
    past any a caller named itself (an ``alarm.created`` may bring its own ``alarm_id``)."""
    last = max(
        int(world.store.scalar("SELECT MAX(number) FROM alarms") or alarms.FIRST_NUMBER - 1),
        int(world.store.get_meta(ALARM_NUMBER) or 0),
    )
    taken = "SELECT 1 FROM alarms WHERE alarm_id = ?"
    while world.store.scalar(taken, (f"A-{last + 1}",)) is not None:
        last += 1
    world.store.set_meta(ALARM_NUMBER, str(last + 1))
    return f"A-{last + 1}"


def _prepare(
    world: World, rng: random.Random, event_type: str, overrides: dict[str, Any], now: bool
) -> dict[str, Any]:
    """Fill in which alarm a happening is about: a new id for ``alarm.created``; for a move,
    the alarm named (checked now, when the move is due now) or one that can take it."""
    if event_type == "alarm.created" and not overrides.get("alarm_id"):
        return {**overrides, "alarm_id": new_alarm_id(world)}
    if event_type not in ON_ALARM:
        return overrides
    alarm_id = overrides.get("alarm_id")
    if alarm_id is not None:
        if not now:
            return overrides
        named = alarms.find(world, str(alarm_id))
        alarms.check(named, event_type)
        return {**overrides, "site_id": named["site_id"]}
    row = alarms.pick(world, rng, event_type, overrides.get("site_id"))
    if row is None:
        where = f" at site {overrides['site_id']}" if overrides.get("site_id") else ""
        raise Conflict(
            f"no alarm{where} can take {event_type} now: emit alarm.created first, or name "
            'one with data.alarm_id (send "adversarial": true for a payload about no alarm)',
            code="no_alarm",
        )
    return {**overrides, "alarm_id": row["alarm_id"], "site_id": row["site_id"]}


def emit(
    world: World,
    rng: random.Random,
    event_type: str,
    overrides: dict[str, Any],
    *,
    actor: Actor,
    at: float | None = None,
    adversarial: bool = False,
    journal: events.Journal | None = None,
) -> str:
    """One happening of ``event_type``, drawn from the catalogue with ``overrides``.
    ``adversarial`` delivers the payload as drawn and leaves the record alone. ``journal``:
    one of a batch, inside the caller's transaction (:func:`emit_all`)."""
    when = world.now() if at is None else at
    if adversarial:
        data = catalog.build(world, rng, event_type, overrides, world.base_url, when)
        return events.off_record(world, event_type, data, when)
    if journal is not None:
        overrides = _prepare(world, rng, event_type, overrides, when <= world.now())
        data = catalog.build(world, rng, event_type, overrides, world.base_url, when)
        return events.log(world, event_type, data, actor=actor, at=when, journal=journal)
    with events.batch(world) as single:
        return emit(world, rng, event_type, overrides, actor=actor, at=when, journal=single)


def emit_all(
    world: World,
    rng: random.Random,
    planned: Sequence[tuple[str, dict[str, Any]]],
    *,
    actor: Actor,
    rate: float | None = None,
    adversarial: bool = False,
) -> list[str]:
    """Many happenings (type and overrides each), ``rate`` per second on the clock from now
    (all now when None), in one transaction: all of them or none. Their event and audit rows
    are written together (:class:`events.Journal`)."""
    start = world.now()
    with events.batch(world) as journal:
        return [
            emit(
                world,
                rng,
                event_type,
                overrides,
                actor=actor,
                at=start + (i / rate if rate else 0),
                adversarial=adversarial,
                journal=journal,
            )
            for i, (event_type, overrides) in enumerate(planned)
        ]


def lifecycle(
    world: World, rng: random.Random, overrides: dict[str, Any], variant: str, actor: Actor
) -> list[str]:
    """created now, then acknowledged (~40 s), dispatched (~90 s) and resolved (~6 min) on
    the clock, each applied when due (and dropped if the alarm was moved another way first).
    ``false-positive`` skips the dispatch; ``escalated`` resolves as escalated."""
    start = world.now()
    with world.store.transaction():
        overrides = {**overrides, "alarm_id": overrides.get("alarm_id") or new_alarm_id(world)}
        ids = [emit(world, rng, "alarm.created", overrides, actor=actor)]
        alarm = alarms.find(world, overrides["alarm_id"])
        operator = Actor("operator", "op_sandbox", "schedule", "the simulated operator")
        for event_type, offset in catalog.LIFECYCLE:
            if event_type == "alarm.dispatched" and variant == "false-positive":
                continue
            extra = {"resolution": variant} if event_type == "alarm.resolved" else {}
            step = {"alarm_id": alarm["alarm_id"], "site_id": alarm["site_id"], **extra}
            ids.append(emit(world, rng, event_type, step, actor=operator, at=start + offset))
    return ids


def plan_random(
    world: World, rng: random.Random, count: int, types: Sequence[str]
) -> list[tuple[str, dict[str, Any]]]:
    """``count`` happenings drawn from ``types`` that the record will accept in order: a move
    goes to an alarm that can take it by then (or becomes a new alarm when none can)."""
    planned: dict[str, tuple[str, int]] = {
        row["alarm_id"]: (row["state"], row["site_id"])
        for row in world.store.all(
            "SELECT alarm_id, state, site_id FROM alarms WHERE state != 'resolved' "
            "ORDER BY number DESC LIMIT 50"
        )
    }
    in_state: dict[str, set[str]] = {state: set() for state in alarms.STATES}
    for alarm_id, (state, _) in planned.items():
        in_state[state].add(alarm_id)
    plan: list[tuple[str, dict[str, Any]]] = []
    for _ in range(count):
        event_type = rng.choice(list(types))
        overrides: dict[str, Any] = {}
        if event_type in ON_ALARM:
            ready = sorted(a for s in alarms.allowed_from(event_type) for a in in_state[s])
            if ready:
                alarm_id = rng.choice(ready)
                state, site_id = planned[alarm_id]
                overrides = {"alarm_id": alarm_id, "site_id": site_id}
                if event_type in alarms.MOVES:
                    moved = alarms.MOVES[event_type][0]
                    planned[alarm_id] = (moved, site_id)
                    in_state[state].discard(alarm_id)
                    in_state[moved].add(alarm_id)
            else:
                event_type = "alarm.created"
        if event_type == "alarm.created":
            site = catalog.pick_site(world, rng, None, event_type)["site_id"]
            overrides = {"alarm_id": new_alarm_id(world), "site_id": site}
            planned[overrides["alarm_id"]] = ("created", site)
            in_state["created"].add(overrides["alarm_id"])
        plan.append((event_type, overrides))
    return plan


# ---- /v1 commands ----------------------------------------------------------------------------


def _on_alarm(
    world: World,
    alarm_id: str,
    dealer_id: int,
    event_type: str,
    fields: dict[str, Any],
    actor: Actor,
) -> dict[str, Any]:
    with world.store.transaction():
        alarm = alarms.find(world, alarm_id, dealer_id)
        alarms.check(alarm, event_type)
        given = {k: v for k, v in fields.items() if v is not None}
        overrides = {"alarm_id": alarm_id, "site_id": alarm["site_id"], **given}
        if event_type in catalog.EVENTS:
            data = catalog.build(world, random.Random(), event_type, overrides, world.base_url)
        else:  # alarm.escalated: in the record, but CHeKT has no webhook for it
            data = {
                "alarm_id": alarm_id,
                "dealer_id": alarm["dealer_id"],
                "site_id": alarm["site_id"],
                "external_site_id": alarm["external_site_id"],
                "reason": fields.get("reason"),
            }
        events.log(world, event_type, data, actor=actor)
        return alarms.get(world, alarm_id)


def acknowledge(
    world: World, alarm_id: str, dealer_id: int, actor: Actor, values: dict[str, Any]
) -> dict[str, Any]:
    fields = {"operator_id": values.get("operator_id") or actor.id, "reason": values.get("reason")}
    return _on_alarm(world, alarm_id, dealer_id, "alarm.acknowledged", fields, actor)


Command = Callable[[World, str, int, Actor, dict[str, Any]], dict[str, Any]]


def _move(event_type: str) -> Command:
    """The command that applies one alarm move with the caller's fields."""

    def command(
        world: World, alarm_id: str, dealer_id: int, actor: Actor, values: dict[str, Any]
    ) -> dict[str, Any]:
        return _on_alarm(world, alarm_id, dealer_id, event_type, values, actor)

    return command


escalate = _move("alarm.escalated")
dispatch = _move("alarm.dispatched")
resolve = _move("alarm.resolved")


def annotate(
    world: World, alarm_id: str, dealer_id: int, actor: Actor, values: dict[str, Any]
) -> dict[str, Any]:
    with world.store.transaction():
        alarm = alarms.annotate(world, alarm_id, dealer_id, values, actor.name or actor.id)
        audit.write(
            world, actor, "alarm.annotated", f"alarm {alarm_id}", dealer_id=alarm["dealer_id"]
        )
        return alarms.get(world, alarm_id)


def arm(
    world: World,
    site: dict[str, Any],
    actor: Actor,
    values: dict[str, Any],
    field: str = "partition",
) -> list[str]:
    """Set a partition, a list of them, or ``all`` to ``state``: one site.armed /
    site.disarmed happening per partition, each marked ``whole_site`` when every partition
    was asked for. An unknown partition is a 422 on ``field``."""
    numbers = [row["partition"] for row in arming.partitions(world, site["site_id"])] or [1]
    partition = values.get("partition", "all")
    chosen = (
        numbers
        if partition == "all"
        else list(partition)
        if isinstance(partition, list)
        else [partition]
    )
    unknown = [p for p in chosen if p not in numbers]
    if unknown:
        raise ValidationFailed(
            field,
            f"site {site['site_id']} has no partition {', '.join(map(str, unknown))} "
            f"(its partitions: {', '.join(map(str, numbers))})",
        )
    state = values["state"]
    event_type = "site.disarmed" if state == "disarmed" else "site.armed"
    overrides = {
        "site_id": site["site_id"],
        "state": state,
        "user_id": values.get("user_id") or actor.id,
        "source": values.get("source") or "app",
        "whole_site": chosen == numbers,
    }
    with world.store.transaction():
        return [
            events.log(
                world,
                event_type,
                catalog.build(
                    world,
                    random.Random(),
                    event_type,
                    {**overrides, "partition": number},
                    world.base_url,
                ),
                actor=actor,
            )
            for number in chosen
        ]


def change_device(
    world: World, device_id: int, dealer_id: int, actor: Actor, values: dict[str, Any]
) -> dict[str, Any]:
    """A PATCH from ``/v1``: details are set; a status or firmware change is a happening."""
    with world.store.transaction():
        row = device_status.find(world, device_id, dealer_id)
        device_status.set_details(world, device_id, values)
        base = {"site_id": row["site_id"], "device_id": device_id}
        status = values.get("status")
        if status is not None and status != row["status"]:
            event_type = f"device.{status}"
            data = catalog.build(world, random.Random(), event_type, base, world.base_url)
            events.log(world, event_type, data, actor=actor)
        firmware = values.get("firmware_version")
        if firmware is not None and firmware != row["firmware_version"]:
            overrides = {**base, "to_version": firmware}
            if row["firmware_version"]:
                overrides["from_version"] = row["firmware_version"]
            data = catalog.build(
                world, random.Random(), "device.firmware_updated", overrides, world.base_url
            )
            events.log(world, "device.firmware_updated", data, actor=actor)
        if any(k in values for k in ("name", "labels", "group", "configuration")):
            audit.write(world, actor, "device.changed", f"device {device_id}", dealer_id=dealer_id)
        return device_status.view(world, device_status.find(world, device_id, dealer_id))


def take_snapshot(world: World, device_id: int, dealer_id: int, actor: Actor) -> dict[str, Any]:
    with world.store.transaction():
        row = device_status.find(world, device_id, dealer_id)
        if row["device_type"] != "camera":
            raise ValidationFailed(
                "device_id",
                f"device {device_id} is a {row['device_type']}; only cameras take snapshots",
            )
        base = {"site_id": row["site_id"], "device_id": device_id}
        data = catalog.build(world, random.Random(), "snapshot.created", base, world.base_url)
        events.log(world, "snapshot.created", data, actor=actor)
        return snapshots.get(world, data["snapshot_id"], dealer_id)


def request_verification(
    world: World, alarm_id: str, dealer_id: int, actor: Actor, values: dict[str, Any]
) -> dict[str, Any]:
    """Ask the alarm's contacts to verify it (``values``: method, contacts as the catalogue
    lists them, timeout_seconds, message): a ``verification.requested`` happening about an
    open alarm. Returns the data it was logged (and is delivered) with."""
    with world.store.transaction():
        alarm = alarms.find(world, alarm_id, dealer_id)
        alarms.check(alarm, "verification.requested")
        overrides = {"alarm_id": alarm_id, "site_id": alarm["site_id"], **values}
        data = catalog.build(
            world, random.Random(), "verification.requested", overrides, world.base_url
        )
        events.log(world, "verification.requested", data, actor=actor)
        return data


# ---- events into CHeKT (the Partner Event API, a bridge's local API) -----------------------


def receive(
    world: World,
    event: inbound.Inbound,
    actor: Actor,
    answer: Callable[[str | None], dict[str, Any]],
) -> tuple[dict[str, Any], str | None]:
    """An event a partner or a bridge sent: an alarm raises one on its camera or zone, a
    trouble takes the device offline (or back online), an arming event arms or disarms the
    site. ``answer`` makes the reply from the alarm id; it is kept for a resend. Returns the
    reply and the alarm id."""
    with world.store.transaction():
        alarm_id: str | None = None
        happenings: list[str] = []
        site = event.site
        if event.event_type == "alarm":
            trigger = "motion" if event.source == "event_api" else "custom"
            overrides: dict[str, Any] = {
                "alarm_id": new_alarm_id(world),
                "site_id": site["site_id"],
                "trigger": trigger,
                "contact_id_code": catalog.CONTACT_ID_CODES[trigger],
            }
            if event.device is not None:
                overrides["device_id"] = event.device["device_id"]
            happenings.append(emit(world, random.Random(), "alarm.created", overrides, actor=actor))
            alarm_id = overrides["alarm_id"]
        elif event.event_type == "trouble" and event.device is not None:
            status = "online" if event.event_status == "restored" else "offline"
            before = world.store.scalar("SELECT MAX(seq) FROM events") or 0
            change_device(
                world, event.device["device_id"], site["dealer_id"], actor, {"status": status}
            )
            happenings += [
                row["event_id"]
                for row in world.store.all(
                    "SELECT event_id FROM events WHERE seq > ? ORDER BY seq", (before,)
                )
            ]
        elif event.event_type == "arming":
            state = {"armed": "armed_away"}.get(str(event.event_status), str(event.event_status))
            values = {"state": state, "partition": "all", "source": "partner_api"}
            happenings += arm(world, dict(site), actor, values)
        reply = answer(alarm_id)
        inbound.remember(world, event, alarm_id, happenings, reply, actor.request_id)
        return reply, alarm_id
