"""CLI verbs that judge the partner from a running sandbox's traffic: ``report`` (the
report card; exit 1 when a finding fails) and ``coverage`` (what of the documented surface
was exercised; exit 1 under ``--min``)."""

from __future__ import annotations

import json
from typing import Any

import click

from sandbox.cli_control import TOKEN, URL, connected
from sandbox.errors import SandboxError
from sandbox.insights.coverage import percent, table
from sandbox.logs import printable

VERDICT = {True: "PASS", False: "FAIL", None: "—"}
FILTERS = (
    click.option("--client-id", help="Only this client's requests and subscriptions."),
    click.option("--since-seq", type=click.IntRange(0), help="Journal entries after this seq."),
)


def _filtered(command: Any) -> Any:
    for option in reversed(FILTERS):
        command = option(command)
    return command


def card_table(card: dict[str, Any]) -> str:
    """The report card for people: a line per finding, then the evidence of each failure."""
    lines = [f"  {'finding':<18} {'result':<6}  detail"]
    for finding in card["findings"]:
        verdict = VERDICT[finding["ok"]]
        lines.append(f"  {finding['id']:<18} {verdict:<6}  {printable(finding['detail'])}")
    for finding in card["findings"]:
        if finding["ok"] is False:
            proof = []
            if finding["evidence"]:
                proof.append("requests " + ", ".join(map(str, finding["evidence"][:12])))
            if finding["attempts"]:
                proof.append("attempts " + ", ".join(map(str, finding["attempts"][:12])))
            lines.append(f"  {finding['id']}: {finding['title']} — {'; '.join(proof)}")
    return "\n".join(lines)


@click.command()
@_filtered
@click.option(
    "--forge",
    is_flag=True,
    help="First send every enabled subscription a delivery with a forged signature.",
)
@click.option("--json", "as_json", is_flag=True, help="The whole /_sandbox/report answer.")
@URL
@TOKEN
def report(
    client_id: str | None,
    since_seq: int | None,
    forge: bool,
    as_json: bool,
    url: str,
    admin_token: str | None,
) -> None:
    """The report card of the partner's client and webhook receiver: token reuse,
    Retry-After, backoff, trace ids, idempotency keys, webhook deadline, dedupe, signature
    checks (PASS, FAIL, or — when nothing could judge it). Exits 1 when a finding fails."""
    with connected(url, admin_token) as sandbox:
        if forge:
            for webhook in sandbox.call("GET", "/_sandbox/subscriptions"):
                if webhook["status"] != "enabled":
                    continue
                try:
                    sent = sandbox.forge_delivery(webhook["webhook_id"])
                except SandboxError as exc:  # no delivery to copy yet: say so, carry on
                    click.echo(f"not forged to {webhook['webhook_id']}: {exc}", err=True)
                    continue
                if not as_json:
                    click.echo(f"forged to {webhook['webhook_id']}: {sent['verdict']}")
        card = sandbox.report(client_id, since_seq=since_seq)
    click.echo(json.dumps(card, indent=2) if as_json else card_table(card))
    if not card["ok"]:
        raise SystemExit(1)


@click.command()
@_filtered
@click.option("--min", "minimum", type=click.FloatRange(0, 100), help="Exit 1 under this %.")
@click.option("--touched", is_flag=True, help="List only what was exercised.")
@click.option("--json", "as_json", is_flag=True, help="The whole /_sandbox/coverage answer.")
@URL
@TOKEN
def coverage(
    client_id: str | None,
    since_seq: int | None,
    minimum: float | None,
    touched: bool,
    as_json: bool,
    url: str,
    admin_token: str | None,
) -> None:
    """Which documented operations, event types, error codes and auth tiers the partner's
    traffic exercised, and which it never touched (—)."""
    with connected(url, admin_token) as sandbox:
        found = sandbox.coverage(client_id, since_seq=since_seq)
    click.echo(json.dumps(found, indent=2) if as_json else table(found, untouched=not touched))
    if minimum is not None and percent(found) < minimum:
        click.echo(f"coverage {percent(found):.1f} % is under {minimum:g} %", err=True)
        raise SystemExit(1)


COMMANDS = (report, coverage)
