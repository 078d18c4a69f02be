"""The Partner API surface, ``/partner/v1``: parse → guard → domain call → serialize.

Every handler is wrapped by :func:`endpoint`, which authenticates, checks the scope and
applies ``Idempotency-Key`` semantics to writes; reach and existence checks go through the
domain so out-of-reach dealers answer exactly like absent ones.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.api.common import (
    Handler,
    actor_of,
    check_destination,
    no_content,
    path_id,
    query_lists,
    read_json,
    reply,
    route,
    services,
)
from sandbox.api.guarded import endpoint
from sandbox.api.replay import replayable
from sandbox.auth.guard import Principal
from sandbox.errors import Conflict, PermissionDenied, ValidationFailed
from sandbox.world import (
    World,
    catalog,
    dealers,
    devices,
    events,
    record,
    resources,
    sites,
    subscriptions,
)
from sandbox.world.fields import EXTERNAL_ID, validate
from sandbox.world.listing import parse_list_query, project
from sandbox.world.resources import CONTACT, DEVICE, SITE, STATION, Resource


def _world(request: Request) -> World:
    return services(request).world


def _dealer(request: Request, principal: Principal) -> int:
    dealer_id = path_id(request, "dealer_id")
    dealers.require_reach(
        _world(request), dealer_id, client_id=principal.client_id, own_dealer=principal.dealer_id
    )
    return dealer_id


def _site(request: Request, principal: Principal) -> int:
    dealer_id = _dealer(request, principal)
    site_id = path_id(request, "site_id")
    resources.find_row(_world(request), SITE, dealer_id, site_id)
    return site_id


def _listed(items: list[dict[str, Any]], total: int) -> Response:
    return reply(items, headers={"X-Total-Count": str(total)})


# ---- dealers -------------------------------------------------------------------------------


@endpoint(None)
async def connect_dealer(request: Request, principal: Principal) -> Response:
    """Link the signed-in dealer admin's dealer to the platform partner that holds the token."""
    if principal.tier != "user":
        raise PermissionDenied(
            "connecting a dealer needs a dealer-admin user token from the authorization code "
            "flow (GET /authorize), not an app credential"
        )
    if principal.user_role != "dealer_admin" or principal.user_dealer_id is None:
        raise PermissionDenied("only a dealer admin can connect their dealer")
    if principal.kind != "platform_partner":
        raise PermissionDenied("only a platform partner's application can connect dealers")
    values = validate(await read_json(request), dealers.CONNECT_FIELDS)
    world = _world(request)
    dealer_id = principal.user_dealer_id
    dealers.connect(world, dealer_id, principal.client_id, values["external_dealer_id"])
    return reply(dealers.get(world, dealer_id, principal.client_id))


@endpoint("read:dealer")
async def get_dealer(request: Request, principal: Principal) -> Response:
    dealer_id = _dealer(request, principal)
    return reply(dealers.get(_world(request), dealer_id, principal.client_id))


@endpoint("update:dealer")
async def update_dealer(request: Request, principal: Principal) -> Response:
    dealer_id = _dealer(request, principal)
    values = validate(
        await read_json(request),
        dealers.DEALER_FIELDS,
        partial=request.method == "PATCH",
        read_only=dealers.DEALER_READ_ONLY,
    )
    return reply(dealers.update(_world(request), dealer_id, principal.client_id, values))


@endpoint("update:dealer")
async def disconnect_dealer(request: Request, principal: Principal) -> Response:
    dealer_id = _dealer(request, principal)
    if principal.kind != "platform_partner":
        raise PermissionDenied("only a platform partner's credentials can disconnect a dealer")
    dealers.disconnect(_world(request), dealer_id, principal.client_id)
    return no_content()


# ---- generic resources under a dealer or a site ----------------------------------------------


Parent = Callable[[Request, Principal], int]


def _lister(resource: Resource, noun: str, parent: Parent) -> Handler:
    @endpoint(f"read:{noun}")
    async def list_all(request: Request, principal: Principal) -> Response:
        """Rendered lists are kept until the next write: polling a list is the hot path."""
        parent_id = parent(request, principal)
        s = services(request)
        version = s.world.store.data_version()
        key = (resource.name, parent_id, request.scope["query_string"])
        rendered = s.list_cache.get(version, key)
        if rendered is None:
            query = parse_list_query(query_lists(request), resource.columns, table=resource.table)
            items, total = resources.list_items(s.world, resource, parent_id, query)
            rendered = (bytes(reply(items).body), total)
            s.list_cache.put(key, rendered)
        body, total = rendered
        response = Response(
            body, media_type="application/json", headers={"X-Total-Count": str(total)}
        )
        return replayable(request, response, version)

    return list_all


