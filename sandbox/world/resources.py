"""The Partner API's resources and the CRUD every one of them shares.

A ``Resource`` names its table, its parent (dealer or site), its external id and its
fields; the generic calls below do paging, projection, 404s and duplicate external ids once.
Rules particular to one resource live in its own module (``sites``, ``devices``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.errors import Conflict, NotFound
from sandbox.store import Row
from sandbox.world.context import World
from sandbox.world.fields import (
    ACCOUNT,
    EMAIL,
    MAC,
    PHONE,
    ZONE,
    ZONES,
    Field,
    external_id,
    iana_timezone,
)
from sandbox.world.listing import ListQuery, fetch_page, project


@dataclass(frozen=True, eq=False)
class Resource:
    name: str  # as in messages: "site"
    table: str
    source: str  # table or view read from
    id_column: str
    parent_column: str
    external_column: str
    columns: dict[str, type]  # response fields, in order, with their types
    fields: tuple[Field, ...]  # writable fields

    @property
    def select(self) -> str:
        return ", ".join(self.columns)

    @property
    def read_only(self) -> tuple[str, ...]:
        writable = {f.name for f in self.fields}
        return tuple(name for name in self.columns if name not in writable)


STATION = Resource(
    name="monitoring station",
    table="monitoring_stations",
    source="monitoring_stations",
    id_column="monitoring_station_id",
    parent_column="dealer_id",
    external_column="external_monitoring_station_id",
    columns={
        "monitoring_station_id": int,
        "dealer_id": int,
        "external_monitoring_station_id": str,
        "name": str,
        "prefix": str,
        "linecard": str,
        "created_at": float,
    },
    fields=(
        external_id("external_monitoring_station_id"),
        Field("name", required=True),
        Field("prefix", max_length=8),
        Field("linecard", max_length=32),
    ),
)

SITE = Resource(
    name="site",
    table="sites",
    source="site_view",
    id_column="site_id",
    parent_column="dealer_id",
    external_column="external_site_id",
    columns={
        "site_id": int,
        "dealer_id": int,
        "external_site_id": str,
        "name": str,
        "timezone": str,
        "monitoring_station_id": int,
        "external_monitoring_station_id": str,
        "account_number": str,
        "address1": str,
        "address2": str,
        "is_activated": int,
        "created_at": float,
    },
    fields=(
        external_id("external_site_id"),
        Field("name", required=True),
        Field("timezone", required=True, max_length=64, check=iana_timezone),
        Field("monitoring_station_id", kind=int, minimum=1),
        Field(
            "account_number",
            pattern=ACCOUNT,
            pattern_hint="1-16 letters, digits or '-'",
        ),
        Field("address1"),
        Field("address2"),
        Field("is_activated", kind=int, choices=(0, 1)),
    ),
)

CONTACT = Resource(
    name="contact",
    table="contacts",
    source="contacts",
    id_column="contact_id",
    parent_column="site_id",
    external_column="external_contact_id",
    columns={
        "contact_id": int,
        "site_id": int,
        "external_contact_id": str,
        "first_name": str,
        "last_name": str,
        "phone_number": str,
        "email": str,
        "created_at": float,
    },
    fields=(
        external_id("external_contact_id"),
        Field("first_name", required=True, max_length=100),
        Field("last_name", required=True, max_length=100),
        Field("phone_number", pattern=PHONE, pattern_hint="a phone number such as +15551234567"),
        Field("email", pattern=EMAIL, pattern_hint="an email address"),
    ),
)

DEVICE = Resource(
    name="device",
    table="devices",
    source="devices",
    id_column="device_id",
    parent_column="site_id",
    external_column="external_device_id",
    columns={
        "device_id": int,
        "site_id": int,
        "external_device_id": str,
        "device_type": str,
        "zone_number": str,
        "additional_zone_numbers": str,
        "name": str,
        "mac": str,
        "manufacturer": str,
        "model": str,
        "serial_number": str,
        "created_at": float,
    },
    fields=(
        external_id("external_device_id"),
        Field("device_type", required=True, choices=("camera", "bridge")),
        Field("zone_number", required=True, pattern=ZONE, pattern_hint="three digits, e.g. '001'"),
        Field(
            "additional_zone_numbers",
            pattern=ZONES,
            pattern_hint="comma-separated three-digit zones, e.g. '002,003'",
        ),
        Field("name"),
        Field("mac", pattern=MAC, pattern_hint="a MAC address such as 00:1A:2B:3C:4D:5E"),
        Field("manufacturer"),
        Field("model"),
        Field("serial_number"),
    ),
)


def serialize(world: World, resource: Resource, row: Row) -> dict[str, Any]:
    item = {name: row[name] for name in resource.columns}
    item["created_at"] = world.stamp(row["created_at"])
    return item


def find_row(world: World, resource: Resource, parent_id: int, item_id: int) -> Row:
    row = world.store.one(
        f"SELECT {resource.select} FROM {resource.source} "
        f"WHERE {resource.id_column} = ? AND {resource.parent_column} = ?",
        (item_id, parent_id),
    )
    if row is None:
        raise NotFound(f"{resource.name} {item_id} was not found")
    return row


def get(world: World, resource: Resource, parent_id: int, item_id: int) -> dict[str, Any]:
    return serialize(world, resource, find_row(world, resource, parent_id, item_id))


def list_items(
    world: World, resource: Resource, parent_id: int, query: ListQuery
) -> tuple[list[dict[str, Any]], int]:
    rows, total = fetch_page(
        world.store,
        resource.source,
        resource.select,
        f"{resource.parent_column} = ?",
        [parent_id],
        query,
        resource.id_column,
    )
    return [project(serialize(world, resource, row), query.fields) for row in rows], total


def ensure_external_id_free(
    world: World, resource: Resource, parent_id: int, external: str, item_id: int | None = None
) -> None:
    clash = world.store.scalar(
        f"SELECT {resource.id_column} FROM {resource.table} "
        f"WHERE {resource.parent_column} = ? AND {resource.external_column} = ?",
        (parent_id, external),
    )
    if clash is not None and clash != item_id:
        raise Conflict(
            f"a {resource.name} with {resource.external_column} {external!r} already exists "
            f"({resource.id_column} {clash})",
            code="conflict",
        )


def insert(world: World, resource: Resource, parent_id: int, values: dict[str, Any]) -> int:
    ensure_external_id_free(world, resource, parent_id, values[resource.external_column])
    row = {**_unset_flags(values), resource.parent_column: parent_id, "created_at": world.now()}
    return world.store.insert(resource.table, row)


def update(
    world: World, resource: Resource, parent_id: int, item_id: int, values: dict[str, Any]
) -> None:
    find_row(world, resource, parent_id, item_id)
    if resource.external_column in values:
        ensure_external_id_free(
            world, resource, parent_id, values[resource.external_column], item_id
        )
    values = _unset_flags(values)
    if not values:
        return
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    world.store.execute(
        f"UPDATE {resource.table} SET {assignments} WHERE {resource.id_column} = :_id",
        {**values, "_id": item_id},
    )


def delete(world: World, resource: Resource, parent_id: int, item_id: int) -> None:
    find_row(world, resource, parent_id, item_id)
    world.store.execute(f"DELETE FROM {resource.table} WHERE {resource.id_column} = ?", (item_id,))


def full_replacement(resource: Resource, values: dict[str, Any]) -> dict[str, Any]:
    """PUT semantics: every optional field not given is cleared (flags keep their value)."""
    return _unset_flags({f.name: values.get(f.name) for f in resource.fields})


FLAGS = ("is_activated",)  # never null: a null leaves the flag as it is (new sites: 0)


def _unset_flags(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None or k not in FLAGS}
