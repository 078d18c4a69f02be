"""The dealer API's record reads: the activity-log categories, the activity-log search (a
page of the record's happenings with an opaque cursor) and the signed media links of the
events it found (``events-video-urls``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import read_json, reply, route, services
from sandbox.api.dealer import PREFIX, dealer_api, dealer_of
from sandbox.auth.guard import Principal
from sandbox.errors import ValidationFailed
from sandbox.world import activity, event_media
from sandbox.world.fields import Field, validate
from sandbox.world.listing import parse_timestamp

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_EVENT_IDS = 100
SEARCH_FIELDS = (
    Field("start_time", required=True, max_length=64),
    Field("end_time", required=True, max_length=64),
    Field("site_id", kind=int, minimum=1),
    Field("limit", kind=int, minimum=1, maximum=MAX_LIMIT),
    Field("sort_by", choices=activity.SORT_BY),
    Field("sort_order", choices=activity.ORDERS),
    Field("category_id", kind=int, minimum=1),
    Field("cursor", max_length=1024),
)


@dealer_api
async def list_categories(request: Request, principal: Principal) -> Response:
    return reply(activity.categories())


def _search(body: Any) -> activity.Search:
    values = validate(body, SEARCH_FIELDS)
    start = parse_timestamp(values["start_time"], "start_time")
    end = parse_timestamp(values["end_time"], "end_time")
    if end <= start:
        raise ValidationFailed("end_time", "end_time must be after start_time")
    return activity.Search(
        start=start,
        end=end,
        site_id=values.get("site_id"),
        limit=values.get("limit") or DEFAULT_LIMIT,
        order=values.get("sort_order") or "desc",
        category_id=values.get("category_id"),
        cursor=values.get("cursor"),
    )


@dealer_api
async def search_activity(request: Request, principal: Principal) -> Response:
    """From ``start_time`` (inclusive) to ``end_time`` (exclusive), newest first unless
    ``sort_order`` is asc; ``page.cursor`` continues the same search (null at the end)."""
    query = _search(await read_json(request))
    world = services(request).world
    return reply(activity.search(world, dealer_of(principal), query))


def _event_ids(body: Any) -> list[int]:
    if not isinstance(body, dict) or set(body) != {"event_ids"}:
        raise ValidationFailed("event_ids", 'send {"event_ids": [<numeric event id>, ...]}')
    ids = body["event_ids"]
    if isinstance(ids, list) and 1 <= len(ids) <= MAX_EVENT_IDS:
        # JSON says 5.0 is the integer 5
        whole = [int(i) if isinstance(i, float) and i.is_integer() else i for i in ids]
        if all(type(i) is int and 1 <= i < 2**63 for i in whole):
            return whole
    raise ValidationFailed(
        "event_ids", f"event_ids must list 1 to {MAX_EVENT_IDS} event ids (integers ≥ 1)"
    )


@dealer_api
async def video_urls(request: Request, principal: Principal) -> Response:
    """Links to each event's clip, thumbnail and snapshots, valid ``expires_in`` seconds of
    sandbox time; an event without media, another dealer's or an unknown one gets nulls."""
    ids = _event_ids(await read_json(request))
    world = services(request).world
    found = event_media.of_events(world, dealer_of(principal), ids)
    return reply({"events": found, "expires_in": event_media.expires_in(world)})


routes = [
    route(PREFIX + "/activity-logs/categories", GET=list_categories),
    route(PREFIX + "/activity-logs/search", POST=search_activity),
    route(PREFIX + "/events-video-urls", POST=video_urls),
]
