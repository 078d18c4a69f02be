"""Snapshots in the record: one per alarm, and one per camera whenever an app asks for a
frame. A row keeps what the frame shows (its claims), so a link to it can be handed out again
long after the one a webhook carried has expired, and renders the same bytes."""

from __future__ import annotations

import json
from typing import Any

from sandbox.errors import Conflict, NotFound
from sandbox.store import Row
from sandbox.world import media
from sandbox.world.context import World


def fresh_link(world: World, url: str | None, claims: dict[str, Any], extension: str) -> str:
    """``url`` while it still works, else a new link to the same media."""
    now = world.now()
    if url and now < claims["at"] + claims.get("eta_seconds", 0) + media.lifetime(world.store):
        return url
    return media.link(world.store, world.base_url, claims, extension, issued=now)


def record(world: World, data: dict[str, Any], at: float) -> None:
    """A ``snapshot.created`` happening: the frame joins the record."""
    taken = "SELECT 1 FROM snapshots WHERE snapshot_id = ?"
    if world.store.scalar(taken, (data["snapshot_id"],)) is not None:
        # a seed drawn twice draws the same ids: say so instead of failing on the key
        raise Conflict(
            f"snapshot {data['snapshot_id']} is already in the record (a seed used "
            "again draws the same ids: pick another seed, or name a snapshot_id)"
        )
    claims = media.claims_in(world.store, data.get("url")) or _claims(world, data, at)
    world.store.insert(
        "snapshots",
        {
            "snapshot_id": data["snapshot_id"],
            "dealer_id": data["dealer_id"],
            "site_id": data["site_id"],
            "device_id": data["device_id"],
            "alarm_id": data.get("alarm_id"),
            "url": data.get("url"),
            "claims": json.dumps(claims),
            "captured_at": at,
        },
    )


def _claims(world: World, data: dict[str, Any], at: float) -> dict[str, Any]:
    device = world.store.one(
        "SELECT d.name, d.zone_number, s.name AS site FROM devices d JOIN sites s USING (site_id) "
        "WHERE d.device_id = ?",
        (data.get("device_id"),),
    ) or {"name": None, "zone_number": None, "site": None}
    return {
        "alarm_id": data.get("alarm_id"),
        "site_id": data.get("site_id"),
        "site": device["site"],
        "device_id": data.get("device_id"),
        "camera": device["name"],
        "channel": device["zone_number"],
        "at": round(at, 3),
        "kind": "snapshot",
        "id": data["snapshot_id"],
    }


def view(world: World, row: Row) -> dict[str, Any]:
    claims = json.loads(row["claims"])
    return {
        "snapshot_id": row["snapshot_id"],
        "dealer_id": row["dealer_id"],
        "site_id": row["site_id"],
        "device_id": row["device_id"],
        "alarm_id": row["alarm_id"],
        "url": fresh_link(world, row["url"], claims, "jpg"),
        "captured_at": world.stamp(row["captured_at"]),
    }


def get(world: World, snapshot_id: str, dealer_id: int) -> dict[str, Any]:
    row = world.store.one(
        "SELECT * FROM snapshots WHERE snapshot_id = ? AND dealer_id = ?", (snapshot_id, dealer_id)
    )
    if row is None:
        raise NotFound(f"snapshot {snapshot_id} was not found", code="snapshot_not_found")
    return view(world, row)


def of_device(world: World, device_id: int, limit: int, offset: int) -> tuple[list[Row], int]:
    total = int(
        world.store.scalar("SELECT COUNT(*) FROM snapshots WHERE device_id = ?", (device_id,))
    )
    rows = world.store.all(
        "SELECT * FROM snapshots WHERE device_id = ? ORDER BY captured_at DESC, snapshot_id "
        "LIMIT ? OFFSET ?",
        (device_id, limit, offset),
    )
    return [view(world, row) for row in rows], total
