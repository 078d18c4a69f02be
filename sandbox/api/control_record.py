"""Control routes over the record: make an app's API key (``/_sandbox/api-keys``), and read
alarms and the audit log across every dealer (``/_sandbox/alarms``, ``/_sandbox/audit``) —
what the Python API, the CLI and scenario checks assert on."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import check_destination, query_lists, read_json, reply, route, services
from sandbox.api.control import admin
from sandbox.auth import clients
from sandbox.errors import ValidationFailed
from sandbox.settings import SettingsError
from sandbox.vocabulary import one_of
from sandbox.world import alarms, audit, inbound, subscriptions
from sandbox.world.fields import Field, validate
from sandbox.world.listing import parse_list_query

KEY_FIELDS = (
    Field("dealer_id", kind=int, required=True, minimum=1),
    Field("scopes", kind=list, required=True, check=lambda v: _scopes_problem(v)),
    Field("name", max_length=128),
    Field("webhook", kind=dict),
)


def _scopes_problem(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        return "must be an array of scope names"
    return None


async def create_api_key(request: Request) -> Response:
    """``{dealer_id, scopes, name?, webhook?: {url, events?, secret?, profile?}}`` → 201
    ``{key, dealer_id, scopes, name, client_id, webhook?}``: an app and its key; the webhook,
    when given, hears what the key's scopes allow, as a CHeKT app's does."""
    admin(request)
    s = services(request)
    values = validate(await read_json(request), KEY_FIELDS)
    name = values.get("name") or "sandbox app"
    hook = values.get("webhook")
    if hook is not None:
        if not isinstance(hook, dict):
            raise ValidationFailed("webhook", "webhook must be an object {url, events?, ...}")
        hook = validate(hook, subscriptions.SUBSCRIPTION_FIELDS, read_only=subscriptions.READ_ONLY)
        check_destination(request, hook)
    scopes = tuple(dict.fromkeys(values["scopes"]))
    with s.world.store.transaction():
        try:
            made = clients.create_app_key(s.world, values["dealer_id"], scopes, name)
        except SettingsError as exc:
            field = "dealer_id" if "dealer" in str(exc) else "scopes"
            raise ValidationFailed(field, str(exc)) from None
        if hook is not None:
            made["webhook"] = subscriptions.create(
                s.world,
                made["client_id"],
                hook,
                default_profile=s.settings.webhook_profile,
                scopes=scopes,
            )
    return reply(made, 201)


def _filters(request: Request, names: dict[str, type], extra: tuple[str, ...] = ()) -> Any:
    params = query_lists(request)
    query = parse_list_query(params, {}, known=("limit", "offset", *names, *extra))
    filters: dict[str, Any] = {}
    for name, kind in names.items():
        if name in params:
            raw = params[name][-1]
            if kind is int:
                if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
                    raise ValidationFailed(name, f"{name} must be a positive integer")
                filters[name] = int(raw)
            else:
                filters[name] = raw
    return query, filters, params


async def list_alarms(request: Request) -> Response:
    admin(request)
    query, filters, _ = _filters(request, alarms.ALARM_FILTERS)
    if "state" in filters and filters["state"] not in alarms.STATES:
        raise ValidationFailed("state", f"state must be {one_of(alarms.STATES)}")
    dealer_id = filters.pop("dealer_id", None)
    items, total = alarms.listing(
        services(request).world, dealer_id, filters, query.limit, query.offset
    )
    return reply(items, headers={"X-Total-Count": str(total)})


async def get_alarm(request: Request) -> Response:
    admin(request)
    return reply(alarms.get(services(request).world, request.path_params["alarm_id"]))


AUDIT_FILTERS: dict[str, type] = {
    name: int if name == "dealer_id" else str for name in audit.AUDIT_FILTERS
}


async def list_audit(request: Request) -> Response:
    """The audit log, oldest first, after ``since_seq``."""
    admin(request)
    query, filters, params = _filters(request, AUDIT_FILTERS, ("since_seq",))
    since = params.get("since_seq", ["0"])[-1]
    if not (since.isascii() and since.isdigit()):
        raise ValidationFailed("since_seq", "since_seq must be a non-negative integer")
    rows = audit.entries(services(request).world, filters, int(since), query.limit)
    return reply(rows)


INBOUND_FILTERS: dict[str, type] = {
    "source": str,
    "channel": int,
    "site_id": int,
    "event_type": str,
    "since_seq": int,
}


async def list_inbound(request: Request) -> Response:
    """Events that came into CHeKT (Partner Event API, bridges), oldest first."""
    admin(request)
    query, filters, _ = _filters(request, INBOUND_FILTERS)
    if filters.get("source") not in (None, *inbound.SOURCES):
        raise ValidationFailed("source", f"source must be {one_of(inbound.SOURCES)}")
    if filters.get("event_type") not in (None, *inbound.EVENT_TYPES):
        raise ValidationFailed("event_type", f"event_type must be {one_of(inbound.EVENT_TYPES)}")
    return reply(inbound.listing(services(request).world, filters, query.limit))


routes = [
    route("/_sandbox/inbound", GET=list_inbound),
    route("/_sandbox/api-keys", POST=create_api_key),
    route("/_sandbox/alarms", GET=list_alarms),
    route("/_sandbox/alarms/{alarm_id}", GET=get_alarm),
    route("/_sandbox/audit", GET=list_audit),
]
