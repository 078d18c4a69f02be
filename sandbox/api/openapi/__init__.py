"""The OpenAPI 3.1 document of every surface: the auth server, the Partner API, the CHeKT
Apps API and the sandbox's control API, plus the webhooks it sends, served at
``/openapi.json``. It is built from the definitions the handlers validate with, and the test
suite checks every response it sees against it. Client generators take it with default
settings: every object and enum they would make a class of is a named component."""

from __future__ import annotations

import copy
from functools import cache, lru_cache
from typing import Any

from sandbox._version import __version__
from sandbox.api.openapi import (
    apps,
    auth,
    chaos,
    control,
    dealer,
    dealer_records,
    events,
    insights,
    live,
    media,
    partner,
    record,
)
from sandbox.api.openapi.schema import ERROR, TIME_ZONE, json_content, named, obj
from sandbox.api.openapi.webhooks import webhooks
from sandbox.auth.clients import APPS_SCOPES, PARTNER_SCOPES
from sandbox.auth.codes import OIDC_SCOPES


def _operation_ids(paths: dict[str, Any]) -> None:
    """Stable ids for client generators: the method and the path's fixed segments."""
    for path, operations in paths.items():
        words = [w for w in path.strip("/").split("/") if not w.startswith("{")]
        words = [w for w in words if w not in ("partner", "ext", "v1", "_sandbox", ".well-known")]
        name = "_".join(w.replace("-", "_").replace(".", "_") for w in words)
        item = "_item" if path.endswith("}") else ""
        for method, op in operations.items():
            prefix = "sandbox_" if path.startswith("/_sandbox") else ""
            prefix = "apps_" if path.startswith("/v1/") else prefix
            prefix = "dealer_" if path.startswith("/ext/v1/") else prefix
            op["operationId"] = f"{prefix}{method}_{name}{item}"


def _refusals(paths: dict[str, Any]) -> None:
    """What any operation may answer before it runs: the request limits (with the envelope,
    also on the auth server), and an envelope for anything else it does not list."""
    for operations in paths.values():
        for op in operations.values():
            for status in ("408", "413", "431"):
                op["responses"].setdefault(
                    status, {"description": "a request limit", **json_content(ERROR)}
                )
            op["responses"].setdefault(
                "default", {"description": "an error", **json_content(ERROR)}
            )


LIMITED = ("/partner/v1/", "/v1/", "/ext/v1/")  # the surfaces CHeKT's rate limits cover
_INTEGER_HEADER = {"schema": {"type": "string", "pattern": "^[0-9]+$"}}
RATE_HEADERS = {
    "X-RateLimit-Limit": {
        "description": "requests a minute the client's tier allows (rate limits on)",
        **_INTEGER_HEADER,
    },
    "X-RateLimit-Remaining": {
        "description": "whole requests left in the client's bucket (rate limits on)",
        **_INTEGER_HEADER,
    },
    "X-RateLimit-Reset": {
        "description": "unix seconds on the sandbox clock when the bucket is full again",
        **_INTEGER_HEADER,
    },
}


def _rate_limited(paths: dict[str, Any]) -> None:
    """Every operation of a limited surface may answer 429 ``rate_limited`` with
    ``Retry-After``, and with rate limits on every answer carries the X-RateLimit-* headers."""
    for path, operations in paths.items():
        if not path.startswith(LIMITED):
            continue
        for op in operations.values():
            for response in op["responses"].values():
                response["headers"] = {**response.get("headers", {}), **RATE_HEADERS}
            op["responses"]["429"] = {
                "description": "`rate_limited`: the client's bucket is empty (rate limits on: "
                "free 60/min burst 5, pro 600/min burst 30, enterprise 3000/min burst 200)",
                "headers": {
                    "Retry-After": {
                        "description": "whole seconds until a request is allowed again",
                        "required": True,
                        **_INTEGER_HEADER,
                    },
                    **RATE_HEADERS,
                },
                **json_content(ERROR),
            }


ERROR_SCHEMA = obj(
    ("error",),
    error=named(
        "ErrorDetail",
        obj(
            ("code", "message", "request_id"),
            code={"type": "string"},
            message={"type": "string"},
            request_id={"type": "string"},
            field={"type": "string"},
            detail={
                "type": ["string", "null"],
                "description": "on the dealer API (/ext/v1) only: the field at fault, or null",
            },
        ),
    ),
)


