"""The dashboard's setup pages: credentials and the bridges' local API (secrets revealed
on click, loopback only),
sandbox-wide subscriptions (add, enable, disable), the world (dealers, sites, devices and
the record's alarms), and the login form for a sandbox bound off loopback."""

from __future__ import annotations

import shlex
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sandbox.api.common import issuer_of, services
from sandbox.api.control_events import new_subscription
from sandbox.auth.clients import credentials
from sandbox.errors import NotFound, PermissionDenied, ValidationFailed
from sandbox.store import Row
from sandbox.ui.access import (
    PREFIX,
    SESSION_COOKIE,
    form,
    session_value,
    set_cookie,
    token_matches,
)
from sandbox.ui.render import guarded, render
from sandbox.vocabulary import PROFILES
from sandbox.world import inbound, subscriptions
from sandbox.world.catalog import EVENT_TYPES
from sandbox.world.subscriptions import STATUSES

MASK = "••••••••"


def _curl(request: Request, client: dict[str, Any] | None) -> str | None:
    """The token request a developer pastes into a terminal (its secret masked)."""
    if client is None:
        return None
    base = issuer_of(request).rstrip("/")
    return (
        f"curl -s {base}/oauth/token -d grant_type=client_credentials "
        f"-d client_id={shlex.quote(client['client_id'])} -d client_secret=..."
    )


@guarded
async def credentials_page(request: Request) -> Response:
    world = services(request).world
    found = credentials(world)
    with_secret = [c for c in found["clients"] if c.get("client_secret")]
    partners = [c for c in with_secret if c["kind"] == "platform_partner"]
    partner = next(iter(partners or with_secret), None)  # the one the banner shows
    return render(
        request,
        "credentials.html",
        page="credentials",
        creds=found,
        curl=_curl(request, partner),
        subscriptions=subscriptions.list_all(world),
        types=EVENT_TYPES,
        profiles=PROFILES,
        mask=MASK,
        bridges=inbound.bridges(world, request.app.state.bridge_url),
    )


@guarded
async def reveal(request: Request) -> Response:
    """One secret, on click: a client's secret, an API key, a subscription's signing
    secret or a bridge's API token; never off loopback."""
    if not services(request).settings.loopback:
        raise PermissionDenied("secrets are revealed only on a loopback bind")
    world = services(request).world
    kind, name = request.query_params.get("kind", ""), request.query_params.get("id", "")
    found = credentials(world)
    value: str | None = None
    if kind == "client":
        value = next(
            (c.get("client_secret") for c in found["clients"] if c["client_id"] == name), None
        )
    elif kind == "api_key":
        keys = found["api_keys"]
        value = keys[int(name)]["key"] if name.isdigit() and int(name) < len(keys) else None
    elif kind == "webhook":
        owner = subscriptions.owner(world, name)
        value = subscriptions.get(world, owner, name).get("secret")
    elif kind == "bridge":
        listed = inbound.bridges(world, None)
        value = next((b["api_token"] for b in listed if str(b["bridge_id"]) == name), None)
    if value is None:
        raise NotFound(f"no {kind or 'secret'} {name!r} to reveal")
    return render(request, "secret.html", value=value)


@guarded
async def add_subscription(request: Request) -> Response:
    fields = await form(request)
    body: dict[str, Any] = {"url": fields.get("url", "").strip()}
    events = [e for e in fields.get("events", "").replace(",", " ").split() if e]
    if events:
        body["events"] = events
    if fields.get("profile"):
        body["profile"] = fields["profile"]
    created = new_subscription(request, body)
    world = services(request).world
    return render(
        request,
        "subscriptions.html",
        subscriptions=subscriptions.list_all(world),
        message=f"added {created['webhook_id']}",
    )


@guarded
async def set_subscription(request: Request) -> Response:
    fields = await form(request)
    world = services(request).world
    webhook_id, status = fields.get("webhook_id", ""), fields.get("status", "")
    if status not in STATUSES:
        raise ValidationFailed("status", "status is enabled or disabled")
    owner = subscriptions.owner(world, webhook_id)
    subscriptions.update(world, owner, webhook_id, {"status": status})
    return render(
        request,
        "subscriptions.html",
        subscriptions=subscriptions.list_all(world),
        message=f"{webhook_id} {status}",
    )


@guarded
async def world_page(request: Request) -> Response:
    store = services(request).world.store
    dealers = [dict(r) for r in store.all("SELECT * FROM dealers ORDER BY dealer_id LIMIT 200")]
    sites = store.all("SELECT * FROM site_view ORDER BY site_id LIMIT 2000")
    devices = store.all(
        "SELECT device_id, site_id, device_type, name, zone_number FROM devices "
        "ORDER BY site_id, device_id LIMIT 5000"
    )
    by_site: dict[int, list[dict[str, Any]]] = {}
    for device in devices:
        by_site.setdefault(device["site_id"], []).append(dict(device))
    for dealer in dealers:
        dealer["sites"] = [
            {**dict(s), "devices": by_site.get(s["site_id"], [])}
            for s in sites
            if s["dealer_id"] == dealer["dealer_id"]
        ]
    return render(request, "world.html", page="world", dealers=dealers, alarms=_alarms(request))


def _alarms(request: Request) -> list[Row]:
    """The record's newest alarms, each in its state."""
    return services(request).world.store.all(
        "SELECT alarm_id, site_id, dealer_id, state, priority, trigger, created_at "
        "FROM alarms ORDER BY number DESC LIMIT 100"
    )


@guarded
async def alarms_table(request: Request) -> Response:
    return render(request, "alarms.html", alarms=_alarms(request))


async def login_page(request: Request) -> Response:
    return render(request, "login.html", page="login", error=None)


async def login(request: Request) -> Response:
    fields = await form(request)
    if not token_matches(request, fields.get("token", "")):
        return render(request, "login.html", 401, page="login", error="that is not the token")
    response = RedirectResponse(f"{PREFIX}/requests", 303)
    token = str(services(request).settings.admin_token)
    set_cookie(request, response, SESSION_COOKIE, session_value(token))
    return response


async def logout(request: Request) -> Response:
    await form(request)
    response = RedirectResponse(f"{PREFIX}/login", 303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response
