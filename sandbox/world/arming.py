"""Arming in the record: each site's partitions and the state each is in.

A site is ``armed`` in the mode of its first armed partition, ``disarmed`` when none is.
Every change is a ``site.armed`` / ``site.disarmed`` happening for one partition, applied
here by :func:`apply`.
"""

from __future__ import annotations

from typing import Any

from sandbox.errors import ValidationFailed
from sandbox.store import Row
from sandbox.world.context import World

ARMED_STATES = ("armed_away", "armed_stay", "armed_night", "armed_custom")
STATES = ("disarmed", *ARMED_STATES)
PARTITION_NAMES = ("Main", "Garage", "Office", "Warehouse")


def add_partitions(world: World, site_id: int, count: int, at: float) -> None:
    for number in range(1, count + 1):
        world.store.insert(
            "arming",
            {
                "site_id": site_id,
                "partition": number,
                "name": PARTITION_NAMES[(number - 1) % len(PARTITION_NAMES)],
                "state": "disarmed",
                "updated_at": at,
            },
        )


def partitions(world: World, site_id: int) -> list[Row]:
    return world.store.remembered(
        "SELECT partition, name, state, user_id, source, updated_at FROM arming "
        "WHERE site_id = ? ORDER BY partition",
        (site_id,),
        {"arming": None},
    )


def apply(world: World, event_type: str, data: dict[str, Any], at: float) -> None:
    site_id, partition = data.get("site_id"), data.get("partition")
    numbers = [row["partition"] for row in partitions(world, int(site_id or 0))]
    if not numbers:  # a site made through the Partner API: one partition, made when first used
        add_partitions(world, int(site_id or 0), 1, at)
        numbers = [1]
    if partition not in numbers:
        known = ", ".join(map(str, numbers))
        raise ValidationFailed(
            "data.partition", f"site {site_id} has no partition {partition!r} (partitions: {known})"
        )
    state = "disarmed" if event_type == "site.disarmed" else data.get("state")
    if state not in STATES:
        raise ValidationFailed("data.state", f"state must be one of {', '.join(STATES)}")
    world.store.execute(
        "UPDATE arming SET state = ?, user_id = ?, source = ?, updated_at = ? "
        "WHERE site_id = ? AND partition = ?",
        (state, data.get("user_id"), data.get("source"), at, site_id, partition),
    )


def view(world: World, site_id: int) -> dict[str, Any]:
    rows = partitions(world, site_id)
    armed = [row["state"] for row in rows if row["state"] != "disarmed"]
    changed = max((row["updated_at"] for row in rows), default=None)
    return {
        "state": armed[0] if armed else "disarmed",
        "updated_at": world.stamp(changed) if changed is not None else None,
        "partitions": [{**row, "updated_at": world.stamp(row["updated_at"])} for row in rows],
    }
