"""Bulk device operations: each item succeeds or fails on its own, so one bad camera never
rejects the rest of an installer's batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sandbox.errors import ApiError, BadRequest, NotFound, ValidationFailed
from sandbox.world import resources
from sandbox.world.context import World
from sandbox.world.fields import validate
from sandbox.world.resources import DEVICE

MAX_BATCH = 1000


def _external_id(item: Any) -> str | None:
    """The id an item names itself by: the string itself (deletes) or its field."""
    value = item.get("external_device_id") if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def _results(
    world: World,
    items: Sequence[Any],
    apply: Callable[[Any], dict[str, Any]],
    name: Callable[[Any], str | None] = _external_id,
) -> dict[str, Any]:
    if len(items) > MAX_BATCH:
        raise ValidationFailed("body", f"a batch holds at most {MAX_BATCH} devices")
    results = []
    with world.store.transaction():
        for item in items:
            external = name(item)
            try:
                results.append({"is_successful": True, **apply(item)})
            except ApiError as error:
                detail = {"code": error.code, "message": error.message}
                if error.field is not None:
                    detail["field"] = error.field
                results.append(
                    {"is_successful": False, "external_device_id": external, "error": detail}
                )
    succeeded = sum(1 for r in results if r["is_successful"])
    return {
        "success_count": succeeded,
        "failure_count": len(results) - succeeded,
        "results": results,
    }


def _as_batch(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise BadRequest("the request body must be a JSON array of devices")
    if not body:
        raise ValidationFailed("body", "the array of devices is empty")
    return body


def _by_external(world: World, site_id: int, external: str) -> int:
    device_id = world.store.scalar(
        "SELECT device_id FROM devices WHERE site_id = ? AND external_device_id = ?",
        (site_id, external),
    )
    if device_id is None:
        raise NotFound(f"no device with external_device_id {external!r} at site {site_id}")
    return int(device_id)


def create_many(world: World, site_id: int, body: Any) -> dict[str, Any]:
    def create(item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise BadRequest("each device must be a JSON object")
        values = validate(item, DEVICE.fields, read_only=DEVICE.read_only)
        device_id = resources.insert(world, DEVICE, site_id, values)
        return {"external_device_id": values["external_device_id"], "device_id": device_id}

    return _results(world, _as_batch(body), create)


def update_many(world: World, site_id: int, body: Any) -> dict[str, Any]:
    def change(item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise BadRequest("each device must be a JSON object")
        external = item.get("external_device_id")
        if not isinstance(external, str):
            raise ValidationFailed("external_device_id", "external_device_id is required")
        device_id = _by_external(world, site_id, external)
        changes = {k: v for k, v in item.items() if k != "external_device_id"}
        values = validate(changes, DEVICE.fields, partial=True, read_only=DEVICE.read_only)
        resources.update(world, DEVICE, site_id, device_id, values)
        return {"external_device_id": external, "device_id": device_id}

    return _results(world, _as_batch(body), change)


def delete_many(world: World, site_id: int, externals: list[str]) -> dict[str, Any]:
    if not externals:
        raise ValidationFailed("external_device_ids", "name at least one external_device_id")

    def remove(external: str) -> dict[str, Any]:
        device_id = _by_external(world, site_id, external)
        resources.delete(world, DEVICE, site_id, device_id)
        return {"external_device_id": external, "device_id": device_id}

    return _results(world, externals, remove, name=str)
