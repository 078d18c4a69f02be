"""CLI verbs that drive a sandbox already running (``serve``), over its ``/_sandbox`` API and
through the same ``Sandbox`` client the Python API uses: deliveries (--follow), reset, resend,
subscribe, credentials, token. ``sandbox.cli`` adds them to the ``chekt-sandbox`` group,
whose error handling turns a refused call into one line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sandbox.api.control import RESETTABLE
from sandbox.errors import SandboxError
from sandbox.logs import printable
from sandbox.vocabulary import OUTCOMES, PROFILES

if TYPE_CHECKING:  # the client (httpx, the app) loads when a verb runs, not for ``serve``
    from sandbox.client import Sandbox

URL = click.option(
    "--url",
    default="http://127.0.0.1:8765",
    show_default=True,
    envvar="CHEKT_SANDBOX_URL",
    help="Base URL of a running sandbox.",
)
TOKEN = click.option(
    "--admin-token",
    envvar="CHEKT_SANDBOX_ADMIN_TOKEN",
    help="Admin token, when the sandbox is bound off loopback.",
)


@contextmanager
def connected(url: str, admin_token: str | None) -> Iterator[Sandbox]:
    from sandbox.client import Sandbox

    sandbox = Sandbox.connect(url, admin_token=admin_token)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def control(url: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    """One call to a running sandbox."""
    with connected(url, token) as sandbox:
        return sandbox.call(method, path, body)


@click.command()
@click.option("--seed", type=int, help="Reseed the world with this seed. [default: its own]")
@click.option(
    "--only",
    type=click.Choice(RESETTABLE),
    multiple=True,
    help="Reset only this part (repeatable). [default: all]",
)
@URL
@TOKEN
def reset(seed: int | None, only: tuple[str, ...], url: str, admin_token: str | None) -> None:
    """Reset a running sandbox: reseed the world (its subscriptions and events go with it),
    clear the request journal and the deliveries. Credentials stay."""
    body: dict[str, Any] = {}
    if seed is not None:
        body["seed"] = seed
    if only:
        body["only"] = list(only)
    done = control(url, "POST", "/_sandbox/reset", body or None, admin_token)
    click.echo(f"reset {', '.join(done['reset'])} of {url} (seed {done['seed']})")


@click.command()
@click.argument("event_id")
@URL
@TOKEN
def resend(event_id: str, url: str, admin_token: str | None) -> None:
    """Deliver EVENT_ID again to every subscription that hears it."""
    with connected(url, admin_token) as sandbox:
        for delivery_id in sandbox.resend(event_id):
            click.echo(delivery_id)


@click.command()
@click.argument("callback_url", required=False)
@click.option("--events", help="Comma-separated event types. [default: all]")
@click.option("--secret", help="Signing secret (16+ characters). [default: a new one]")
@click.option("--profile", type=click.Choice(PROFILES))
@click.option("--remove", "remove_id", metavar="WEBHOOK_ID", help="Remove this subscription.")
@URL
@TOKEN
def subscribe(
    callback_url: str | None,
    events: str | None,
    secret: str | None,
    profile: str | None,
    remove_id: str | None,
    url: str,
    admin_token: str | None,
) -> None:
    """Send the sandbox's webhooks to CALLBACK_URL (or --remove one); prints its id and secret."""
    if (callback_url is None) == (remove_id is None):
        raise click.ClickException("give a CALLBACK_URL to subscribe, or --remove WEBHOOK_ID")
    with connected(url, admin_token) as sandbox:
        if remove_id is not None:
            sandbox.unsubscribe(remove_id)
            click.echo(f"removed {remove_id}")
            return
        assert callback_url is not None
        types = [t.strip() for t in events.split(",") if t.strip()] if events else None
        made = sandbox.subscribe(callback_url, events=types, secret=secret, profile=profile)
    click.echo(f"webhook id  {made['webhook_id']}")
    click.echo(f"url         {made['url']}")
    click.echo(f"events      {', '.join(made.get('events') or []) or 'all'}")
    click.echo(f"secret      {made['secret']}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The whole /_sandbox/credentials answer.")
