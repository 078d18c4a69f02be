"""The CHeKT Apps Public API, ``/v1``: what a third-party app reaches with its API key.

An app's key reaches one dealer; its scopes (``devices:read``, ``events:write`` …) gate the
endpoints here and the webhooks it hears. Lists are bare arrays paged by ``limit``/``offset``
with ``X-Total-Count``, except ``/v1/events``, which pages by an opaque cursor; the live stream
is in :mod:`sandbox.api.apps_stream`. Every change goes through the record
(:mod:`sandbox.world.record`), so it is audited and emits its webhooks.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import actor_of, path_id, query_lists, read_json, reply, route, services
from sandbox.api.guarded import endpoint
from sandbox.api.replay import replayable
from sandbox.auth.guard import Principal
from sandbox.errors import NotFound, ValidationFailed
from sandbox.store import Row
from sandbox.vocabulary import RESOLUTIONS, one_of
from sandbox.world import (
    World,
    alarms,
    arming,
    catalog,
    device_status,
    events,
    record,
    snapshots,
    subscriptions,
)
from sandbox.world.fields import Field, validate
from sandbox.world.listing import parse_list_query, parse_timestamp

Impl = Callable[[Request, Principal], Awaitable[Response]]


def apps(scope: str) -> Callable[[Impl], Any]:
    return endpoint(scope, api_key_only="the CHeKT Apps API (/v1)")


def _world(request: Request) -> World:
    return services(request).world


def dealer_of(principal: Principal) -> int:
    assert principal.dealer_id is not None  # an API key always belongs to one dealer
    return principal.dealer_id


def page_query(request: Request, *extra: str) -> tuple[int, int, dict[str, str]]:
    """``limit``/``offset`` checked as the Partner API checks them, and the other named
    parameters (each at most once)."""
    params = query_lists(request)
    query = parse_list_query(params, {}, known=("limit", "offset", *extra))
    return query.limit, query.offset, {name: params[name][-1] for name in extra if name in params}


def _listed(items: list[dict[str, Any]], total: int) -> Response:
    return reply(items, headers={"X-Total-Count": str(total)})


def _integer(name: str, raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ValidationFailed(name, f"{name} must be a positive integer")
    return int(raw)


# ---- sites and arming ------------------------------------------------------------------------


def _site_view(world: World, row: Row) -> dict[str, Any]:
    keys = ("site_id", "dealer_id", "external_site_id", "name", "timezone", "account_number")
    more = ("address1", "address2", "is_activated")
    return {
        **{k: row[k] for k in (*keys, *more)},
        "created_at": world.stamp(row["created_at"]),
        "arming": arming.view(world, row["site_id"]),
    }


@apps("sites:read")
async def list_sites(request: Request, principal: Principal) -> Response:
    limit, offset, _ = page_query(request)
    world = _world(request)
    where = "WHERE dealer_id = ?"
    total = int(
        world.store.cached_scalar(f"SELECT COUNT(*) FROM sites {where}", (dealer_of(principal),))
    )
    rows = world.store.cached_all(
        f"SELECT * FROM sites {where} ORDER BY site_id LIMIT ? OFFSET ?",
        (dealer_of(principal), limit, offset),
    )
    return _listed([_site_view(world, row) for row in rows], total)


ARMING_FIELDS = (
    Field("state", required=True, choices=arming.STATES),
    Field("partition", kind=object, check=lambda v: _partition_problem(v)),
    Field("timestamp", max_length=64),
    Field("user_id", max_length=128),
    Field("source", max_length=64),
)


def _partition_problem(value: Any) -> str | None:
    if value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return None
    return 'must be "all" or a partition number (1, 2, ...)'


@apps("events:write")
async def set_arming_state(request: Request, principal: Principal) -> Response:
    """``{state, partition, timestamp?, user_id?, source?}``: an arming change the app saw
    at the panel, one happening per partition."""
    world = _world(request)
    site_id = path_id(request, "site_id")
    site = world.store.one(
        "SELECT * FROM sites WHERE site_id = ? AND dealer_id = ?", (site_id, dealer_of(principal))
    )
    if site is None:
        raise NotFound(f"site {site_id} was not found", code="site_not_found")
    values = validate(await read_json(request), ARMING_FIELDS)
    if values.get("timestamp") is not None:
        parse_timestamp(values["timestamp"], "timestamp")  # checked; the record keeps its clock
    actor = actor_of(request, principal, "v1")
    event_ids = record.arm(world, site, actor, values)
    return reply({**_site_view(world, site), "event_ids": event_ids})


# ---- devices and snapshots -------------------------------------------------------------------


def _ids(raw: str) -> list[int]:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts or len(parts) > 1000:
        raise ValidationFailed("ids", "ids is a comma-separated list of 1 to 1000 device ids")
    return [_integer("ids", p) for p in parts]


@apps("devices:read")
async def list_devices(request: Request, principal: Principal) -> Response:
    """All the dealer's devices, or a batch of them (``?ids=1,2``: ids out of reach are
    left out, as absent ones are)."""
    limit, offset, extra = page_query(request, "ids")
    ids = _ids(extra["ids"]) if "ids" in extra else None
    items, total = device_status.listing(_world(request), dealer_of(principal), ids, limit, offset)
    return _listed(items, total)


@apps("devices:read")
async def get_device(request: Request, principal: Principal) -> Response:
    world = _world(request)
    row = device_status.find(world, path_id(request, "device_id"), dealer_of(principal))
    return reply(device_status.view(world, row))


@apps("devices:write")
async def patch_device(request: Request, principal: Principal) -> Response:
    """Labels, group, configuration, name; a ``status`` or ``firmware_version`` change is a
    happening (``device.online|offline``, ``device.firmware_updated``)."""
    world = _world(request)
    device_id = path_id(request, "device_id")
    device_status.find(world, device_id, dealer_of(principal))
    values = validate(
        await read_json(request),
        device_status.PATCH_FIELDS,
        partial=True,
        read_only=device_status.READ_ONLY,
    )
    actor = actor_of(request, principal, "v1")
    return reply(record.change_device(world, device_id, dealer_of(principal), actor, values))


@apps("devices:read")
async def device_snapshots(request: Request, principal: Principal) -> Response:
    limit, offset, _ = page_query(request)
    world = _world(request)
    device_id = path_id(request, "device_id")
    device_status.find(world, device_id, dealer_of(principal))
    items, total = snapshots.of_device(world, device_id, limit, offset)
    return _listed(items, total)


@apps("devices:write")
async def take_snapshot(request: Request, principal: Principal) -> Response:
    world = _world(request)
    actor = actor_of(request, principal, "v1")
    device_id = path_id(request, "device_id")
    snapshot = record.take_snapshot(world, device_id, dealer_of(principal), actor)
    return reply(snapshot, 201)


@apps("snapshots:read")
async def get_snapshot(request: Request, principal: Principal) -> Response:
    snapshot_id = request.path_params["snapshot_id"]
    return reply(snapshots.get(_world(request), snapshot_id, dealer_of(principal)))


# ---- events ----------------------------------------------------------------------------------

EVENT_PAGE = 100
RECORD_TYPES = tuple(subscriptions.RECORD_SCOPES)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": seq}).encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> int:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        after = decoded["after"]
    except (ValueError, TypeError, KeyError):
        raise ValidationFailed("cursor", "cursor is not one this API handed out") from None
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ValidationFailed("cursor", "cursor is not one this API handed out")
    return after


def heard_types(principal: Principal, wanted: str | None) -> tuple[str, ...]:
    """The happenings this key may read (its scopes gate them as they gate webhooks),
    narrowed to ``?type=a,b``."""
    types = tuple(t for t in RECORD_TYPES if subscriptions.hears(principal.scopes, t))
    if wanted is None:
        return types
    asked = tuple(t.strip() for t in wanted.split(",") if t.strip())
    unknown = [t for t in asked if t not in RECORD_TYPES]
    if unknown or not asked:
        raise ValidationFailed("type", f"type must list event types from {', '.join(RECORD_TYPES)}")
    return tuple(t for t in asked if t in types)


@apps("events:read")
async def list_events(request: Request, principal: Principal) -> Response:
    """``{data: [...], page: {cursor, has_more}}``, oldest first; ``since`` (ISO-8601) starts
    at a time, ``cursor`` continues where the last page ended."""
    limit, _, extra = page_query(request, "cursor", "since", "type")
    world = _world(request)
    after = decode_cursor(extra["cursor"]) if "cursor" in extra else 0
    since = parse_timestamp(extra["since"], "since") if "since" in extra else None
    types = heard_types(principal, extra.get("type"))
    dealer_id = dealer_of(principal)
    rows = events.happened(world, dealer_id, after, limit + 1, types, since) if types else []
    page, more = rows[:limit], len(rows) > limit
    last = page[-1]["seq"] if page else after
    return reply(
        {
            "data": [events.envelope(world, row) for row in page],
            "page": {"cursor": encode_cursor(last), "has_more": more},
        }
    )


# ---- alarms ----------------------------------------------------------------------------------


# the key's own dealer, never one a query names
ALARM_FILTERS = tuple(name for name in alarms.ALARM_FILTERS if name != "dealer_id")


@apps("events:read")
async def list_alarms(request: Request, principal: Principal) -> Response:
    limit, offset, extra = page_query(request, *ALARM_FILTERS)
    filters: dict[str, Any] = {}
    for name, raw in extra.items():
        if alarms.ALARM_FILTERS[name] is int:
            filters[name] = _integer(name, raw)
        else:
            filters[name] = raw
    if "state" in filters and filters["state"] not in alarms.STATES:
        raise ValidationFailed("state", f"state must be {one_of(alarms.STATES)}")
    s = services(request)
    dealer = dealer_of(principal)
    # polled: the page's JSON is kept until the next write, its links made per request
    version = s.world.store.data_version()
    key = (dealer, tuple(sorted(filters.items())), limit, offset)
    made = s.linked_lists.get(version, key)
    if made is None:
        made = alarms.page(s.world, dealer, filters, limit, offset)
        s.linked_lists.put(key, made)
    body, total = made
    response = Response(
        body.render(s.world.now()),
        media_type="application/json",
        headers={"X-Total-Count": str(total)},
    )
    return replayable(request, response, version, body.render)


@apps("events:read")
async def get_alarm(request: Request, principal: Principal) -> Response:
    return reply(alarms.get(_world(request), request.path_params["alarm_id"], dealer_of(principal)))


def _confidence_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        return "must be a number from 0 to 1"
    return None


ACTIONS: dict[str, tuple[str, tuple[Field, ...], Callable[..., dict[str, Any]]]] = {
    "acknowledge": (
        "events:write",
        (Field("operator_id", max_length=128), Field("reason", max_length=1000)),
        record.acknowledge,
    ),
    "escalate": ("events:write", (Field("reason", max_length=1000),), record.escalate),
    "annotate": (
        "events:write",
        (
            Field("source", required=True, max_length=128),
            Field("verdict", required=True, choices=alarms.VERDICTS),
            Field("confidence", kind=object, check=_confidence_problem),
            Field("note", max_length=4000),
        ),
        record.annotate,
    ),
    "dispatch": (
        "alarms:write",
        (
            Field("responder_type", required=True, choices=catalog.RESPONDERS),
            Field("eta_seconds", kind=int, minimum=0, maximum=86400),
            Field("responder_id", max_length=128),
        ),
        record.dispatch,
    ),
    "resolve": (
        "events:write",
        (
            Field("resolution", required=True, choices=RESOLUTIONS),
            Field("notes", max_length=4000),
        ),
        record.resolve,
    ),
}


def _action(name: str) -> Any:
    scope, fields, command = ACTIONS[name]

    @apps(scope)
    async def act(request: Request, principal: Principal) -> Response:
        raw = await request.body()
        body = await read_json(request) if raw.strip() else {}
        values = validate(body, fields)
        actor = actor_of(request, principal, "v1")
        alarm_id = request.path_params["alarm_id"]
        return reply(command(_world(request), alarm_id, dealer_of(principal), actor, values))

    act.__name__ = f"{name}_alarm"
    return act


routes = [
    route("/v1/sites", GET=list_sites),
    route("/v1/sites/{site_id}/arming-state", POST=set_arming_state),
    route("/v1/devices", GET=list_devices),
    route("/v1/devices/{device_id}", GET=get_device, PATCH=patch_device),
    route("/v1/devices/{device_id}/snapshots", GET=device_snapshots),
    route("/v1/devices/{device_id}/snapshot", POST=take_snapshot),
    route("/v1/snapshots/{snapshot_id}", GET=get_snapshot),
    route("/v1/events", GET=list_events),
    route("/v1/alarms", GET=list_alarms),
    route("/v1/alarms/{alarm_id}", GET=get_alarm),
    *(route(f"/v1/alarms/{{alarm_id}}/{name}", POST=_action(name)) for name in ACTIONS),
]
