"""The sandbox control surface, ``/_sandbox``: what a test or a developer uses to inspect
and drive the sandbox. On a loopback bind it is open; on any other bind every route needs
the admin token, except the links webhooks carry (``/_sandbox/media``, ``/_sandbox/track``,
in ``media.py``), which their own signed token authorizes."""

from __future__ import annotations

import re
import secrets

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import issuer_of, no_content, read_json, reply, route, services
from sandbox.auth import clients
from sandbox.auth.clients import credentials
from sandbox.auth.guard import TIERS
from sandbox.errors import Conflict, PermissionDenied, Unauthorized, ValidationFailed
from sandbox.journal_filters import FILTERS, SURFACES, path_regex
from sandbox.recorder import export
from sandbox.settings import Settings, SettingsError
from sandbox.webhooks import outbox
from sandbox.world import inbound, subscriptions
from sandbox.world.seed import seed_world


def admin(request: Request) -> None:
    settings = services(request).settings
    if settings.loopback:
        return
    if not settings.admin_token:
        raise PermissionDenied(
            "the control API is closed on a non-loopback bind without an admin token"
        )
    given = request.headers.get("x-sandbox-admin-token", "")
    if not secrets.compare_digest(given.encode(), settings.admin_token.encode()):
        raise Unauthorized("send the admin token in X-Sandbox-Admin-Token", code="invalid_token")


async def get_credentials(request: Request) -> Response:
    admin(request)
    s = services(request)
    issuer = issuer_of(request)
    body = {
        "issuer": issuer,
        "base_url": issuer.rstrip("/"),
        "token_url": issuer + "oauth/token",
        "audience": s.settings.audience,
        **credentials(s.world),
        "bridges": inbound.bridges(s.world, request.app.state.bridge_url),
    }
    return reply(body, headers={"Cache-Control": "no-store"})


RESET_BY_DEFAULT = ("world", "recorder", "deliveries")
RESETTABLE = (*RESET_BY_DEFAULT, "clients")


async def reset(request: Request) -> Response:
    """Reset the world, the journal and the deliveries, or only some of: the world (reseeded,
    optionally with another seed; subscriptions and events go with it), the recorder, the
    deliveries, and — only when listed — the clients (back to what the settings define:
    clients registered at run time are removed and their tokens revoked). Inbound fault
    rules, rate limits and the stamping skew always go back to what the settings say."""
    admin(request)
    s = services(request)
    seed = s.settings.seed
    only: list[str] = list(RESET_BY_DEFAULT)
    if await request.body():
        body = await read_json(request)
        if not isinstance(body, dict) or not set(body) <= {"seed", "only"}:
            raise ValidationFailed("body", 'reset takes {"seed"?: <integer>, "only"?: [...]}')
        if "seed" in body:
            if isinstance(body["seed"], bool) or not isinstance(body["seed"], int):
                raise ValidationFailed("seed", "seed must be an integer")
            seed = body["seed"]
        if "only" in body:
            only = body["only"]
            if not isinstance(only, list) or not only or any(p not in RESETTABLE for p in only):
                raise ValidationFailed("only", f"only lists some of {', '.join(RESETTABLE)}")
    if "world" in only:
        seed_world(s.world, seed, s.settings.dealers, s.settings.sites_per_dealer)
        clients.restore_connections(s.world)
        subscriptions.ensure_callback(s.world, s.settings)
    if "clients" in only:
        clients.reset_clients(s.world, s.settings)
    if "deliveries" in only:
        s.dispatcher.forget()
        outbox.clear(s.world)
    if "recorder" in only:
        s.recorder.clear()
    s.dispatcher.faults.reset(s.settings, seed)
    s.calm()
    return reply({"reset": sorted(set(only)), "seed": seed})


async def rotate_signing_key(request: Request) -> Response:
    admin(request)
    s = services(request)
    statuses = s.keys.rotate(s.world.now(), keep_for=s.settings.token_lifetime)
    return reply({"keys": [{"kid": kid, "status": status} for kid, status in statuses.items()]})


async def rotate_api_key(request: Request) -> Response:
    admin(request)
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("key"), str):
        raise ValidationFailed("key", 'send {"key": "<the API key to rotate>"}')
    s = services(request)
    rotated = clients.rotate_api_key(s.world, body["key"])
    return reply(rotated, 201)


