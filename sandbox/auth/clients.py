"""Registered applications and their API keys: seeded ones, ones pinned in the settings
file, ones registered at run time, and the dealer connections that give platform partners
their reach.

Credentials survive a world reset; connections are part of the world and are restored by
:func:`restore_connections` after every reseed. :func:`reset_clients` returns the clients to
what the settings define.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.auth import codes
from sandbox.auth.assertions import register_key
from sandbox.auth.keys import is_well_formed, new_api_key
from sandbox.errors import Conflict, NotFound
from sandbox.settings import ClientSpec, Settings, SettingsError
from sandbox.store import Row
from sandbox.world import World, dealers

RESOURCES = ("sites", "site_contacts", "devices", "monitoring_stations")
PARTNER_SCOPES = (
    "read:dealer",
    "update:dealer",
    *(f"{verb}:{noun}" for noun in RESOURCES for verb in ("create", "read", "update", "delete")),
)
# the CHeKT Apps API's scopes (resource:verb), which gate /v1 and the webhooks an app hears
APPS_SCOPES = (
    "devices:read",
    "devices:write",
    "events:read",
    "events:write",
    "alarms:write",
    "snapshots:read",
    "sites:read",
)
SEEDED_PARTNER = "sandbox-platform-partner"
DEV_REDIRECTS = ("http://localhost:3000/callback", "http://127.0.0.1:3000/callback")


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str | None
    kind: str
    name: str
    scopes: tuple[str, ...]
    dealer_id: int | None
    redirect_uris: tuple[str, ...] = ()
    logout_urls: tuple[str, ...] = ()
    public: bool = False


def get_client(world: World, client_id: str) -> Client | None:
    row = world.store.one("SELECT * FROM clients WHERE client_id = ?", (client_id,))
    if row is None:
        return None
    return Client(
        client_id=row["client_id"],
        client_secret=row["client_secret"],
        kind=row["kind"],
        name=row["name"],
        scopes=tuple(row["scopes"].split()),
        dealer_id=row["dealer_id"],
        redirect_uris=tuple(json.loads(row["redirect_uris"])),
        logout_urls=tuple(json.loads(row["logout_urls"])),
        public=bool(row["public"]),
    )


def get_api_key(world: World, key: str) -> dict[str, Any] | None:
    """The live record of ``key``, or None when unknown or past its rotation grace."""
    row = world.store.one("SELECT * FROM api_keys WHERE key = ?", (key,))
    if row is None or (row["expires_at"] is not None and row["expires_at"] <= world.now()):
        return None
    return row


def _check_scopes(scopes: tuple[str, ...] | None, where: str) -> tuple[str, ...]:
    if scopes is None:
        return PARTNER_SCOPES
    for scope in scopes:
        if scope not in PARTNER_SCOPES:
            raise SettingsError(f"{where}: unknown scope {scope!r}")
    return scopes


def _check_dealer(world: World, dealer_id: int, where: str) -> None:
    if world.store.scalar("SELECT 1 FROM dealers WHERE dealer_id = ?", (dealer_id,)) is None:
        known = [r["dealer_id"] for r in world.store.all("SELECT dealer_id FROM dealers")]
        raise SettingsError(f"{where}: dealer {dealer_id} is not in the world (dealers: {known})")


def _save_client(world: World, client: Client, origin: str) -> None:
    world.store.execute(
        "INSERT INTO clients (client_id, client_secret, kind, name, scopes, dealer_id, origin, "
        "redirect_uris, logout_urls, public, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(client_id) DO UPDATE SET "
        "client_secret = excluded.client_secret, kind = excluded.kind, name = excluded.name, "
        "scopes = excluded.scopes, dealer_id = excluded.dealer_id, origin = excluded.origin, "
        "redirect_uris = excluded.redirect_uris, logout_urls = excluded.logout_urls, "
        "public = excluded.public",
        (
            client.client_id,
            client.client_secret,
            client.kind,
            client.name,
            " ".join(client.scopes),
            client.dealer_id,
            origin,
            json.dumps(list(client.redirect_uris)),
            json.dumps(list(client.logout_urls)),
            int(client.public),
            world.now(),
        ),
    )


def _save_key(
    world: World,
    key: str,
    client_id: str,
    dealer_id: int,
    scopes: tuple[str, ...],
    name: str,
    origin: str,
) -> None:
    world.store.execute(
        "INSERT INTO api_keys (key, client_id, dealer_id, scopes, name, origin, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
        "client_id = excluded.client_id, dealer_id = excluded.dealer_id, "
        "scopes = excluded.scopes, name = excluded.name, expires_at = NULL",
        (key, client_id, dealer_id, " ".join(scopes), name, origin, world.now()),
    )


def _seed(world: World, restore: bool = False) -> None:
    """Create the sandbox's own demo clients (each once per store); ``restore`` also undoes
    run-time changes to them, except their secrets."""
    first = int(world.store.scalar("SELECT MIN(dealer_id) FROM dealers"))
    partner = Client(
        SEEDED_PARTNER,
        None,
        "platform_partner",
        "Sandbox platform partner",
        PARTNER_SCOPES,
        None,
        redirect_uris=DEV_REDIRECTS,
    )
    app = Client(
        f"sandbox-dealer-app-{first}",
        None,
        "dealer_app",
        f"Sandbox dealer app for dealer {first}",
        PARTNER_SCOPES,
        first,
    )
    for client in (partner, app):
        existing = get_client(world, client.client_id)
        if existing is not None and not restore:
            continue
        secret = existing.client_secret if existing is not None else None
        secret = secret or "sandbox_" + secrets.token_urlsafe(24)
        world.store.execute("DELETE FROM client_keys WHERE client_id = ?", (client.client_id,))
        _save_client(world, dataclasses.replace(client, client_secret=secret), "seeded")
        world.store.execute(
            "UPDATE clients SET home_dealers = '[]' WHERE client_id = ?", (client.client_id,)
        )
        if existing is None and client is app:
            key = new_api_key()
            _save_key(world, key, app.client_id, first, PARTNER_SCOPES, "seeded", "seeded")
    # the app's key for the CHeKT Apps API (/v1), also in stores made before it existed
    if (
        world.store.scalar(
            "SELECT 1 FROM api_keys WHERE client_id = ? AND name = 'apps'", (app.client_id,)
        )
        is None
    ):
        _save_key(world, new_api_key(), app.client_id, first, APPS_SCOPES, "apps", "seeded")


def _register_spec_key(world: World, spec: ClientSpec, where: str, origin: str) -> None:
    pem = spec.public_key
    if spec.public_key_file is not None:
        try:
            pem = Path(spec.public_key_file).read_text()
        except OSError as exc:
            raise SettingsError(f"{where}: cannot read public_key_file: {exc.strerror}") from None
    if pem is None and spec.jwks_url is None:
        return
    source = spec.public_key_file or (f"jwks_url {spec.jwks_url}" if pem is None else origin)
    try:
        register_key(
            world,
            spec.client_id,
            pem=pem,
            jwks_url=spec.jwks_url if pem is None else None,
            kid=spec.key_id,
            source=source,
        )
    except ValueError as exc:
        raise SettingsError(f"{where}: {exc}") from None


def ensure_credentials(world: World, settings: Settings) -> None:
    """Make the seeded and configured credentials and their dealer connections exist."""
    with world.store.transaction():
        _seed(world)
        for spec in settings.clients:
            _save_spec(world, spec, "config")
        restore_connections(world)
        for number, key_spec in enumerate(settings.api_keys):
            where = f"api_keys[{key_spec.name or number}]"
            if not is_well_formed(key_spec.key):
                raise SettingsError(
                    f"{where}: {key_spec.key[:14]}… is not a well-formed sandbox key (chekt_test_ "
                    f"+ 26 characters + checksum); for example: {new_api_key()}"
                )
            _check_dealer(world, key_spec.dealer_id, where)
            owner = f"config-key-app-{key_spec.dealer_id}"
            scopes = _check_scopes(key_spec.scopes, where)
            _save_client(
                world,
                Client(
                    owner,
                    None,
                    "dealer_app",
                    f"API keys for dealer {key_spec.dealer_id}",
                    PARTNER_SCOPES,
                    key_spec.dealer_id,
                ),
                "config",
            )
            _save_key(
                world,
                key_spec.key,
                owner,
                key_spec.dealer_id,
                scopes,
                key_spec.name or f"config-{number}",
                "config",
            )


def credentials(world: World) -> dict[str, Any]:
    """Everything a developer needs to call the sandbox: the body of /_sandbox/credentials."""
    keys = world.store.all("SELECT * FROM api_keys ORDER BY created_at, rowid")
    clients = world.store.all("SELECT * FROM clients ORDER BY created_at, client_id")
    users = world.store.all("SELECT * FROM users ORDER BY dealer_id, user_id")
    keyed = {r["client_id"] for r in world.store.all("SELECT client_id FROM client_keys")}
    return {
        "api_keys": [
            {
                "key": k["key"],
                "client_id": k["client_id"],
                "dealer_id": k["dealer_id"],
                "scopes": k["scopes"].split(),
                "name": k["name"],
                "origin": k["origin"],
                "expires_at": k["expires_at"],
            }
            for k in keys
            if k["expires_at"] is None or k["expires_at"] > world.now()
        ],
        "clients": [
            _describe(world, c)
            for c in clients
            if c["client_secret"] is not None or c["public"] or c["client_id"] in keyed
        ],
        "assertion_keys": [
            {
                "client_id": k["client_id"],
                "kid": k["kid"] or None,
                "alg": k["alg"] or None,
                "source": k["source"],
                "jwks_url": k["jwks_url"],
            }
            for k in world.store.all("SELECT * FROM client_keys ORDER BY client_id, kid")
        ],
        "users": [
            {
                "user_id": u["user_id"],
                "email": u["email"],
                "name": u["name"],
                "dealer_id": u["dealer_id"],
                "role": u["role"],
            }
            for u in users
        ],
    }


def _describe(world: World, row: Row) -> dict[str, Any]:
    return {
        "client_id": row["client_id"],
        "client_secret": row["client_secret"],
        "kind": row["kind"],
        "name": row["name"],
        "dealer_ids": (
            [row["dealer_id"]]
            if row["kind"] == "dealer_app"
            else dealers.connected_dealers(world, row["client_id"])
        ),
        "scopes": row["scopes"].split(),
        "origin": row["origin"],
        "public": bool(row["public"]),
        "redirect_uris": json.loads(row["redirect_uris"]),
        "logout_urls": json.loads(row["logout_urls"]),
    }


API_KEY_GRACE = 24 * 3600


def create_app_key(
    world: World, dealer_id: int, scopes: tuple[str, ...], name: str
) -> dict[str, Any]:
    """An app of its own with one key: the Apps scopes, the Partner API's, or a mix, so a
    test can hold a narrow key (``events:read`` alone) and see what it may not do."""
    unknown = ", ".join(s for s in scopes if s not in (*APPS_SCOPES, *PARTNER_SCOPES))
    if unknown or not scopes:
        raise SettingsError(
            f"scopes must name some of {', '.join(APPS_SCOPES)} (Apps API) or "
            f"{', '.join(PARTNER_SCOPES)} (Partner API); unknown: {unknown or 'none given'}"
        )
    _check_dealer(world, dealer_id, "dealer_id")
    client_id = "app-" + secrets.token_hex(6)
    key = new_api_key()
    with world.store.transaction():
        _save_client(
            world, Client(client_id, None, "dealer_app", name, scopes, dealer_id), "control"
        )
        _save_key(world, key, client_id, dealer_id, scopes, name, "control")
    return {
        "key": key,
        "dealer_id": dealer_id,
        "scopes": list(scopes),
        "name": name,
        "client_id": client_id,
    }


def rotate_api_key(world: World, key: str) -> dict[str, Any]:
    """Issue a replacement key; the old one keeps working for 24 h on the sandbox clock."""
    row = get_api_key(world, key)
    if row is None:
        raise NotFound("no such API key (or it already expired)")
    new = new_api_key()
    expires_at = world.now() + API_KEY_GRACE
    with world.store.transaction():
        world.store.execute(
            "UPDATE api_keys SET expires_at = ? WHERE key = ? AND expires_at IS NULL",
            (expires_at, key),
        )
        _save_key(
            world,
            new,
            row["client_id"],
            row["dealer_id"],
            tuple(row["scopes"].split()),
            row["name"],
            "rotated",
        )
    return {"key": new, "previous_key_expires_at": expires_at, "dealer_id": row["dealer_id"]}


def _save_spec(world: World, spec: ClientSpec, origin: str) -> Client:
    """Save a configured or registered client, its assertion key and its dealer reach."""
    where = f"clients[{spec.client_id}]"
    for dealer_id in spec.dealer_ids:
        _check_dealer(world, dealer_id, where)
    client = Client(
        spec.client_id,
        spec.client_secret,
        spec.kind,
        spec.name or spec.client_id,
        _check_scopes(spec.scopes, where),
        spec.dealer_ids[0] if spec.kind == "dealer_app" else None,
        redirect_uris=spec.redirect_uris,
        logout_urls=spec.logout_urls,
        public=spec.public,
    )
    _save_client(world, client, origin)
    _register_spec_key(world, spec, where, origin)
    if spec.kind == "platform_partner":
        world.store.execute(
            "UPDATE clients SET home_dealers = ? WHERE client_id = ?",
            (json.dumps(list(spec.dealer_ids)), spec.client_id),
        )
    return client


def _home(world: World, row: Row) -> list[int]:
    """The dealers a platform partner is connected to whenever the world is (re)seeded."""
    home: list[int] = json.loads(row["home_dealers"])
    if row["client_id"] == SEEDED_PARTNER and not home:
        ordered = [r["dealer_id"] for r in world.store.all("SELECT dealer_id FROM dealers")]
        home = sorted(ordered)[:-1] or ordered  # every dealer but the last
    return home


def restore_connections(world: World, only: str | None = None) -> None:
    """Connect platform partners to their home dealers (after a reseed wiped them)."""
    existing = {r["dealer_id"] for r in world.store.all("SELECT dealer_id FROM dealers")}
    for row in world.store.all(
        "SELECT client_id, home_dealers FROM clients WHERE kind = 'platform_partner' "
        "AND client_id = COALESCE(?, client_id)",
        (only,),
    ):
        connected = set(dealers.connected_dealers(world, row["client_id"]))
        for dealer_id in sorted((set(_home(world, row)) & existing) - connected):
            with contextlib.suppress(Conflict):  # the partner already calls another dealer so
                dealers.connect(world, dealer_id, row["client_id"], f"ext-{dealer_id}")


def register_client(world: World, spec: ClientSpec) -> dict[str, Any]:
    """A client created over /_sandbox/clients."""
    with world.store.transaction():
        client = _save_spec(world, spec, "control")
        restore_connections(world, only=spec.client_id)
    secret = spec.client_secret
    return {
        "client_id": client.client_id,
        "client_secret": secret,
        "kind": client.kind,
        "dealer_ids": list(spec.dealer_ids),
        "scopes": list(client.scopes),
    }


KEY_FIELDS = ("public_key", "public_key_file", "jwks_url", "key_id")


def _definition(world: World, row: Row) -> dict[str, Any]:
    """A stored client as the mapping that registered it (what a change is merged into)."""
    definition: dict[str, Any] = {
        "client_id": row["client_id"],
        "client_secret": row["client_secret"],
        "kind": row["kind"],
        "name": row["name"],
        "scopes": row["scopes"].split(),
        "redirect_uris": json.loads(row["redirect_uris"]),
        "logout_urls": json.loads(row["logout_urls"]),
        "public": bool(row["public"]),
        "dealer_ids": ([row["dealer_id"]] if row["kind"] == "dealer_app" else _home(world, row)),
    }
    key = world.store.one(
        "SELECT * FROM client_keys WHERE client_id = ? ORDER BY kid LIMIT 1", (row["client_id"],)
    )
    if key is not None and key["public_pem"] is not None:
        definition.update(public_key=key["public_pem"], key_id=key["kid"])
    elif key is not None:
        definition["jwks_url"] = key["jwks_url"]
    return definition


def _row(world: World, client_id: str) -> Row:
    row = world.store.one("SELECT * FROM clients WHERE client_id = ?", (client_id,))
    if row is None:
        raise NotFound(f"no client {client_id!r}")
    return row


def update_client(world: World, client_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply a PATCH to any client, validated as a registration is. ``client_id`` and ``kind``
    are fixed; a partner's dropped home dealers are disconnected. Tokens already issued keep
    their scopes until they expire (as Auth0's do)."""
    with world.store.transaction():
        row = _row(world, client_id)
        for fixed in ("client_id", "kind"):
            if fixed in changes and changes[fixed] != row[fixed]:
                raise SettingsError(f"{fixed} cannot be changed; delete and register again")
        merged = _definition(world, row)
        if any(name in changes for name in KEY_FIELDS):
            merged = {k: v for k, v in merged.items() if k not in KEY_FIELDS}
            world.store.execute("DELETE FROM client_keys WHERE client_id = ?", (client_id,))
        merged.update(changes)
        spec = Settings.from_mapping({"clients": [merged]}, source="body").clients[0]
        home = _home(world, row) if row["kind"] == "platform_partner" else []
        dropped = set(home) - set(spec.dealer_ids)
        _save_spec(world, spec, row["origin"])
        if spec.kind == "platform_partner":
            for dealer_id in dropped:
                dealers.disconnect(world, dealer_id, client_id)
            restore_connections(world, only=client_id)
    return _describe(world, _row(world, client_id))


def delete_client(world: World, client_id: str) -> None:
    """Remove a client with its keys, connections and subscriptions, revoking its tokens."""
    with world.store.transaction():
        _row(world, client_id)
        _remove(world, client_id)


def _remove(world: World, client_id: str) -> None:
    codes.revoke_client(world, client_id)
    for table in ("webhooks", "connections"):
        world.store.execute(f"DELETE FROM {table} WHERE client_id = ?", (client_id,))
    world.store.execute("DELETE FROM clients WHERE client_id = ?", (client_id,))  # keys cascade


def reset_clients(world: World, settings: Settings) -> None:
    """Back to what the settings define: clients registered at run time are removed (their
    tokens revoked), seeded and configured ones are restored (a seeded one keeps its secret)."""
    with world.store.transaction():
        for row in world.store.all(
            "SELECT client_id FROM clients WHERE origin NOT IN ('seeded', 'config')"
        ):
            _remove(world, row["client_id"])
        world.store.execute(
            "DELETE FROM client_keys WHERE client_id IN "
            "(SELECT client_id FROM clients WHERE origin = 'config')"
        )
        _seed(world, restore=True)
        ensure_credentials(world, settings)
