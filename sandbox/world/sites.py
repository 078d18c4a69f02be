"""Site rules beyond plain CRUD: the monitoring station must be the dealer's own, an
account number is unique at its station (two sites sharing one would cross alarm
signals), and the arming settings view."""

from __future__ import annotations

from typing import Any

from sandbox.errors import Conflict, NotFound
from sandbox.world import resources
from sandbox.world.context import World
from sandbox.world.fields import Field
from sandbox.world.resources import SITE

SECURITY_TYPES = {
    1: "alarm panel + primary bridge",
    2: "alarm panel + a bridge per zone",
    3: "CHeKT video security system",
    4: "Alarm.com",
}
ARMING_FIELDS = (Field("security_type", kind=int, required=True, choices=tuple(SECURITY_TYPES)),)


def _check(world: World, dealer_id: int, merged: dict[str, Any], site_id: int | None) -> None:
    station_id = merged.get("monitoring_station_id")
    if station_id is not None:
        owner = world.store.scalar(
            "SELECT dealer_id FROM monitoring_stations WHERE monitoring_station_id = ?",
            (station_id,),
        )
        if owner != dealer_id:
            raise NotFound(
                f"monitoring station {station_id} was not found at dealer {dealer_id}",
                field="monitoring_station_id",
            )
        account = merged.get("account_number")
        if account is not None:
            clash = world.store.scalar(
                "SELECT site_id FROM sites WHERE monitoring_station_id = ? AND account_number = ?",
                (station_id, account),
            )
            if clash is not None and clash != site_id:
                raise Conflict(
                    f"account number {account!r} is already used at monitoring station "
                    f"{station_id} by site {clash}; account numbers are unique per station"
                )


def first_with_camera(world: World, dealer_ids: list[int]) -> int | None:
    """The lowest site of these dealers that has a camera (what a test alarm can be about)."""
    marks = ",".join("?" * len(dealer_ids))
    found = world.store.scalar(
        f"SELECT MIN(site_id) FROM sites WHERE dealer_id IN ({marks}) AND site_id IN "
        "(SELECT site_id FROM devices WHERE device_type = 'camera')",
        dealer_ids,
    )
    return None if found is None else int(found)


def create(world: World, dealer_id: int, values: dict[str, Any]) -> dict[str, Any]:
    with world.store.transaction():
        _check(world, dealer_id, values, None)
        site_id = resources.insert(world, SITE, dealer_id, values)
    return resources.get(world, SITE, dealer_id, site_id)


def update(world: World, dealer_id: int, site_id: int, values: dict[str, Any]) -> dict[str, Any]:
    with world.store.transaction():
        current = resources.find_row(world, SITE, dealer_id, site_id)
        _check(world, dealer_id, {**current, **values}, site_id)
        resources.update(world, SITE, dealer_id, site_id, values)
    return resources.get(world, SITE, dealer_id, site_id)


def arming_settings(world: World, dealer_id: int, site_id: int) -> dict[str, Any]:
    row = world.store.one(
        "SELECT site_id, external_site_id, name, security_type FROM sites "
        "WHERE site_id = ? AND dealer_id = ?",
        (site_id, dealer_id),
    )
    if row is None:
        raise NotFound(f"site {site_id} was not found")
    return row


def set_arming(world: World, dealer_id: int, site_id: int, security_type: int) -> dict[str, Any]:
    resources.find_row(world, SITE, dealer_id, site_id)
    world.store.execute(
        "UPDATE sites SET security_type = ? WHERE site_id = ?", (security_type, site_id)
    )
    return arming_settings(world, dealer_id, site_id)