async def create_client(request: Request) -> Response:
    """Register a client: OAuth secret, public (PKCE) or assertion key / JWKS URL."""
    admin(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ValidationFailed("body", "send a JSON object describing the client")
    body.setdefault("client_id", "client-" + secrets.token_hex(6))
    keyless = not (body.get("public") or body.get("public_key") or body.get("jwks_url"))
    if keyless and not body.get("client_secret"):
        body["client_secret"] = "sandbox_" + secrets.token_urlsafe(24)
    try:
        spec = Settings.from_mapping({"clients": [body]}, source="body").clients[0]
    except SettingsError as exc:
        raise ValidationFailed("body", str(exc)) from None
    s = services(request)
    if clients.get_client(s.world, spec.client_id) is not None:
        raise Conflict(f"client {spec.client_id!r} already exists")
    try:
        created = clients.register_client(s.world, spec)
    except SettingsError as exc:
        raise ValidationFailed("body", str(exc)) from None
    return reply(created, 201)


async def update_client(request: Request) -> Response:
    """Change a client (redirect URIs, scopes, secret, key or JWKS URL, ...), validated as a
    registration is."""
    admin(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ValidationFailed("body", "send a JSON object with the fields to change")
    s = services(request)
    try:
        changed = clients.update_client(s.world, request.path_params["client_id"], body)
    except SettingsError as exc:
        raise ValidationFailed("body", str(exc)) from None
    return reply(changed)


async def delete_client(request: Request) -> Response:
    """Remove a client and revoke everything it was issued."""
    admin(request)
    clients.delete_client(services(request).world, request.path_params["client_id"])
    return no_content()


async def health(request: Request) -> Response:
    admin(request)
    return reply({"status": "ok"})


routes = [
    route("/_sandbox/credentials", GET=get_credentials),
    route("/_sandbox/reset", POST=reset),
    route("/_sandbox/health", GET=health),
    route("/_sandbox/keys/rotate", POST=rotate_signing_key),
    route("/_sandbox/api-keys/rotate", POST=rotate_api_key),
    route("/_sandbox/clients", POST=create_client),
    route("/_sandbox/clients/{client_id}", PATCH=update_client, DELETE=delete_client),
]


def _filters(request: Request) -> dict[str, str]:
    return check_filters(dict(request.query_params))


def check_filters(params: dict[str, str]) -> dict[str, str]:
    """Journal filters, each checked: an unknown name or a malformed value is a 422."""
    for name in params:
        if name not in FILTERS:
            raise ValidationFailed(name, f"unknown filter {name!r}; use {', '.join(FILTERS)}")
    for name in ("since_seq", "limit"):
        if name in params and not (params[name].isascii() and params[name].isdigit()):
            raise ValidationFailed(name, f"{name} must be a non-negative integer")
    for name in ("since", "until"):
        if name in params:
            try:
                float(params[name])
            except ValueError:
                raise ValidationFailed(name, f"{name} must be unix seconds") from None
    if "path_regex" in params:
        path_regex(params["path_regex"])
    for name, (pattern, hint) in _SHAPES.items():
        if name in params and not pattern.fullmatch(params[name]):
            raise ValidationFailed(name, f"{name} must be {hint}")
    return params


# filters whose values have a fixed form: anything else is a mistake, not an empty answer
_SHAPES = {
    "tier": (re.compile("|".join(TIERS)), "one of " + ", ".join(TIERS)),
    "surface": (re.compile("|".join(SURFACES)), "one of " + ", ".join(SURFACES)),
    "status": (re.compile(r"[1-5](?:[0-9][0-9]|xx|XX)", re.ASCII), "a status or a class: 404, 4xx"),
    "method": (re.compile(r"[A-Za-z]{1,16}"), "an HTTP method"),
    "reveal": (re.compile("true|false"), "true or false"),
}


async def list_requests(request: Request) -> Response:
    """The journal of inbound requests. Credentials were hidden when recorded; ``reveal=true``
    (loopback only) shows the test credentials among them, never anything else."""
    admin(request)
    s = services(request)
    params = _filters(request)
    reveal = params.get("reveal") == "true"
    if reveal and not s.settings.loopback:
        raise PermissionDenied("reveal=true is only allowed on a loopback bind")
    entries = [export(e, reveal=reveal) for e in s.recorder.query(params)]
    stats = s.recorder.stats()
    return reply(
        entries,
        headers={
            "X-Journal-Evicted": str(stats["evicted"]),
            "X-Journal-Last-Seq": str(stats["last_seq"]),
        },
    )


async def journal_stats(request: Request) -> Response:
    admin(request)
    return reply(services(request).recorder.stats())


routes += [
    route("/_sandbox/requests", GET=list_requests),
    route("/_sandbox/journal", GET=journal_stats),
]
