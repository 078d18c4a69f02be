"""CLI verbs over the record of a running sandbox: ``alarms`` and ``audit`` show what happened
to alarms and who did it, ``api-key`` makes an app's key for the Apps API (``/v1``). They talk
to ``/_sandbox`` through the same ``Sandbox`` client the Python API uses; ``sandbox.cli``
adds them to the ``chekt-sandbox`` group, whose error handling turns a refused call into one
line."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import click

from sandbox.auth.clients import APPS_SCOPES, PARTNER_SCOPES
from sandbox.cli_control import TOKEN, URL, connected
from sandbox.logs import printable
from sandbox.vocabulary import PROFILES
from sandbox.world.alarms import STATES
from sandbox.world.audit import ACTOR_KINDS

LIMIT = click.option(
    "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="At most N rows."
)
AS_JSON = click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
AUDIT_PAGE = 1000  # the most /_sandbox/audit answers at once


def _rows(rows: list[dict[str, Any]], as_json: bool, header: str, line: Any) -> None:
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    click.echo(header)
    for row in rows:
        click.echo(printable(line(row)).rstrip())  # a client's control characters never raw


def _alarm_line(alarm: dict[str, Any]) -> str:
    return (
        f"{alarm['alarm_id']:<10} {alarm['state']:<12} {alarm['site_id']:>7} "
        f"{alarm['device_id'] or '-':>8}  {alarm['priority']:<8} {alarm['trigger']:<11} "
        f"{alarm['created_at']:<24}  {alarm['updated_at']}"
    )


@click.command()
@click.option("--state", type=click.Choice(STATES), help="Only alarms in this state.")
@click.option("--site", "site_id", type=click.IntRange(1), help="Only alarms at this site.")
@click.option("--dealer", "dealer_id", type=click.IntRange(1), help="Only this dealer's alarms.")
@LIMIT
@AS_JSON
@URL
@TOKEN
def alarms(
    state: str | None,
    site_id: int | None,
    dealer_id: int | None,
    limit: int,
    as_json: bool,
    url: str,
    admin_token: str | None,
) -> None:
    """Print the alarms of a running sandbox, newest first (--json: each whole, with its
    annotations and the time of each step)."""
    filters = {"state": state, "site_id": site_id, "dealer_id": dealer_id, "limit": limit}
    with connected(url, admin_token) as sandbox:
        found = sandbox.alarms(**{k: v for k, v in filters.items() if v is not None})
    header = (
        f"{'alarm':<10} {'state':<12} {'site':>7} {'device':>8}  {'priority':<8} "
        f"{'trigger':<11} {'created_at':<24}  updated_at"
    )
    _rows(found, as_json, header, _alarm_line)


def _audit_line(entry: dict[str, Any]) -> str:
    who = f"{entry['actor_kind']} {entry['actor_id']}"
    return (
        f"{entry['seq']:>6}  {entry['at']:<24}  {who:<28} {entry['surface']:<8} "
        f"{entry['action']:<22} {entry['target']:<22} {entry['request_id'] or ''}"
    )


@click.command()
@click.option("--alarm", "alarm_id", help="Only what happened to this alarm (its audit target).")
@click.option("--target", help="Only this target, e.g. 'alarm A-10293' or 'device 100002'.")
@click.option("--actor", "actor_id", help="Only what this actor did (a client or user id).")
@click.option("--actor-kind", type=click.Choice(ACTOR_KINDS), help="Only this kind of actor.")
@click.option("--action", help="Only this action, e.g. alarm.acknowledged or alarm.annotated.")
@LIMIT
@AS_JSON
@URL
@TOKEN
def audit(
    alarm_id: str | None,
    target: str | None,
    actor_id: str | None,
    actor_kind: str | None,
    action: str | None,
    limit: int,
    as_json: bool,
    url: str,
    admin_token: str | None,
) -> None:
    """Print the audit log of a running sandbox: the latest entries, oldest first — who did
    what to the record, through which surface, under which request id."""
    if alarm_id is not None and target is not None:
        raise click.UsageError("give --alarm or --target, not both")
    if alarm_id is not None:
        target = f"alarm {alarm_id}"
    filters = {
        k: v
        for k, v in (
            ("target", target),
            ("actor_id", actor_id),
            ("actor_kind", actor_kind),
            ("action", action),
        )
        if v is not None
    }
    latest: deque[dict[str, Any]] = deque(maxlen=limit)
    with connected(url, admin_token) as sandbox:
        after = 0
        while True:  # the log reads oldest first: page to its end, keep the last rows
            page = sandbox.audit(**filters, since_seq=after, limit=AUDIT_PAGE)
            latest.extend(page)
            if len(page) < AUDIT_PAGE:
                break
            after = page[-1]["seq"]
    header = (
        f"{'seq':>6}  {'at':<24}  {'actor':<28} {'surface':<8} {'action':<22} "
        f"{'target':<22} request"
    )
    _rows(list(latest), as_json, header, _audit_line)


@click.command("api-key")
@click.option("--dealer", "dealer_id", type=click.IntRange(1), required=True, help="Its dealer.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice((*APPS_SCOPES, *PARTNER_SCOPES)),
    help="A scope it is granted (repeatable), e.g. events:read.",
)
@click.option("--name", help="The app's name. [default: sandbox app]")
@click.option("--webhook-url", help="Subscribe the app: it hears what its scopes allow.")
@click.option("--webhook-secret", help="The subscription's signing secret. [default: a new one]")
@click.option("--profile", type=click.Choice(PROFILES), help="The subscription's webhook profile.")
@AS_JSON
@URL
@TOKEN
def api_key(
    dealer_id: int,
    scopes: tuple[str, ...],
    name: str | None,
    webhook_url: str | None,
    webhook_secret: str | None,
    profile: str | None,
    as_json: bool,
    url: str,
    admin_token: str | None,
) -> None:
    """Make an app with an API key for one dealer (the Apps API, /v1) and print the key:
    KEY=$(chekt-sandbox api-key --dealer 1001 --scope events:read | head -1)."""
    if webhook_url is None and (webhook_secret or profile):
        raise click.UsageError("--webhook-secret and --profile go with --webhook-url")
    hook: dict[str, Any] | None = None
    if webhook_url is not None:
        hook = {"url": webhook_url, "secret": webhook_secret, "profile": profile}
        hook = {k: v for k, v in hook.items() if v is not None}
    with connected(url, admin_token) as sandbox:
        made = sandbox.create_api_key(dealer_id, scopes, name=name, webhook=hook)
    if as_json:
        click.echo(json.dumps(made, indent=2))
        return
    click.echo(made["key"])
    click.echo(f"client id   {made['client_id']}")
    click.echo(f"dealer      {made['dealer_id']}")
    click.echo(f"scopes      {' '.join(made['scopes'])}")
    if made.get("webhook"):
        click.echo(f"webhook id  {made['webhook']['webhook_id']}")
        click.echo(f"secret      {made['webhook']['secret']}")


COMMANDS = (alarms, audit, api_key)