def _lift(node: Any, named: dict[str, Any]) -> Any:
    """Move every titled schema into ``named`` under its title, leaving a reference, so
    generated classes are named after it rather than after where it was used."""
    if isinstance(node, list):
        return [_lift(item, named) for item in node]
    if not isinstance(node, dict):
        return node
    lifted = {k: v if k == "examples" else _lift(v, named) for k, v in node.items()}
    title = lifted.get("title")
    if not isinstance(title, str):
        return lifted
    if named.setdefault(title, lifted) != lifted:
        raise ValueError(f"two different schemas are titled {title!r}")
    return {"$ref": f"#/components/schemas/{title}"}


THIS = {
    "/openapi.json": {
        "get": {
            "tags": ["Sandbox control"],
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    **json_content({"title": "OpenApiDocument", "type": "object"}),
                }
            },
        }
    }
}


@lru_cache(maxsize=8)
def document(issuer: str) -> dict[str, Any]:
    """Built once per issuer; callers must not change it. Only the servers and the OAuth
    URLs name the issuer: the rest is :func:`issuer_free`'s, shared."""
    base = issuer.rstrip("/")
    shared = issuer_free()
    scopes = {scope: scope for scope in (*PARTNER_SCOPES, *OIDC_SCOPES)}
    oauth2 = {
        "type": "oauth2",
        "description": "How to get the access tokens the bearer scheme takes",
        "flows": {
            "clientCredentials": {"tokenUrl": f"{base}/oauth/token", "scopes": scopes},
            "authorizationCode": {
                "authorizationUrl": f"{base}/authorize",
                "tokenUrl": f"{base}/oauth/token",
                "refreshUrl": f"{base}/oauth/token",
                "scopes": scopes,
            },
        },
    }
    components = shared["components"]
    return {
        **shared,
        "servers": [{"url": base}],
        "components": {
            **components,
            "securitySchemes": {**components["securitySchemes"], "oauth2": oauth2},
        },
    }


@cache
def issuer_free() -> dict[str, Any]:
    """The document without the parts that name an issuer (its servers, the OAuth flows):
    built once per process, as it is the same for every sandbox a test process starts, and
    all that checks of requests and responses against it need. Callers must not change it."""
    paths = {
        **auth.paths(),
        **partner.paths(),
        **events.paths(),
        **apps.paths(),
        **dealer.paths(),
        **dealer_records.paths(),
        **live.paths(),
        **control.paths(),
        **chaos.paths(),
        **insights.paths(),
        **record.paths(),
        **media.paths(),
        **copy.deepcopy(THIS),
    }
    _operation_ids(paths)
    _refusals(paths)
    _rate_limited(paths)
    schemas: dict[str, Any] = {}
    paths = _lift(paths, schemas)
    hooks = _lift(webhooks(), schemas)
    base_schemas = _lift(
        {"Error": ERROR_SCHEMA, **partner.schemas(), "TimeZone": TIME_ZONE}, schemas
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chekt-sandbox",
            "version": __version__,
            "description": "A local, offline CHeKT for partner integration tests: the auth "
            "server, the Partner API, the CHeKT Apps API, the dealer API, the sandbox's control "
            "API and the webhooks it sends.",
        },
        "servers": [],
        "tags": [
            {"name": "Auth server", "description": "tokens, sign-in, discovery"},
            {"name": "Partner API", "description": "CHeKT's Partner API, simulated"},
            {
                "name": "Apps API",
                "description": "the CHeKT Apps Public API (/v1): an app's API key, one dealer; "
                "lists are bare arrays with X-Total-Count, except /v1/events (a cursor page)",
            },
            {
                "name": "Dealer API",
                "description": "the dealer Public API (/ext/v1): a dealer API key; shapes as "
                "the live service sends them (bare arrays)",
            },
            {"name": "Sandbox control", "description": "drive and inspect the sandbox"},
            {"name": "Webhooks", "description": "what the sandbox POSTs to subscriptions"},
        ],
        "paths": paths,
        "webhooks": hooks,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (chekt_test_...) or an access token. Scopes: "
                    + ", ".join(PARTNER_SCOPES),
                },
                apps.APP_KEY: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "chekt_test_...",
                    "description": "An app's API key, which reaches one dealer; the Apps API "
                    "(/v1) takes nothing else (an access token there is refused with 401 "
                    "invalid_api_key). Scopes: " + ", ".join(APPS_SCOPES),
                },
                dealer.DEALER_KEY: dealer.SECURITY_SCHEME,
                events.EVENT_KEY_API: events.SECURITY_SCHEME,
            },
            "schemas": {**base_schemas, **dict(sorted(schemas.items()))},
        },
    }
