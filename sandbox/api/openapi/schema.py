"""Building blocks of the OpenAPI document: schemas made from the handlers' own ``Field``
and ``Resource`` definitions, parameters and operations. A schema given a ``title`` (see
:func:`named`) becomes a component of that name, so client generators name its class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.net import URL_PATTERN
from sandbox.world import catalog, formats, subscriptions
from sandbox.world.fields import CONTROL, SPACE, Field, iana_timezone
from sandbox.world.resources import Resource

_TYPES = {int: "integer", str: "string", float: "string", list: "array"}
TEXT = {"type": "string", "minLength": 1, "pattern": "^[!-~]+$"}  # printable ASCII, no spaces
# every other path id is a positive integer
STRING_IDS = ("webhook_id", "event_id", "alarm_id", "snapshot_id")
ERROR = {"$ref": "#/components/schemas/Error"}
EVENT_TYPE = {"title": "EventType", "type": "string", "enum": list(catalog.EVENT_TYPES)}
# what a subscription lists: a catalogue type, or a name of its profile's own format
SUBSCRIBED_EVENT = {
    "title": "SubscribedEvent",
    "type": "string",
    "enum": list(subscriptions.EVENT_NAMES),
    "description": "an event type; a subscription of an older profile may also use its "
    "format's names ("
    + "; ".join(
        f"{profile}: {', '.join(formats.names(profile))}"
        for profile in ("legacy-guide", "dealer-v1")
    )
    + ")",
}
ENUM_TITLES = {"profile": "WebhookProfile", "status": "WebhookStatus"}  # else the field's name
# A shape, not the list: the server checks the name against its own time-zone database, which
# differs between machines and years, and a 600-value enum makes clumsy generated code (several
# names such as GMT+0, GMT-0 and GMT0 map to one identifier).
TIME_ZONE = {
    "type": "string",
    "format": "iana-time-zone",  # a name for fuzzers to learn (the suite teaches schemathesis)
    "maxLength": 64,
    "pattern": "^[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*$",
    "description": "an IANA time zone name, checked by the server against its tz database",
    "examples": ["America/New_York", "Europe/Berlin", "UTC"],
}


def field(f: Field, nullable: bool = True, title: str | None = None) -> dict[str, Any]:
    """``f`` as a JSON Schema; ``title`` names its enum when the field's name alone would
    clash (``status`` of a webhook is not ``status`` of a device)."""
    schema: dict[str, Any] = {"type": _TYPES[f.kind]}
    if f.kind is str:
        schema.update(maxLength=f.max_length, pattern=f"^[^{CONTROL}]*$")
        if f.min_length:
            schema["minLength"] = f.min_length
        if f.required:  # and not blank
            schema.update(
                minLength=max(1, f.min_length),
                pattern=f"^[^{CONTROL}]*[^{SPACE}{CONTROL}][^{CONTROL}]*$",
            )
        if f.pattern is not None:
            schema["pattern"] = f"^(?:{f.pattern.pattern})$"
    if f.name == "url":  # a webhook destination by name (an IP address is judged by policy)
        schema["pattern"] = URL_PATTERN
    if f.kind is list:
        schema["items"] = SUBSCRIBED_EVENT
    if f.check is iana_timezone:
        schema = {"$ref": "#/components/schemas/TimeZone"}
    if f.choices is not None:
        name = title or ENUM_TITLES.get(f.name, pascal(f.name))
        schema = {"title": name, "enum": list(f.choices)}
    if f.kind is int and f.choices is None:
        schema.update(minimum=f.lowest, maximum=f.highest)
    if not f.required and nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def pascal(name: str) -> str:
    return "".join(word.title() for word in name.split("_"))


def named(title: str, schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` as the component ``title``."""
    return {"title": title, **schema}


def body(
    fields: tuple[Field, ...],
    partial: bool = False,
    not_null: tuple[str, ...] = (),
    title: str | None = None,
    *,
    enums: Mapping[str, str] | None = None,
    given: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A request body of ``fields``: ``enums`` titles their closed sets, ``given`` spells out
    the fields whose rule is a check function the schema cannot read."""
    enums, given = enums or {}, given or {}
    return {
        **({"title": title} if title else {}),
        "type": "object",
        "additionalProperties": False,
        "properties": {
            f.name: given[f.name]
            if f.name in given
            else field(f, f.name not in not_null, enums.get(f.name))
            for f in fields
        },
        "required": [] if partial else [f.name for f in fields if f.required],
    }


def resource_object(resource: Resource) -> dict[str, Any]:
    props = {name: {"type": [_TYPES[kind], "null"]} for name, kind in resource.columns.items()}
    return {"type": "object", "properties": props}  # ?fields= may project any subset


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def error_response(description: str) -> dict[str, Any]:
    """A response with the error envelope, described (which codes, and when)."""
    return {"description": description, **json_content(ERROR)}


def obj(required: tuple[str, ...] = (), **properties: Any) -> dict[str, Any]:
    """A JSON object schema with these properties (``required`` among them)."""
    return {"type": "object", "required": list(required), "properties": properties}


def required(title: str, **properties: Any) -> dict[str, Any]:
    """The component ``title``: an object that always carries every one of ``properties``
    (null where the property says so)."""
    return named(title, obj(tuple(properties), **properties))


def key_operation(
    op: dict[str, Any],
    scheme: str,
    api: str,
    scope: str | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``op`` on an API that takes API keys only (``api`` names it in the 401): its security
    scheme, the 401 every such API answers, a 403 when ``scope`` gates it, and ``errors``."""
    op["security"] = [{scheme: [scope] if scope else []}]
    op["responses"]["401"] = error_response(
        f"`invalid_api_key`: no key, an unknown or expired one, or an access token ({api} "
        "takes an API key only)"
    )
    if scope is not None:
        op["responses"]["403"] = error_response(f"`permission_denied`: the key lacks `{scope}`")
    for status, description in (errors or {}).items():
        op["responses"][status] = error_response(description)
    return op


def link(path: str, verb: str, parameters: dict[str, str]) -> dict[str, Any]:
    """An OpenAPI link to the operation ``verb`` on ``path``."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {"operationRef": f"#/paths/{pointer}/{verb}", "parameters": parameters}


def listed(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


def path_param(name: str) -> dict[str, Any]:
    schema = (
        {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}
        if name in STRING_IDS
        else {
            "type": "integer",
            "minimum": 1,
        }
    )
    return {"name": name, "in": "path", "required": True, "schema": schema}


def query(
    name: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def operation(
    summary: str,
    scope: str | None,
    ok: int,
    result: dict[str, Any] | None,
    request: dict[str, Any] | None = None,
    params: tuple[str, ...] = (),
    queries: tuple[dict[str, Any], ...] = (),
    *,
    tag: str = "Partner API",
    error: dict[str, Any] = ERROR,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An operation answering ``ok`` with ``result`` (no body when None), and any error with
    ``error``; ``scope`` None means no bearer credential is needed."""
    success: dict[str, Any] = {"description": "success", **(json_content(result) if result else {})}
    if headers:
        success["headers"] = headers
    op: dict[str, Any] = {
        "tags": [tag],
        "summary": summary,
        "parameters": [*(path_param(p) for p in params), *queries],
        "responses": {
            str(ok): success,
            "default": {"description": "an error", **json_content(error)},
        },
    }
    if scope is not None:
        op["security"] = [{"bearer": [scope]}]
        op["description"] = f"Needs the `{scope}` scope."
    if request is not None:
        op["requestBody"] = {"required": True, **json_content(request)}
    return op
