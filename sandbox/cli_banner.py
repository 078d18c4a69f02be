"""The banner ``chekt-sandbox serve`` prints once both listeners are up."""

from __future__ import annotations

import json
import shlex

import click
from starlette.applications import Starlette

from sandbox import __version__
from sandbox.auth.clients import credentials
from sandbox.settings import Settings
from sandbox.ui.access import PREFIX
from sandbox.world import inbound, subscriptions


def banner(app: Starlette, url: str) -> None:
    """What ``serve`` prints once it listens: where everything is and the credentials to
    try it with, ready to paste."""
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
    apps_key = next((k for k in creds["api_keys"] if k["name"] == "apps"), None)
    if key:
        lines.append(f"  API key     {key['key']}  (dealer app, dealer {key['dealer_id']})")
    if apps_key:
        dealer_id = apps_key["dealer_id"]
        lines.append(f"  Apps key    {apps_key['key']}  (CHeKT Apps API /v1, dealer {dealer_id})")
    if partner:
        dealers = ", ".join(str(d) for d in partner["dealer_ids"])
        lines += [
            f"  client id   {partner['client_id']}  (platform partner, dealers {dealers})",
            f"  secret      {partner['client_secret']}",
        ]
    lines.append(f"  all creds   {url}/_sandbox/credentials")
    lines.append(f"  dashboard   {url}{PREFIX}")
    lines += _bridge_lines(app, settings)
    callback = subscriptions.callback(services.world)
    if callback is not None:
        lines += [
            f"  webhooks    {callback['url']}  ({callback['profile']})",
            f"  signing     {callback['secret']}",
        ]
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
    lines += _bridge_example(app)
    if not settings.loopback:
        lines.append(
            f"\nWARNING: bound to {settings.host}, reachable from other machines; "
            "/_sandbox/* needs the admin token (X-Sandbox-Admin-Token)."
        )
    if app.state.tls is not None:
        from sandbox.tls import client_env_hint  # cryptography: only when serving https

        lines.append("\n" + client_env_hint(app.state.tls))
        lines = [
            line.replace("curl -s ", f"curl -s --cacert {app.state.tls.ca_cert} ") for line in lines
        ]
    lines.append("\nPress Ctrl-C to stop.")
    click.echo("\n".join(lines))


BANNER_BRIDGES = 20  # bridges listed one per line; the rest in /_sandbox/credentials


def _bridge_lines(app: Starlette, settings: Settings) -> list[str]:
    """The bridges' local API: where it answers, and each bridge's site, channels and token."""
    url = app.state.bridge_url
    if url is None:
        return ["  bridge API  off (--no-bridge)"]
    bridges = inbound.bridges(app.state.services.world, url)
    wanted = app.state.bridge_wanted
    note = f"; {wanted} was taken" if wanted and wanted != settings.bridge_port else ""
    lines = [f"  bridge API  {url}/api/v1/events  (HTTP Basic apikey:<token>{note})"]
    for bridge in bridges[:BANNER_BRIDGES]:
        channels = ",".join(map(str, bridge["channels"])) or "none"
        lines.append(
            f"    bridge {bridge['bridge_id']}  site {bridge['site_id']}  "
            f"channels {channels}  token {bridge['api_token']}"
        )
    if len(bridges) > BANNER_BRIDGES:
        lines.append(f"    ... and {len(bridges) - BANNER_BRIDGES} more")
    return lines


def _bridge_example(app: Starlette) -> list[str]:
    """A curl that raises an alarm as a LAN integration would, through the first bridge."""
    url = app.state.bridge_url
    bridges = inbound.bridges(app.state.services.world, url) if url else []
    first = next((b for b in bridges if b["channels"]), None)
    if first is None:
        return []
    body = json.dumps({"target_channel": str(first["channels"][0]), "event_description": "Door"})
    return [
        "",
        f"Raise an alarm through bridge {first['bridge_id']} (site {first['site_id']}):",
        f"  curl -s -u apikey:{first['api_token']} {url}/api/v1/events \\",
        f"      -H 'Content-Type: application/json' -d '{body}'",
    ]
