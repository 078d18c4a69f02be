"""The dealer Public API, ``/ext/v1``: what a dealer's own tools reach with a dealer API key.

Shapes follow what the live service sends (CONTRACT §5.2): lists are bare JSON arrays,
errors are ``{"error": {"message", "code", "detail"}}``. A key reaches its dealer's sites
only; any other site answers 404, as an absent one does. Every change goes through the
record (:mod:`sandbox.world.record`), so it is audited and emits its webhooks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import path_id, query_lists, reply, route, services
from sandbox.api.guarded import endpoint
from sandbox.auth.guard import Principal
from sandbox.errors import NotFound, ValidationFailed
from sandbox.store import Row
from sandbox.world import World, arming

PREFIX = "/ext/v1"
Impl = Callable[[Request, Principal], Awaitable[Response]]
dealer_api = endpoint(None, api_key_only="the dealer API (/ext/v1)")
SITE_STATUSES = {"activated": 1, "deactivated": 0}


def dealer_of(principal: Principal) -> int:
    assert principal.dealer_id is not None  # an API key always belongs to one dealer
    return principal.dealer_id


def own_site(request: Request, principal: Principal) -> Row:
    """The path's ``site_id``, when it is one of the key's dealer's sites (404 otherwise)."""
    site_id = path_id(request, "site_id")
    site = services(request).world.store.one(
        "SELECT * FROM sites WHERE site_id = ? AND dealer_id = ?", (site_id, dealer_of(principal))
    )
    if site is None:
        raise NotFound(f"site {site_id} was not found", code="site_not_found")
    return site


def _number(params: dict[str, list[str]], name: str, low: int, high: int) -> int | None:
    if name not in params:
        return None
    raw = params[name][-1]
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ValidationFailed(name, f"{name} must be an integer from {low} to {high}")
    return int(raw)


def site_view(world: World, site: Row, dealer_name: str) -> dict[str, Any]:
    parts = arming.partitions(world, site["site_id"])
    address = ", ".join(p for p in (site["address1"], site["address2"]) if p)
    return {
        "site_id": site["site_id"],
        "site_name": site["name"],
        "address": address,
        "account_number": site["account_number"] or "",
        "dealer_name": dealer_name,
        "is_activated": bool(site["is_activated"]),
        "is_partition_enabled": len(parts) > 1,
        "partitions": [
            {"partition_id": p["partition"], "partition_name": p["name"]} for p in parts
        ],
    }


@dealer_api
async def list_sites(request: Request, principal: Principal) -> Response:
    """``search`` (name or account number, any case), ``status`` (activated|deactivated);
    ``limit`` as the live client sends it (≤ 1000), or the documented ``page``/``per_page``
    (≤ 100)."""
    params = query_lists(request)
    for name in params:
        if name not in ("search", "limit", "page", "per_page", "status"):
            raise ValidationFailed(name, f"unknown query parameter {name!r}")
    limit = _number(params, "limit", 1, 1000)
    per_page = _number(params, "per_page", 1, 100)
    page = _number(params, "page", 1, 10**6) or 1
    size = per_page or limit or 100
    where: list[str] = ["dealer_id = ?"]
    args: list[Any] = [dealer_of(principal)]
    if "search" in params:
        where.append("(name LIKE ? ESCAPE '\\' OR account_number LIKE ? ESCAPE '\\')")
        text = params["search"][-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        args += [f"%{text}%"] * 2
    if "status" in params:
        status = params["status"][-1]
        if status not in SITE_STATUSES:
            raise ValidationFailed("status", "status must be activated or deactivated")
        where.append("is_activated = ?")
        args.append(SITE_STATUSES[status])
    world = services(request).world
    rows = world.store.all(
        f"SELECT * FROM sites WHERE {' AND '.join(where)} ORDER BY site_id LIMIT ? OFFSET ?",
        (*args, size, (page - 1) * size),
    )
    name = world.store.scalar(
        "SELECT company_name FROM dealers WHERE dealer_id = ?", (dealer_of(principal),)
    )
    return reply([site_view(world, row, str(name)) for row in rows])


routes = [
    route(PREFIX + "/sites", GET=list_sites),
]
