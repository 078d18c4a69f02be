"""The ``chekt-sandbox`` command: a thin layer over ``server.run`` and the settings."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click
from starlette.applications import Starlette

from sandbox import __version__
from sandbox.auth.clients import credentials
from sandbox.server import run
from sandbox.settings import Settings, SettingsError

DEFAULT_DB = ".chekt-sandbox/sandbox.db"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chekt-sandbox")
def main() -> None:
    """A local, offline CHeKT: Partner API, auth server and webhooks for partner tests."""


def _banner(app: Starlette, url: str) -> None:
    services = app.state.services
    settings: Settings = services.settings
    creds = credentials(services.world)
    issuer = settings.issuer or url + "/"
    key = creds["api_keys"][0] if creds["api_keys"] else None
    partner = next((c for c in creds["clients"] if c["kind"] == "platform_partner"), None)
    lines = [
        f"chekt-sandbox {__version__} is serving a local CHeKT",
        f"  base URL    {url}",
        f"  issuer      {issuer}",
        f"  store       {services.world.store.path} (seed {settings.seed}, {settings.clock} clock)",
    ]
    if key:
        lines.append(f"  API key     {key['key']}  (dealer app, dealer {key['dealer_id']})")
    if partner:
        dealers = ", ".join(str(d) for d in partner["dealer_ids"])
        lines += [
            f"  client id   {partner['client_id']}  (platform partner, dealers {dealers})",
            f"  secret      {partner['client_secret']}",
        ]
    lines.append(f"  all creds   {url}/_sandbox/credentials")
    if partner:
        dealer = partner["dealer_ids"][0] if partner["dealer_ids"] else 1001
        lines += [
            "",
            "Get a token and list a dealer's sites:",
            f"  TOKEN=$(curl -s {url}/oauth/token -d grant_type=client_credentials \\",
            f"      -d client_id={shlex.quote(partner['client_id'])} "
            f"-d client_secret={shlex.quote(partner['client_secret'])} \\",
            "      | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')",
            f'  curl -s {url}/partner/v1/dealers/{dealer}/sites -H "Authorization: Bearer $TOKEN"',
        ]
    if not settings.loopback:
        lines.append(
            f"\nWARNING: bound to {settings.host}, reachable from other machines; "
            "/_sandbox/* needs the admin token (X-Sandbox-Admin-Token)."
        )
    lines.append("\nPress Ctrl-C to stop.")
    click.echo("\n".join(lines))


@main.command()
@click.option("--host", help="Address to bind. [default: 127.0.0.1]")
@click.option("--port", type=int, help="Port to bind; 0 picks a free one. [default: 8765]")
@click.option("--seed", type=int, help="Seed of the fake world. [default: 42]")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file (YAML or TOML), e.g. to pin clients and API keys.",
)
@click.option("--db", help=f"SQLite file of the store, or :memory:. [default: {DEFAULT_DB}]")
@click.option("--clock", type=click.Choice(["system", "virtual"]), help="[default: system]")
@click.option("--issuer", help="Pin the token issuer (default: the origin each client used).")
@click.option("--admin-token", help="Token for /_sandbox/* on a non-loopback bind.")
def serve(config_file: Path | None, **flags: Any) -> None:
    """Serve the sandbox until Ctrl-C.

    Settings come from the --config file, then CHEKT_SANDBOX_* environment variables
    (e.g. CHEKT_SANDBOX_PORT), then these flags, each overriding the one before.
    """
    try:
        settings = Settings.load(config_file, **flags)
        if settings.db is None:
            settings = Settings.load(config_file, **{**flags, "db": DEFAULT_DB})
        if not settings.loopback and not settings.admin_token:
            raise SettingsError(
                f"binding to {settings.host} exposes the sandbox beyond this machine: "
                "set --admin-token (or CHEKT_SANDBOX_ADMIN_TOKEN) to protect /_sandbox/*"
            )
        run(settings, on_ready=_banner)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {flags.get('host')}:{flags.get('port')}: {exc}"
        ) from exc