@URL
@TOKEN
def credentials(as_json: bool, url: str, admin_token: str | None) -> None:
    """Print the clients, API keys and dealer admins of a running sandbox."""
    with connected(url, admin_token) as sandbox:
        creds = sandbox.credentials
    if as_json:
        click.echo(json.dumps(creds, indent=2))
        return
    click.echo(f"issuer  {creds['issuer']}")
    click.echo("\nclients:")
    for c in creds["clients"]:
        dealers = ",".join(str(d) for d in c["dealer_ids"]) or "-"
        secret = c["client_secret"] or ("public" if c["public"] else "assertion key")
        click.echo(f"  {c['client_id']:<32} {c['kind']:<17} dealers {dealers:<16} {secret}")
    click.echo("\nAPI keys:")
    for k in creds["api_keys"]:
        click.echo(f"  {k['key']}  dealer {k['dealer_id']}")
    click.echo("\ndealer admins (sign in at /authorize):")
    for u in creds.get("users", []):
        click.echo(f"  {u['email']:<40} dealer {u['dealer_id']}")


@click.command()
@click.option("--client-id", help="The client. [default: the seeded platform partner]")
@click.option("--client-secret", help="Its secret. [default: looked up in the sandbox]")
@click.option(
    "--key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Private key (PEM) of an assertion client: sign an assertion instead.",
)
@click.option("--kid", help="Key id for --key. [default: the key's thumbprint, as keys new]")
@URL
@TOKEN
def token(
    client_id: str | None,
    client_secret: str | None,
    key_file: Path | None,
    kid: str | None,
    url: str,
    admin_token: str | None,
) -> None:
    """Print a bearer token: TOKEN=$(chekt-sandbox token) then -H "Authorization: Bearer $TOKEN"."""
    with connected(url, admin_token) as sandbox:
        if key_file is not None:
            if client_id is None:
                raise click.ClickException("--key needs the --client-id it is registered for")
            click.echo(sandbox.assertion_token(client_id, key_file.read_bytes(), kid))
            return
        if client_id is not None and client_secret is None:
            client_secret = _secret_of(sandbox, client_id)
        click.echo(sandbox.token(client_id, client_secret))


def _secret_of(sandbox: Sandbox, client_id: str) -> str:
    known = {c["client_id"]: c for c in sandbox.credentials["clients"]}
    if client_id not in known:
        raise SandboxError(
            f"no client {client_id!r} in this sandbox; clients: {', '.join(known) or 'none'}"
        )
    secret = known[client_id]["client_secret"]
    if not secret:
        raise SandboxError(
            f"client {client_id!r} has no secret: pass --key <private key file> to sign "
            "an assertion"
        )
    return str(secret)


@click.command()
@click.option("--event-id", help="Only attempts for this event.")
@click.option("--webhook-id", help="Only attempts for this subscription.")
@click.option(
    "--outcome",
    type=click.Choice(OUTCOMES),
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing attempts as they happen.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@URL
@TOKEN
def deliveries(
    event_id: str | None,
    webhook_id: str | None,
    outcome: str | None,
    follow: bool,
    as_json: bool,
    url: str,
    admin_token: str | None,
) -> None:
    """Print the webhook delivery journal of a running sandbox (--follow: live, until Ctrl-C)."""
    params = {
        k: v
        for k, v in (("event_id", event_id), ("webhook_id", webhook_id), ("outcome", outcome))
        if v
    }
    if not as_json:
        click.echo(
            f"{'seq':>5}  {'event':<20} {'webhook':<20} {'try':>3}  {'outcome':<19} "
            f"{'status':>6}  {'ms':>8}  detail"
        )
    last = 0
    with connected(url, admin_token) as sandbox:
        while True:
            for row in sandbox.deliveries(**params, since_seq=last):
                last = row["seq"]
                click.echo(json.dumps(row) if as_json else _attempt_line(row))
            if not follow:
                return
            time.sleep(0.25)


def _attempt_line(row: dict[str, Any]) -> str:
    from sandbox.client import answer_of

    status = row["status_code"] if row["status_code"] is not None else "-"
    latency = f"{row['latency_ms']:.1f}" if row["latency_ms"] is not None else "-"
    detail = answer_of(row) if row["outcome"] != "delivered" else ""
    return printable(
        f"{row['seq']:>5}  {row['event_id']:<20} {row['webhook_id']:<20} "
        f"{row['attempt']:>3}  {row['outcome']:<19} {status:>6}  {latency:>8}  {detail}"
    ).rstrip()


COMMANDS = (deliveries, reset, resend, subscribe, credentials, token)
