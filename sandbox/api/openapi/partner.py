"""The Partner API's operations, made from the same field and resource definitions the
handlers validate with. Creates carry OpenAPI links to the created object's operations, so
clients (and schemathesis' stateful runs) can follow them."""

from __future__ import annotations

from typing import Any

from sandbox.api.openapi.schema import (
    SUBSCRIBED_EVENT,
    body,
    link,
    listed,
    named,
    obj,
    operation,
    query,
    resource_object,
)
from sandbox.world import dealers, sites, subscriptions
from sandbox.world.fields import EXTERNAL_ID
from sandbox.world.listing import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, patterns
from sandbox.world.resources import CONTACT, DEVICE, SITE, STATION, Resource

DEALER = "/partner/v1/dealers/{dealer_id}"
SITE_PATH = DEALER + "/sites/{site_id}"
WEBHOOK = "/partner/v1/webhooks/{webhook_id}"
RESOURCES = (SITE, CONTACT, DEVICE, STATION)
TOTAL = {
    "X-Total-Count": {
        "description": "how many items match, over all pages",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


def schema_name(resource: Resource) -> str:
    return resource.name.title().replace(" ", "")


def _ref(resource: Resource) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{schema_name(resource)}"}


PAGING = (
    query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        "page size",
    ),
    query(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        "items to skip",
    ),
)


def _list_queries(resource: Resource) -> tuple[dict[str, Any], ...]:
    grammar = patterns(resource.columns)
    return (
        *PAGING,
        _fields(resource),
        query(
            "filter",
            {"type": "string", "pattern": grammar["filter"]},
            "`field:op:value`, several joined with commas; op is one of eq ne gt lt ge le "
            "like (`*` is the wildcard of like); integers compare with integers and "
            "timestamps with ISO 8601 times",
        ),
        query(
            "sort",
            {"type": "string", "pattern": grammar["sort"]},
            "fields joined with commas, `-` before a field for descending",
        ),
    )


def _fields(resource: Resource) -> dict[str, Any]:
    return query(
        "fields",
        {"type": "string", "pattern": patterns(resource.columns, resource.table)["fields"]},
        f"only these fields, joined with commas; each may be qualified with the table, as in "
        f"`{resource.table}.{next(iter(resource.columns))}`",
    )


def _links(item_path: str, id_name: str, parent: tuple[str, ...] = ()) -> dict[str, Any]:
    """From a created object to reading, changing and deleting it: its id comes from the
    response, its parents' ids from the create request's path."""
    parameters = {
        **{f"path.{p}": f"$request.path.{p}" for p in parent},
        f"path.{id_name}": f"$response.body#/{id_name}",
    }
    links = {verb.title(): link(item_path, verb, parameters) for verb in ("get", "patch", "delete")}
    if item_path == SITE_PATH:  # and on to what a new site holds
        links["AddContact"] = link(SITE_PATH + "/contacts", "post", parameters)
        links["AddDevices"] = link(SITE_PATH + "/devices", "post", parameters)
        links["ArmingSettings"] = link(SITE_PATH + "/arming-settings", "patch", parameters)
    return links


def _dealer_paths() -> dict[str, Any]:
    d = ("dealer_id",)
    ds = ("dealer_id", "site_id")
    dealer = named(
        "Dealer",
        obj(
            ("dealer_id", "company_name", "created_at"),
            dealer_id={"type": "integer"},
            external_dealer_id={"type": ["string", "null"]},
            company_name={"type": "string"},
            created_at={"type": "string"},
        ),
    )
    arming = named(
        "ArmingSettings",
        obj(
            ("site_id", "security_type"),
            site_id={"type": "integer"},
            security_type={"type": "integer"},
        ),
    )
    set_arming = body(sites.ARMING_FIELDS, title="ArmingSettingsInput")
    connect = body(dealers.CONNECT_FIELDS, title="DealerConnectInput")
    return {
        "/partner/v1/dealers/connect": {
            "put": operation(
                "Connect the signed-in dealer admin's dealer", None, 200, dealer, connect
            )
        },
        DEALER: {
            "get": operation("A dealer", "read:dealer", 200, dealer, params=d),
            "patch": operation(
                "Update a dealer",
                "update:dealer",
                200,
                dealer,
                body(dealers.DEALER_FIELDS, partial=True, title="DealerPatch"),
                params=d,
            ),
            "put": operation(
                "Replace a dealer's details",
                "update:dealer",
                200,
                dealer,
                body(dealers.DEALER_FIELDS, title="DealerInput"),
                params=d,
            ),
        },
        DEALER + "/connect": {
            "delete": operation("Disconnect a dealer", "update:dealer", 204, None, params=d)
        },
        SITE_PATH + "/arming-settings": {
            "get": operation("Arming settings", "read:sites", 200, arming, params=ds),
            "patch": operation(
                "Set the security type", "update:sites", 200, arming, set_arming, params=ds
            ),
            "put": operation(
                "Set the security type", "update:sites", 200, arming, set_arming, params=ds
            ),
        },
    }


def _bulk_devices() -> dict[str, Any]:
    ds = ("dealer_id", "site_id")
    report = named(
        "BulkReport",
        obj(
            ("success_count", "failure_count", "results"),
            success_count={"type": "integer"},
            failure_count={"type": "integer"},
            results=listed(named("BulkItemResult", {"type": "object"})),
        ),
    )
    change = body(DEVICE.fields, partial=True, title="DeviceChange")
    changes = {
        "type": "array",
        "minItems": 1,
        "items": {**change, "required": ["external_device_id"]},
    }
    one = EXTERNAL_ID.pattern
    ids = query(
        "external_device_ids",
        {"type": "string", "pattern": f"^{one}(?:,{one})*$"},
        "external_device_id values joined with commas",
        required=True,
    )
    return {
        "post": operation(
            "Create devices (bulk)",
            "create:devices",
            201,
            report,
            {"type": "array", "minItems": 1, "items": body(DEVICE.fields, title="DeviceInput")},
            params=ds,
        ),
        "get": operation(
            "List devices",
            "read:devices",
            200,
            listed(_ref(DEVICE)),
            params=ds,
            queries=_list_queries(DEVICE),
            headers=TOTAL,
        ),
        "patch": operation(
            "Update devices (bulk), each named by external_device_id",
            "update:devices",
            200,
            report,
            changes,
            params=ds,
        ),
        "delete": operation(
            "Delete devices (bulk)", "delete:devices", 200, report, params=ds, queries=(ids,)
        ),
    }


def _resource_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for resource, noun, collection, parent in (
        (SITE, "sites", DEALER + "/sites", ("dealer_id",)),
        (STATION, "monitoring_stations", DEALER + "/monitoring-stations", ("dealer_id",)),
        (CONTACT, "site_contacts", SITE_PATH + "/contacts", ("dealer_id", "site_id")),
        (DEVICE, "devices", SITE_PATH + "/devices", ("dealer_id", "site_id")),
    ):
        item = (*parent, resource.id_column)
        item_path = f"{collection}/{{{resource.id_column}}}"
        ref = _ref(resource)
        if resource is DEVICE:
            paths[collection] = _bulk_devices()
        else:
            create = operation(
                f"Create a {resource.name}",
                f"create:{noun}",
                201,
                ref,
                body(resource.fields, title=f"{schema_name(resource)}Input"),
                params=parent,
            )
            create["responses"]["201"]["links"] = _links(item_path, resource.id_column, parent)
            paths[collection] = {
                "get": operation(
                    f"List {resource.name}s",
                    f"read:{noun}",
                    200,
                    listed(ref),
                    params=parent,
                    queries=_list_queries(resource),
                    headers=TOTAL,
                ),
                "post": create,
            }
        read = operation(
            f"A {resource.name}",
            f"read:{noun}",
            200,
            ref,
            params=item,
            queries=(_fields(resource),),
        )
        if resource is DEVICE:  # devices change only in bulk
            paths[item_path] = {"get": read}
            continue
        paths[item_path] = {
            "get": read,
            "patch": operation(
                f"Update a {resource.name}",
                f"update:{noun}",
                200,
                ref,
                body(resource.fields, partial=True, title=f"{schema_name(resource)}Patch"),
                params=item,
            ),
            "put": operation(
                f"Replace a {resource.name}",
                f"update:{noun}",
                200,
                ref,
                body(resource.fields, title=f"{schema_name(resource)}Input"),
                params=item,
            ),
            "delete": operation(
                f"Delete a {resource.name}", f"delete:{noun}", 204, None, params=item
            ),
        }
    return paths


def webhook_schema(with_secret: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "webhook_id": {"type": "string"},
        "url": {"type": "string"},
        "events": {"type": "array", "items": SUBSCRIBED_EVENT},
        "status": {"type": "string"},
        "profile": {"type": "string"},
    }
    required: tuple[str, ...] = ("webhook_id", "url", "events", "status")
    if with_secret:
        properties["secret"] = {"type": "string"}
        required += ("secret",)
    return named("WebhookWithSecret" if with_secret else "Webhook", obj(required, **properties))


def webhook_change(partial: bool) -> dict[str, Any]:
    """A subscription's change: never its secret (only rotation changes it), and url, status
    and profile cannot be cleared."""
    changeable = tuple(f for f in subscriptions.SUBSCRIPTION_FIELDS if f.name != "secret")
    title = "WebhookPatch" if partial else "WebhookReplace"
    return body(changeable, partial=partial, not_null=("url", "status", "profile"), title=title)


def _webhook_paths() -> dict[str, Any]:
    w = ("webhook_id",)
    fields = subscriptions.SUBSCRIPTION_FIELDS
    create = operation(
        "Subscribe to webhooks",
        "update:sites",
        201,
        webhook_schema(True),
        body(fields, title="WebhookInput"),
    )
    create["responses"]["201"]["links"] = _links(WEBHOOK, "webhook_id")
    return {
        "/partner/v1/webhooks": {
            "post": create,
            "get": operation(
                "List subscriptions", "read:sites", 200, listed(webhook_schema()), headers=TOTAL
            ),
        },
        WEBHOOK: {
            "get": operation("A subscription", "read:sites", 200, webhook_schema(), params=w),
            "patch": operation(
                "Update a subscription (its secret changes only by rotation)",
                "update:sites",
                200,
                webhook_schema(),
                webhook_change(partial=True),
                params=w,
            ),
            "put": operation(
                "Replace a subscription (its secret changes only by rotation)",
                "update:sites",
                200,
                webhook_schema(),
                webhook_change(partial=False),
                params=w,
            ),
            "delete": operation("Unsubscribe", "update:sites", 204, None, params=w),
        },
        WEBHOOK + "/rotate-secret": {
            "post": operation(
                "Give a subscription a new signing secret",
                "update:sites",
                200,
                webhook_schema(True),
                params=w,
            )
        },
        WEBHOOK + "/test": {
            "post": operation(
                "Send this subscription a sample alarm.created marked test: true",
                "update:sites",
                202,
                named(
                    "TestEventSent",
                    obj(
                        ("event_id", "webhook_id"),
                        event_id={"type": "string"},
                        webhook_id={"type": "string"},
                    ),
                ),
                params=w,
            )
        },
    }


def paths() -> dict[str, Any]:
    return {**_dealer_paths(), **_resource_paths(), **_webhook_paths()}


def schemas() -> dict[str, Any]:
    return {schema_name(r): resource_object(r) for r in RESOURCES}
