"""What the record knows of each device beyond its Partner API fields: online or offline,
when last seen, its firmware, and the labels, group and configuration an app gives it
through ``/v1``."""

from __future__ import annotations

import json
from typing import Any

from sandbox.errors import NotFound, ValidationFailed
from sandbox.store import Row
from sandbox.world.context import World
from sandbox.world.fields import Field

STATUSES = ("online", "offline")


def _labels_problem(value: Any) -> str | None:
    if not isinstance(value, list) or len(value) > 50:
        return "must be an array of at most 50 strings"
    if not all(isinstance(v, str) and 1 <= len(v) <= 64 for v in value):
        return "must hold strings of 1 to 64 characters"
    return None


def _configuration_problem(value: Any) -> str | None:
    if not isinstance(value, dict) or len(json.dumps(value)) > 16_384:
        return "must be a JSON object of at most 16 KiB"
    return None


# what PATCH /v1/devices/{id} may change; status and firmware changes are happenings
PATCH_FIELDS = (
    Field("name", max_length=255),
    Field("labels", kind=list, check=_labels_problem),
    Field("group", max_length=255),
    Field("configuration", kind=dict, check=_configuration_problem),
    Field("status", choices=STATUSES),
    Field("firmware_version", max_length=64),
)
READ_ONLY = (
    "device_id",
    "site_id",
    "dealer_id",
    "external_device_id",
    "device_type",
    "zone_number",
    "last_seen",
    "created_at",
)
_SELECT = "SELECT d.*, s.dealer_id FROM devices d JOIN sites s USING (site_id)"


def apply(world: World, event_type: str, data: dict[str, Any], at: float) -> None:
    """A device happening: it went online or offline, or its firmware changed."""
    device_id = data.get("device_id")
    if world.store.scalar("SELECT 1 FROM devices WHERE device_id = ?", (device_id,)) is None:
        raise ValidationFailed("data.device_id", f"device {device_id} does not exist")
    if event_type == "device.firmware_updated":
        world.store.execute(
            "UPDATE devices SET firmware_version = ?, last_seen = ? WHERE device_id = ?",
            (data.get("to_version"), at, device_id),
        )
        return
    status = "online" if event_type == "device.online" else "offline"
    seen = at if status == "online" else None
    world.store.execute(
        "UPDATE devices SET status = ?, last_seen = COALESCE(?, last_seen) WHERE device_id = ?",
        (status, seen, device_id),
    )


def find(world: World, device_id: int, dealer_id: int) -> Row:
    row = world.store.one(
        f"{_SELECT} WHERE d.device_id = ? AND s.dealer_id = ?", (device_id, dealer_id)
    )
    if row is None:
        raise NotFound(f"device {device_id} was not found", code="device_not_found")
    return row


def view(world: World, row: Row) -> dict[str, Any]:
    return {
        "device_id": row["device_id"],
        "site_id": row["site_id"],
        "dealer_id": row["dealer_id"],
        "external_device_id": row["external_device_id"],
        "device_type": row["device_type"],
        "zone_number": row["zone_number"],
        "name": row["name"],
        "manufacturer": row["manufacturer"],
        "model": row["model"],
        "serial_number": row["serial_number"],
        "mac": row["mac"],
        "status": row["status"],
        "last_seen": world.stamp(row["last_seen"]) if row["last_seen"] else None,
        "firmware_version": row["firmware_version"],
        "labels": json.loads(row["labels"]),
        "group": row["group_name"],
        "configuration": json.loads(row["configuration"]),
        "created_at": world.stamp(row["created_at"]),
    }


def listing(
    world: World, dealer_id: int, ids: list[int] | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    where, params = "s.dealer_id = ?", [dealer_id]
    if ids is not None:
        where += f" AND d.device_id IN ({','.join('?' * len(ids))})"
        params += ids
    total = int(
        world.store.cached_scalar(
            f"SELECT COUNT(*) FROM devices d JOIN sites s USING (site_id) WHERE {where}", params
        )
    )
    rows = world.store.cached_all(
        f"{_SELECT} WHERE {where} ORDER BY d.device_id LIMIT ? OFFSET ?", (*params, limit, offset)
    )
    return [view(world, row) for row in rows], total


def set_details(world: World, device_id: int, values: dict[str, Any]) -> None:
    """The fields of a PATCH that are not happenings (name, labels, group, configuration)."""
    columns = {"name": "name", "labels": "labels", "group": "group_name"}
    changes = {
        column: (json.dumps(values[name] or []) if name == "labels" else values[name])
        for name, column in columns.items()
        if name in values
    }
    if "configuration" in values:
        changes["configuration"] = json.dumps(values["configuration"] or {})
    if not changes:
        return
    sets = ", ".join(f"{column} = ?" for column in changes)
    world.store.execute(
        f"UPDATE devices SET {sets} WHERE device_id = ?", (*changes.values(), device_id)
    )
