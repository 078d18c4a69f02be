"""Dealers and who may reach them.

A dealer app reaches its own dealer; a platform partner reaches the dealers connected to it
(``PUT /partner/v1/dealers/connect``). Anything out of reach is reported exactly like
something absent, so ids of other dealers leak nothing.
"""

from __future__ import annotations

from typing import Any

from sandbox.errors import Conflict, NotFound
from sandbox.world.context import World
from sandbox.world.fields import EMAIL, PHONE, Field, external_id

CONNECT_FIELDS = (external_id("external_dealer_id"), Field("company_name", required=True))
DEALER_FIELDS = (
    Field("company_name", required=True),
    Field("company_address1"),
    Field("company_address2"),
    Field("company_email", pattern=EMAIL, pattern_hint="an email address"),
    Field("company_phone_number", pattern=PHONE, pattern_hint="a phone number"),
)
DEALER_READ_ONLY = ("dealer_id", "external_dealer_id", "created_at")


def reachable(world: World, dealer_id: int, *, client_id: str, own_dealer: int | None) -> bool:
    if own_dealer is not None:
        return dealer_id == own_dealer
    return (
        world.store.cached_scalar(  # asked on every platform-partner request
            "SELECT 1 FROM connections WHERE client_id = ? AND dealer_id = ?",
            (client_id, dealer_id),
        )
        is not None
    )


def require_reach(world: World, dealer_id: int, *, client_id: str, own_dealer: int | None) -> None:
    if not reachable(world, dealer_id, client_id=client_id, own_dealer=own_dealer):
        raise NotFound(f"dealer {dealer_id} was not found")


def connected_dealers(world: World, client_id: str) -> list[int]:
    rows = world.store.all(
        "SELECT dealer_id FROM connections WHERE client_id = ? ORDER BY dealer_id", (client_id,)
    )
    return [row["dealer_id"] for row in rows]


def get(world: World, dealer_id: int, client_id: str) -> dict[str, Any]:
    row = world.store.one(
        "SELECT d.dealer_id, c.external_dealer_id, d.company_name, d.company_address1, "
        "d.company_address2, d.company_email, d.company_phone_number, d.created_at "
        "FROM dealers d LEFT JOIN connections c ON c.dealer_id = d.dealer_id AND c.client_id = ? "
        "WHERE d.dealer_id = ?",
        (client_id, dealer_id),
    )
    if row is None:
        raise NotFound(f"dealer {dealer_id} was not found")
    return {**row, "created_at": world.stamp(row["created_at"])}


def update(world: World, dealer_id: int, client_id: str, values: dict[str, Any]) -> dict[str, Any]:
    if values:
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        world.store.execute(
            f"UPDATE dealers SET {assignments} WHERE dealer_id = :_id", {**values, "_id": dealer_id}
        )
    return get(world, dealer_id, client_id)


def connect(world: World, dealer_id: int, client_id: str, external_dealer_id: str) -> None:
    """Link a dealer to a platform partner under the partner's own id for it."""
    with world.store.transaction():
        current = world.store.one(
            "SELECT external_dealer_id FROM connections WHERE client_id = ? AND dealer_id = ?",
            (client_id, dealer_id),
        )
        if current is not None:
            if current["external_dealer_id"] != external_dealer_id:
                raise Conflict(
                    f"dealer {dealer_id} is already connected to this partner as "
                    f"{current['external_dealer_id']!r}; disconnect it first"
                )
            return
        taken = world.store.scalar(
            "SELECT dealer_id FROM connections WHERE client_id = ? AND external_dealer_id = ?",
            (client_id, external_dealer_id),
        )
        if taken is not None:
            raise Conflict(
                f"external_dealer_id {external_dealer_id!r} already names another dealer",
                field="external_dealer_id",
            )
        world.store.insert(
            "connections",
            {
                "client_id": client_id,
                "dealer_id": dealer_id,
                "external_dealer_id": external_dealer_id,
                "created_at": world.now(),
            },
        )


def disconnect(world: World, dealer_id: int, client_id: str) -> None:
    world.store.execute(
        "DELETE FROM connections WHERE client_id = ? AND dealer_id = ?", (client_id, dealer_id)
    )