def _collection(resource: Resource, noun: str, parent: Parent) -> Route:
    @endpoint(f"create:{noun}")
    async def create(request: Request, principal: Principal) -> Response:
        parent_id = parent(request, principal)
        values = validate(await read_json(request), resource.fields, read_only=resource.read_only)
        world = _world(request)
        if resource is SITE:
            return reply(sites.create(world, parent_id, values), 201)
        with world.store.transaction():
            item_id = resources.insert(world, resource, parent_id, values)
        return reply(resources.get(world, resource, parent_id, item_id), 201)

    return route(_PATHS[resource], GET=_lister(resource, noun, parent), POST=create)


def _item(resource: Resource, noun: str, parent: Parent) -> Route:
    id_name = resource.id_column

    @endpoint(f"read:{noun}")
    async def read(request: Request, principal: Principal) -> Response:
        parent_id = parent(request, principal)
        item_id = path_id(request, id_name)
        item = resources.get(_world(request), resource, parent_id, item_id)
        query = parse_list_query(
            query_lists(request), resource.columns, known=("fields",), table=resource.table
        )
        return reply(project(item, query.fields))

    @endpoint(f"update:{noun}")
    async def change(request: Request, principal: Principal) -> Response:
        parent_id = parent(request, principal)
        item_id = path_id(request, id_name)
        partial = request.method == "PATCH"
        values = validate(
            await read_json(request), resource.fields, partial=partial, read_only=resource.read_only
        )
        if not partial:
            values = resources.full_replacement(resource, values)
        world = _world(request)
        if resource is SITE:
            return reply(sites.update(world, parent_id, item_id, values))
        with world.store.transaction():
            resources.update(world, resource, parent_id, item_id, values)
        return reply(resources.get(world, resource, parent_id, item_id))

    @endpoint(f"delete:{noun}")
    async def remove(request: Request, principal: Principal) -> Response:
        parent_id = parent(request, principal)
        resources.delete(_world(request), resource, parent_id, path_id(request, id_name))
        return no_content()

    if resource is DEVICE:
        return route(_PATHS[resource] + "/{device_id}", GET=read)
    return route(
        _PATHS[resource] + "/{" + id_name + "}", GET=read, PATCH=change, PUT=change, DELETE=remove
    )


_DEALER = "/partner/v1/dealers/{dealer_id}"
_PATHS = {
    SITE: _DEALER + "/sites",
    STATION: _DEALER + "/monitoring-stations",
    CONTACT: _DEALER + "/sites/{site_id}/contacts",
    DEVICE: _DEALER + "/sites/{site_id}/devices",
}


# ---- sites: arming settings, bulk devices --------------------------------------------------


@endpoint("read:sites")
async def get_arming(request: Request, principal: Principal) -> Response:
    dealer_id = _dealer(request, principal)
    return reply(sites.arming_settings(_world(request), dealer_id, path_id(request, "site_id")))


@endpoint("update:sites")
async def set_arming(request: Request, principal: Principal) -> Response:
    dealer_id = _dealer(request, principal)
    values = validate(
        await read_json(request),
        sites.ARMING_FIELDS,
        read_only=("site_id", "external_site_id", "name"),
    )
    site_id = path_id(request, "site_id")
    return reply(sites.set_arming(_world(request), dealer_id, site_id, values["security_type"]))


@endpoint("create:devices")
async def create_devices(request: Request, principal: Principal) -> Response:
    """Bulk create; every device that joins the site comes online (``device.online``)."""
    site_id = _site(request, principal)
    s = services(request)
    report = devices.create_many(s.world, site_id, await read_json(request))
    rng, actor = random.Random(), actor_of(request, principal, "partner")
    for result in report["results"]:
        if result["is_successful"]:
            overrides = {"site_id": site_id, "device_id": result["device_id"]}
            record.emit(s.world, rng, "device.online", overrides, actor=actor)
    return reply(report, 201)


@endpoint("update:devices")
async def update_devices(request: Request, principal: Principal) -> Response:
    site_id = _site(request, principal)
    return reply(devices.update_many(_world(request), site_id, await read_json(request)))


@endpoint("delete:devices")
async def delete_devices(request: Request, principal: Principal) -> Response:
    site_id = _site(request, principal)
    raw = request.query_params.get("external_device_ids", "")
    externals = raw.split(",") if raw else []
    if any(not EXTERNAL_ID.fullmatch(e) for e in externals):
        raise ValidationFailed(
            "external_device_ids", "external_device_ids takes external ids joined by commas"
        )
    return reply(devices.delete_many(_world(request), site_id, externals))


# ---- webhook subscriptions -----------------------------------------------------------------


