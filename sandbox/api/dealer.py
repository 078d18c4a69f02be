"""The dealer Public API, ``/ext/v1``: what a dealer's own tools reach with a dealer API key.

Shapes follow what the live service sends (CONTRACT §5.2): lists are bare JSON arrays,
errors are ``{"error": {"message", "code", "detail"}}``. A key reaches its dealer's sites
only; any other site answers 404, as an absent one does. Every change goes through the
record (:mod:`sandbox.world.record`), so it is audited and emits its webhooks.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import (
    Handler,
    actor_of,
    parse_json,
    path_id,
    query_lists,
    reply,
    route,
    services,
)
from sandbox.api.guarded import endpoint
from sandbox.api.replay import replayable
from sandbox.auth.guard import Principal
from sandbox.errors import BadRequest, NotFound, ValidationFailed
from sandbox.store import Row
from sandbox.world import World, arming, record
from sandbox.world.fields import ZONE, Field, validate

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
    (≤ 100). The rendered array is kept until the next write: polling it is the hot path."""
    s = services(request)
    version = s.world.store.data_version()
    key = ("ext_sites", dealer_of(principal), request.scope["query_string"])
    body = s.list_cache.get(version, key)
    if body is None:
        sites = _sites(s.world, dealer_of(principal), query_lists(request))
        body = (bytes(reply(sites).body), len(sites))
        s.list_cache.put(key, body)
    return replayable(request, Response(body[0], media_type="application/json"), version)


def _sites(world: World, dealer_id: int, params: dict[str, list[str]]) -> list[dict[str, Any]]:
    for name in params:
        if name not in ("search", "limit", "page", "per_page", "status"):
            raise ValidationFailed(name, f"unknown query parameter {name!r}")
    limit = _number(params, "limit", 1, 1000)
    per_page = _number(params, "per_page", 1, 100)
    page = _number(params, "page", 1, 10**6) or 1
    size = per_page or limit or 100
    where: list[str] = ["dealer_id = ?"]
    args: list[Any] = [dealer_id]
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
    rows = world.store.all(
        f"SELECT * FROM sites WHERE {' AND '.join(where)} ORDER BY site_id LIMIT ? OFFSET ?",
        (*args, size, (page - 1) * size),
    )
    name = world.store.scalar("SELECT company_name FROM dealers WHERE dealer_id = ?", (dealer_id,))
    return [site_view(world, row, str(name)) for row in rows]


# ---- arming ----------------------------------------------------------------------------------

MODES = ("away", "stay", "night", "custom")
USER_CODE = re.compile(r"[0-9]{4,8}")
# the wire sends {user}; the documentation {mode, user_code, bypass_zones, force_arm}
ARMING_FIELDS = (
    Field("user", kind=object, check=lambda v: _user_problem(v)),
    Field("mode", choices=MODES),
    Field("user_code", pattern=USER_CODE, pattern_hint="4 to 8 digits"),
    Field("bypass_zones", kind=list, check=lambda v: _zones_problem(v)),
    Field(
        "force_arm", kind=bool, check=lambda v: None if isinstance(v, bool) else "must be a boolean"
    ),
)
PARTITION_FIELDS = (
    Field("partition_ids", kind=list, required=True, check=lambda v: _ids_problem(v)),
    *ARMING_FIELDS,
)


def _user_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return "must be a string or an integer (who armed or disarmed)"
    if isinstance(value, str) and not 1 <= len(value) <= 128:
        return "must be 1 to 128 characters"
    return None


def _zones_problem(value: Any) -> str | None:
    if (
        not isinstance(value, list)
        or len(value) > 256
        or not all(isinstance(z, str) and ZONE.fullmatch(z) for z in value)
    ):
        return "must be an array of three-digit zone numbers such as '001'"
    return None


def _ids_problem(value: Any) -> str | None:
    if not isinstance(value, list) or not value or len(value) > 64:
        return "must name 1 to 64 partitions"
    if not all(isinstance(p, int) and not isinstance(p, bool) and p >= 1 for p in value):
        return "must hold partition ids (positive integers)"
    return None


async def _arming_body(request: Request, fields: tuple[Field, ...]) -> dict[str, Any]:
    """The body, or nothing: an arm or disarm may be sent with no body at all."""
    raw = await request.body()
    if not raw.strip():
        body: Any = {}
    elif "json" not in request.headers.get("content-type", "json").lower():
        raise BadRequest("send the body as JSON with Content-Type: application/json")
    else:
        body = parse_json(raw)
    return validate(body, fields)


def arming_view(world: World, site_id: int) -> dict[str, Any]:
    state = arming.view(world, site_id)
    return {
        "arming_status": "disarmed" if state["state"] == "disarmed" else "armed",
        "arming_updated_at": state["updated_at"],
    }


def partitions_view(world: World, site_id: int) -> list[dict[str, Any]]:
    return [
        {
            "partition_id": p["partition"],
            "partition_name": p["name"],
            "partition_number": p["partition"],
            "arming_status": "disarmed" if p["state"] == "disarmed" else "armed",
        }
        for p in arming.partitions(world, site_id)
    ]


def _change(
    request: Request, principal: Principal, site: Row, action: str, values: dict[str, Any]
) -> None:
    """Arm (in ``mode``, away when none is given) or disarm through the record: one
    site.armed / site.disarmed happening per partition, audited as the dealer API's.
    ``user_code``, ``bypass_zones`` and ``force_arm`` are checked and accepted; the record
    has no panel to hand them to."""
    state = "disarmed" if action == "disarm" else f"armed_{values.get('mode') or 'away'}"
    user = values.get("user")
    change = {
        "state": state,
        "partition": list(dict.fromkeys(values.get("partition_ids") or [])) or "all",
        "user_id": None if user is None else str(user),
        "source": "dealer_api",
    }
    world = services(request).world
    record.arm(world, site, actor_of(request, principal, "dealer"), change, "partition_ids")


@dealer_api
async def get_arming(request: Request, principal: Principal) -> Response:
    site = own_site(request, principal)
    return reply(arming_view(services(request).world, site["site_id"]))


@dealer_api
async def get_partition_arming(request: Request, principal: Principal) -> Response:
    site = own_site(request, principal)
    return reply(partitions_view(services(request).world, site["site_id"]))


def _arming_action(action: str, partitioned: bool) -> Handler:
    async def act(request: Request, principal: Principal) -> Response:
        site = own_site(request, principal)
        values = await _arming_body(request, PARTITION_FIELDS if partitioned else ARMING_FIELDS)
        _change(request, principal, site, action, values)
        world = services(request).world
        if partitioned:
            return reply(partitions_view(world, site["site_id"]))
        return reply(arming_view(world, site["site_id"]))

    act.__name__ = f"{action}_{'partitions' if partitioned else 'site'}"
    return dealer_api(act)


routes = [
    route(PREFIX + "/sites", GET=list_sites),
    route(PREFIX + "/sites/{site_id}/arming", GET=get_arming),
    route(PREFIX + "/sites/{site_id}/arming/actions/arm", POST=_arming_action("arm", False)),
    route(PREFIX + "/sites/{site_id}/arming/actions/disarm", POST=_arming_action("disarm", False)),
    route(PREFIX + "/sites/{site_id}/partition-arming", GET=get_partition_arming),
    route(
        PREFIX + "/sites/{site_id}/partition-arming/actions/arm",
        POST=_arming_action("arm", True),
    ),
    route(
        PREFIX + "/sites/{site_id}/partition-arming/actions/disarm",
        POST=_arming_action("disarm", True),
    ),
]
