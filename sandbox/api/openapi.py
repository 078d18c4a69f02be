"""The OpenAPI 3.1 document of the auth server and the Partner API, served at
``/openapi.json``. It is built from the same ``Resource`` and ``Field`` definitions the
handlers validate with, so the document cannot drift from the code."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox._version import __version__
from sandbox.api.common import issuer_of, reply, route
from sandbox.auth.clients import PARTNER_SCOPES
from sandbox.world import dealers, sites, subscriptions
from sandbox.world.fields import Field
from sandbox.world.resources import CONTACT, DEVICE, SITE, STATION, Resource

_TYPES = {int: "integer", str: "string", float: "string", list: "array"}
_NO_CONTROL = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def _field(f: Field) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": _TYPES[f.kind]}
    if f.kind is str:
        schema.update(maxLength=f.max_length, pattern=_NO_CONTROL)
        if f.min_length:
            schema["minLength"] = f.min_length
        if f.required:
            schema.update(
                minLength=1,
                pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*\S[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$",
            )
        if f.pattern is not None:
            schema["pattern"] = f"^(?:{f.pattern.pattern})$"
    if f.name == "url":  # a webhook destination
        schema["pattern"] = (
            r"^https?://[a-z][a-z0-9-]*(\.[a-z0-9-]+)*(:[1-9][0-9]{0,3})?(/[!-~]*)?$"
        )
    if f.kind is list:
        schema["items"] = {"type": "string", "enum": list(subscriptions.EVENT_TYPES)}
    if f.choices is not None:
        schema = {"enum": list(f.choices)}
    if f.minimum is not None:
        schema["minimum"] = f.minimum
    if f.maximum is not None:
        schema["maximum"] = f.maximum
    if not f.required:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def _body(fields: tuple[Field, ...], partial: bool = False) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: _field(f) for f in fields},
        "required": [] if partial else [f.name for f in fields if f.required],
    }


def _object(resource: Resource) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name, kind in resource.columns.items():
        props[name] = {"type": [_TYPES[kind], "null"]}
    return {"type": "object", "properties": props}  # ?fields= may project any subset


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    scope: str | None,
    ok: int,
    result: dict[str, Any] | None,
    body: dict[str, Any] | None = None,
    params: tuple[str, ...] = (),
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
            for p in params
        ],
        "responses": {
            str(ok): {"description": "success", **(_json(result) if result else {})},
            "default": {"description": "an error", **_json({"$ref": "#/components/schemas/Error"})},
        },
    }
    if scope is not None:
        operation["security"] = [{"bearer": [scope]}]
        operation["description"] = f"Needs the `{scope}` scope."
    if body is not None:
        operation["requestBody"] = {"required": True, **_json(body)}
    return operation


def _listed(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


def document(issuer: str) -> dict[str, Any]:
    d = ("dealer_id",)
    ds = ("dealer_id", "site_id")
    dealer = "/partner/v1/dealers/{dealer_id}"
    site = dealer + "/sites/{site_id}"
    ref = {
        r.name: {"$ref": f"#/components/schemas/{r.name.title().replace(' ', '')}"}
        for r in (SITE, CONTACT, DEVICE, STATION)
    }
    bulk = {
        "type": "object",
        "required": ["success_count", "failure_count", "results"],
        "properties": {
            "success_count": {"type": "integer"},
            "failure_count": {"type": "integer"},
            "results": {"type": "array", "items": {"type": "object"}},
        },
    }
    dealer_schema = {
        "type": "object",
        "required": ["dealer_id", "company_name", "created_at"],
        "properties": {
            "dealer_id": {"type": "integer"},
            "external_dealer_id": {"type": ["string", "null"]},
            "company_name": {"type": "string"},
            "created_at": {"type": "string"},
        },
    }
    arming = {
        "type": "object",
        "required": ["site_id", "security_type"],
        "properties": {"site_id": {"type": "integer"}, "security_type": {"type": "integer"}},
    }
    webhook = {
        "type": "object",
        "required": ["webhook_id", "url", "events", "status"],
        "properties": {
            "webhook_id": {"type": "string"},
            "url": {"type": "string"},
            "events": {"type": "array"},
            "status": {"type": "string"},
        },
    }
    paths: dict[str, dict[str, Any]] = {
        "/partner/v1/dealers/connect": {
            "put": _op(
                "Connect the signed-in dealer admin's dealer",
                None,
                200,
                dealer_schema,
                _body(
                    (
                        Field("external_dealer_id", required=True),
                        Field("company_name", required=True),
                    )
                ),
            )
        },
        dealer: {
            "get": _op("A dealer", "read:dealer", 200, dealer_schema, params=d),
            "patch": _op(
                "Update a dealer",
                "update:dealer",
                200,
                dealer_schema,
                _body(dealers.DEALER_FIELDS, partial=True),
                params=d,
            ),
            "put": _op(
                "Replace a dealer's details",
                "update:dealer",
                200,
                dealer_schema,
                _body(dealers.DEALER_FIELDS),
                params=d,
            ),
        },
        dealer + "/connect": {
            "delete": _op("Disconnect a dealer", "update:dealer", 204, None, params=d)
        },
        site + "/arming-settings": {
            "get": _op("Arming settings", "read:sites", 200, arming, params=ds),
            "patch": _op(
                "Set the security type",
                "update:sites",
                200,
                arming,
                _body(sites.ARMING_FIELDS),
                params=ds,
            ),
            "put": _op(
                "Set the security type",
                "update:sites",
                200,
                arming,
                _body(sites.ARMING_FIELDS),
                params=ds,
            ),
        },
        site + "/devices": {
            "post": _op(
                "Create devices (bulk)",
                "create:devices",
                201,
                bulk,
                {"type": "array", "minItems": 1, "items": _body(DEVICE.fields)},
                params=ds,
            ),
            "get": _op("List devices", "read:devices", 200, _listed(ref["device"]), params=ds),
            "patch": _op(
                "Update devices (bulk), each named by external_device_id",
                "update:devices",
                200,
                bulk,
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        **_body(DEVICE.fields, partial=True),
                        "required": ["external_device_id"],
                    },
                },
                params=ds,
            ),
            "delete": {
                **_op("Delete devices (bulk)", "delete:devices", 200, bulk, params=ds),
                "parameters": [
                    *_op("", None, 200, None, params=ds)["parameters"],
                    {
                        "name": "external_device_ids",
                        "in": "query",
                        "required": True,
                        "description": "comma-separated external_device_id values",
                        "schema": {"type": "string", "pattern": r"^[^\s/?#,]+(,[^\s/?#,]+)*$"},
                    },
                ],
            },
        },
        site + "/devices/{device_id}": {
            "get": _op("A device", "read:devices", 200, ref["device"], params=(*ds, "device_id"))
        },
        "/partner/v1/webhooks": {
            "post": _op(
                "Subscribe to webhooks",
                "update:sites",
                201,
                webhook,
                _body(subscriptions.SUBSCRIPTION_FIELDS),
            ),
            "get": _op("List subscriptions", "read:sites", 200, _listed(webhook)),
        },
    }
    for resource, noun, path, parent in (
        (SITE, "sites", dealer + "/sites", d),
        (STATION, "monitoring_stations", dealer + "/monitoring-stations", d),
        (CONTACT, "site_contacts", site + "/contacts", ds),
    ):
        item = (*parent, resource.id_column)
        paths[path] = {
            "get": _op(
                f"List {resource.name}s",
                f"read:{noun}",
                200,
                _listed(ref[resource.name]),
                params=parent,
            ),
            "post": _op(
                f"Create a {resource.name}",
                f"create:{noun}",
                201,
                ref[resource.name],
                _body(resource.fields),
                params=parent,
            ),
        }
        paths[path + "/{" + resource.id_column + "}"] = {
            "get": _op(f"A {resource.name}", f"read:{noun}", 200, ref[resource.name], params=item),
            "patch": _op(
                f"Update a {resource.name}",
                f"update:{noun}",
                200,
                ref[resource.name],
                _body(resource.fields, partial=True),
                params=item,
            ),
            "put": _op(
                f"Replace a {resource.name}",
                f"update:{noun}",
                200,
                ref[resource.name],
                _body(resource.fields),
                params=item,
            ),
            "delete": _op(f"Delete a {resource.name}", f"delete:{noun}", 204, None, params=item),
        }
    text = {"type": "string", "minLength": 1, "pattern": "^[!-~]+$"}
    # the machine grants; authorization_code, refresh_token and the RFC 7523 jwt-bearer
    # grant are served too (see the README), with the fields RFC 6749 / 7523 give them
    token_form = {
        "oneOf": [
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["grant_type", "client_id", "client_secret"],
                "properties": {
                    "grant_type": {"const": "client_credentials"},
                    "client_id": text,
                    "client_secret": text,
                    "scope": text,
                    "audience": text,
                },
            },
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["grant_type", "client_assertion_type", "client_assertion"],
                "properties": {
                    "grant_type": {"const": "client_credentials"},
                    "client_assertion_type": {
                        "const": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                    },
                    "client_assertion": text,
                    "audience": text,
                    "scope": text,
                },
            },
        ]
    }
    paths["/oauth/token"] = {
        "post": {
            "summary": "Issue tokens (client credentials, assertion, authorization code, refresh)",
            "requestBody": {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": token_form}},
            },
            "responses": {
                "200": {
                    "description": "tokens",
                    **_json({"type": "object", "required": ["access_token"]}),
                },
                "default": {
                    "description": "RFC 6749 error",
                    **_json(
                        {
                            "type": "object",
                            "required": ["error"],
                            "properties": {
                                "error": {"type": "string"},
                                "error_description": {"type": "string"},
                            },
                        }
                    ),
                },
            },
        }
    }
    paths["/.well-known/jwks.json"] = {
        "get": {
            "summary": "The sandbox's signing keys",
            "responses": {
                "200": {"description": "JWKS", **_json({"type": "object", "required": ["keys"]})}
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CHeKT sandbox: auth server and Partner API",
            "version": __version__,
            "description": "A local, offline CHeKT for partner integration tests.",
        },
        "servers": [{"url": issuer.rstrip("/")}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (chekt_test_...) or an access token. Scopes: "
                    + ", ".join(PARTNER_SCOPES),
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message", "request_id"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "request_id": {"type": "string"},
                                "field": {"type": "string"},
                            },
                        }
                    },
                },
                **{
                    r.name.title().replace(" ", ""): _object(r)
                    for r in (SITE, CONTACT, DEVICE, STATION)
                },
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    return reply(document(issuer_of(request)))


routes = [route("/openapi.json", GET=openapi_json)]