@endpoint("update:sites")
async def create_webhook(request: Request, principal: Principal) -> Response:
    values = validate(
        await read_json(request),
        subscriptions.SUBSCRIPTION_FIELDS,
        read_only=subscriptions.READ_ONLY,
    )
    check_destination(request, values)
    s = services(request)
    created = subscriptions.create(
        s.world,
        principal.client_id,
        values,
        scopes=principal.scopes,
        cap=s.settings.max_webhooks_per_client,
    )
    return reply(created, 201)


@endpoint("read:sites")
async def list_webhooks(request: Request, principal: Principal) -> Response:
    items = subscriptions.list_for(_world(request), principal.client_id)
    return _listed(items, len(items))


@endpoint("read:sites")
async def get_webhook(request: Request, principal: Principal) -> Response:
    webhook_id = request.path_params["webhook_id"]
    return reply(subscriptions.get(_world(request), principal.client_id, webhook_id))


@endpoint("update:sites")
async def update_webhook(request: Request, principal: Principal) -> Response:
    values = validate(
        await read_json(request),
        subscriptions.SUBSCRIPTION_FIELDS,
        partial=request.method == "PATCH",
        read_only=subscriptions.READ_ONLY,
    )
    check_destination(request, values)
    webhook_id = request.path_params["webhook_id"]
    world = _world(request)
    return reply(
        subscriptions.update(world, principal.client_id, webhook_id, values, principal.scopes)
    )


@endpoint("update:sites")
async def delete_webhook(request: Request, principal: Principal) -> Response:
    subscriptions.delete(_world(request), principal.client_id, request.path_params["webhook_id"])
    return no_content()


@endpoint("update:sites")
async def rotate_webhook_secret(request: Request, principal: Principal) -> Response:
    webhook_id = request.path_params["webhook_id"]
    return reply(subscriptions.rotate_secret(_world(request), principal.client_id, webhook_id))


@endpoint("update:sites")
async def test_webhook(request: Request, principal: Principal) -> Response:
    """Send this subscription (and only it) a sample alarm.created marked ``"test": true``,
    built from the first site the caller reaches: never from data out of its reach."""
    s = services(request)
    webhook_id = request.path_params["webhook_id"]
    heard = subscriptions.reach(s.world, principal.client_id, webhook_id)
    for scopes, whose in ((principal.scopes, "this credential"), (heard, "the subscription")):
        if scopes is not None and not subscriptions.hears(scopes, "alarm.created"):
            needed = catalog.EVENT_SCOPES["alarm.created"]
            raise PermissionDenied(
                f"the test event is an alarm.created, which needs {' or '.join(needed)}, and "
                f"{whose} lacks it",
                scope=needed[0],
            )
    reachable = (
        [principal.dealer_id]
        if principal.dealer_id is not None
        else dealers.connected_dealers(s.world, principal.client_id)
    )
    site_id = sites.first_with_camera(s.world, reachable)
    if site_id is None:
        raise Conflict(
            "this credential reaches no site with a camera to build a test alarm from; connect "
            "a dealer that has one (PUT /partner/v1/dealers/connect) or add a camera to a site"
        )
    data = catalog.build(
        s.world, random.Random(), "alarm.created", {"test": True, "site_id": site_id}, s.base_url
    )
    event_id = events.off_record(s.world, "alarm.created", data, target_webhook_id=webhook_id)
    return reply({"event_id": event_id, "webhook_id": webhook_id}, 202)


routes = [
    route("/partner/v1/dealers/connect", PUT=connect_dealer),
    route(_DEALER, GET=get_dealer, PATCH=update_dealer, PUT=update_dealer),
    route(_DEALER + "/connect", DELETE=disconnect_dealer),
    _collection(SITE, "sites", _dealer),
    _item(SITE, "sites", _dealer),
    route(
        _DEALER + "/sites/{site_id}/arming-settings",
        GET=get_arming,
        PATCH=set_arming,
        PUT=set_arming,
    ),
    _collection(CONTACT, "site_contacts", _site),
    _item(CONTACT, "site_contacts", _site),
    route(
        _PATHS[DEVICE],
        POST=create_devices,
        GET=_lister(DEVICE, "devices", _site),
        PATCH=update_devices,
        DELETE=delete_devices,
    ),
    _item(DEVICE, "devices", _site),
    _collection(STATION, "monitoring_stations", _dealer),
    _item(STATION, "monitoring_stations", _dealer),
    route("/partner/v1/webhooks", POST=create_webhook, GET=list_webhooks),
    route(
        "/partner/v1/webhooks/{webhook_id}",
        GET=get_webhook,
        PATCH=update_webhook,
        PUT=update_webhook,
        DELETE=delete_webhook,
    ),
    route("/partner/v1/webhooks/{webhook_id}/rotate-secret", POST=rotate_webhook_secret),
    route("/partner/v1/webhooks/{webhook_id}/test", POST=test_webhook),
]
