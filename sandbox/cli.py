"""The ``chekt-sandbox`` command: a thin layer over ``server.run`` and the settings."""

from __future__ import annotations

import dataclasses
import errno
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click

from sandbox import __version__
from sandbox.cli_banner import banner
from sandbox.cli_control import COMMANDS, connected
from sandbox.cli_control import TOKEN as _TOKEN
from sandbox.cli_control import URL as _URL
from sandbox.cli_control import control as _control
from sandbox.cli_insights import COMMANDS as INSIGHT_COMMANDS
from sandbox.cli_record import COMMANDS as RECORD_COMMANDS
from sandbox.errors import SandboxError
from sandbox.journal_filters import SURFACES
from sandbox.logs import printable
from sandbox.server import run
from sandbox.settings import Settings, SettingsError
from sandbox.vocabulary import CLOCKS, PROFILES, RATE_LIMITS, RESOLUTIONS
from sandbox.world.subscriptions import SUBSCRIPTION_FIELDS

DEFAULT_DB = ".chekt-sandbox/sandbox.db"


class _Group(click.Group):
    """A refused control call or a bad setting reaches the user as one line (click prints a
    ``ClickException`` as ``Error: …``), never as a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (SandboxError, OSError) as exc:
            raise click.ClickException(" ".join(str(exc).split())) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chekt-sandbox")
def main() -> None:
    """A local, offline CHeKT: Partner API, auth server and webhooks for partner tests."""


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
@click.option("--clock", type=click.Choice(CLOCKS), help="[default: system]")
@click.option("--issuer", help="Pin the token issuer (default: the origin each client used).")
@click.option("--admin-token", help="Token for /_sandbox/* on a non-loopback bind.")
@click.option(
    "--callback", help="A webhook URL that receives every event (a sandbox-wide subscription)."
)
@click.option(
    "--events",
    "callback_events",
    help="Comma-separated event types for --callback. [default: all]",
)
@click.option(
    "--profile",
    "webhook_profile",
    type=click.Choice(PROFILES),
    help="Webhook format. [default: chekt-apps]",
)
@click.option(
    "--tls/--no-tls",
    default=None,
    help="Serve HTTPS with a local CA made once under .chekt-sandbox/tls/.",
)
@click.option(
    "--rate-limit",
    "rate_limit",
    type=click.Choice(RATE_LIMITS),
    help="CHeKT's rate limits per client: free 60/min burst 5, pro 600/min burst 30, "
    "enterprise 3000/min burst 200. [default: off]",
)
@click.option(
    "--bridge-port",
    type=int,
    help="Port of the bridges' local API (POST /api/v1/events, HTTP Basic); 0 picks a free "
    "one. [default: 30003, or a free one when that is taken]",
)
@click.option("--no-bridge", is_flag=True, help="Do not serve the bridges' local API.")
@click.option("--fresh", is_flag=True, help="Start from an empty store (deletes the --db file).")
def serve(config_file: Path | None, fresh: bool, no_bridge: bool, **flags: Any) -> None:
    """Serve the sandbox until Ctrl-C.

    Settings come from the --config file, then CHEKT_SANDBOX_* environment variables
    (e.g. CHEKT_SANDBOX_PORT), then these flags, each overriding the one before.
    """
    if no_bridge:
        flags["bridge"] = False
    settings = Settings.load(config_file, **flags)
    if settings.db is None:
        settings = Settings.load(config_file, **{**flags, "db": DEFAULT_DB})
    if not settings.loopback and not settings.admin_token:
        raise SettingsError(
            f"binding to {settings.host} exposes the sandbox beyond this machine: "
            "set --admin-token (or CHEKT_SANDBOX_ADMIN_TOKEN) to protect /_sandbox/*"
        )
    if fresh and settings.db and settings.db != ":memory:":
        for suffix in ("", "-wal", "-shm"):  # SQLite's write-ahead log goes with the file
            Path(settings.db + suffix).unlink(missing_ok=True)
    try:
        run(settings, on_ready=banner)
    except OSError as exc:
        raise click.ClickException(_bind_problem(settings, exc)) from exc


def _bind_problem(settings: Settings, exc: OSError) -> str:
    where = f"{settings.host}:{settings.port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot serve on {where}: the port is in use; stop what serves there, "
            "or pick another with --port (0 picks a free one)"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot serve on {where}: no such address on this machine; check --host"
    return f"cannot serve on {where}: {exc.strerror or exc}"


@main.group()
def keys() -> None:
    """Key material for assertion-token (tier 3) clients."""


@keys.command("new")
@click.option("--client-id", default="my-platform", show_default=True, help="Client it is for.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".chekt-sandbox/keys"),
    show_default=True,
    help="Where to write the key pair.",
)
@click.option("--ec", is_flag=True, help="An EC P-256 key (ES256) instead of RSA 2048 (RS256).")
def new_key(client_id: str, directory: Path, ec: bool) -> None:
    """Write a fresh key pair and print the settings that register its public half."""
    from sandbox.auth.keypairs import write_key_pair  # cryptography: not for ``serve``

    pair = write_key_pair(directory, client_id, ec=ec)
    click.echo(f"wrote {pair.private} (keep it secret: your app signs assertions with it)")
    click.echo(f"wrote {pair.public}\n")
    click.echo("Register it in the sandbox settings file (--config):\n")
    click.echo(
        "clients:\n"
        f"  - client_id: {client_id}\n"
        "    kind: platform_partner\n"
        "    dealer_ids: [1001]\n"
        f"    public_key_file: {pair.public}\n"
        f"    key_id: {pair.kid}\n"
    )
    click.echo(
        f"Sign assertions with {pair.alg}, header kid={pair.kid}, iss = sub = {client_id}, "
        "aud = the sandbox issuer (with its trailing slash), exp = iat + 300, a fresh jti."
    )


for _command in (*COMMANDS, *RECORD_COMMANDS, *INSIGHT_COMMANDS):
    main.add_command(_command)


@main.command()
@click.argument("event_type", required=False)
@click.option("--data", "data", help='Field overrides as JSON, e.g. \'{"priority": "HIGH"}\'.')
@click.option("--lifecycle", type=click.Choice(["alarm"]), help="Emit a whole alarm lifecycle.")
@click.option(
    "--variant",
    type=click.Choice(RESOLUTIONS),
    help="How the lifecycle ends.",
)
@click.option("--random", "count", type=int, help="Emit N random events.")
@click.option("--rate", type=float, help="Events per second for --random.")
@click.option("--seed", type=int, help="Seed for generated values.")
@_URL
@_TOKEN
def emit(
    event_type: str | None,
    data: str | None,
    lifecycle: str | None,
    variant: str | None,
    count: int | None,
    rate: float | None,
    seed: int | None,
    url: str,
    admin_token: str | None,
) -> None:
    """Emit events on a running sandbox: EVENT_TYPE, --lifecycle alarm, or --random N."""
    body: dict[str, Any] = {}
    if event_type:
        body["type"] = event_type
    if lifecycle:
        body["lifecycle"] = lifecycle
    if count is not None:
        body["random"] = count
    if len(body) != 1:
        raise click.UsageError("give exactly one of EVENT_TYPE, --lifecycle or --random")
    if data:
        try:
            body["data"] = json.loads(data)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from exc
    for name, value in (("variant", variant), ("rate", rate), ("seed", seed)):
        if value is not None:
            body[name] = value
    result = _control(url, "POST", "/_sandbox/events", body, admin_token)
    for event_id in result["event_ids"]:
        click.echo(event_id)


@main.command()
@click.option("--seconds", type=float, required=True, help="How far to move a virtual clock.")
@_URL
@_TOKEN
def advance(seconds: float, url: str, admin_token: str | None) -> None:
    """Advance the virtual clock of a running sandbox (serve --clock virtual); returns once
    the deliveries that fell due on the way have their outcomes."""
    with connected(url, admin_token) as sandbox:
        now = sandbox.clock.advance(seconds)  # checks the value, waits as long as it steps
    click.echo(f"now {now:.3f}")


@main.command("requests")
@click.option("--method", help="Only this HTTP method.")
@click.option("--path", help="Only paths matching this glob, e.g. '/partner/v1/*'.")
@click.option("--client-id", help="Only requests by this client.")
@click.option("--status", help="Only this status, or a class such as 4xx.")
@click.option(
    "--surface",
    type=click.Choice(SURFACES),
    help="Only events into CHeKT: the Event API's, or the bridges' local API's.",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new requests until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@_URL
@_TOKEN
def list_requests(
    method: str | None,
    path: str | None,
    client_id: str | None,
    status: str | None,
    surface: str | None,
    follow: bool,
    as_json: bool,
    url: str,
    admin_token: str | None,
) -> None:
    """Print the journal of requests a running sandbox received (secrets redacted)."""
    filters = {
        k: v
        for k, v in (
            ("method", method),
            ("path", path),
            ("client_id", client_id),
            ("status", status),
            ("surface", surface),
        )
        if v
    }
    if not as_json:
        click.echo(f"{'seq':>6}  {'method':<7} {'status':>6} {'ms':>8}  {'client':<28} path")
    last = 0
    while True:
        query = urlencode({**filters, "since_seq": last})
        for entry in _control(url, "GET", f"/_sandbox/requests?{query}", token=admin_token):
            last = entry["seq"]
            if as_json:
                click.echo(json.dumps(entry))
                continue
            target = entry["path"] + (f"?{entry['query']}" if entry["query"] else "")
            line = (
                f"{entry['seq']:>6}  {entry['method']:<7} {entry['status']:>6} "
                f"{entry['duration_ms']:>8.1f}  {entry['client_id'] or '-':<28} {target}"
            )
            click.echo(printable(line))  # a client's control characters never reach it raw
        if not follow:
            return
        time.sleep(0.5)


@main.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--callback", help="The partner's webhook URL the scenario drives.")
@click.option("--secret", help="The signing secret the partner's receiver expects.")
@click.option("--seed", type=int, help="Override the scenario's world seed.")
@click.option(
    "--profile",
    type=click.Choice(PROFILES),
    help="Override the scenario's webhook profile.",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a JUnit XML report here (a test case per step).",
)
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="Divide real-time waits by this factor.",
)
@click.option(
    "--url",
    help="Drive a running sandbox (e.g. serve) instead of starting one. Its data stays: the "
    "replay resets nothing (unless --reset), and removes the subscription it adds for "
    "--callback at the end.",
)
@click.option(
    "--reset",
    "reset_first",
    is_flag=True,
    help="With --url: reseed its world (scenario's seed) and clear its journals first.",
)
@click.option("--admin-token", envvar="CHEKT_SANDBOX_ADMIN_TOKEN", help="For --url off loopback.")
@click.option("--client-id", help="Partner client that 'call' steps act as. [default: seeded]")
@click.option("--client-secret", help="Its secret.")
def replay(
    files: tuple[Path, ...],
    callback: str | None,
    secret: str | None,
    seed: int | None,
    profile: str | None,
    junit_path: Path | None,
    speed: float,
    url: str | None,
    reset_first: bool,
    admin_token: str | None,
    client_id: str | None,
    client_secret: str | None,
) -> None:
    """Replay scenario FILES against a partner's service; exit 1 unless every step passed."""
    from sandbox import scenario as scenarios

    _check_secret(secret)
    overrides: dict[str, Any] = {}
    if seed is not None:
        overrides["seed"] = seed
    if profile is not None:
        overrides["webhook_profile"] = profile
    if reset_first and not url:
        raise click.ClickException("--reset goes with --url: a sandbox replay starts is fresh")
    reports = []
    interactive = sys.stderr.isatty()

    def progress(line: str) -> None:
        if interactive:
            click.echo(f"\r\x1b[2K{line}", nl=False, err=True)

    options: dict[str, Any] = {
        "callback": callback,
        "secret": secret,
        "speed": speed,
        "progress": progress,
        "client_id": client_id,
        "client_secret": client_secret,
        "reset": reset_first,
    }
    for path in files:
        try:
            loaded = scenarios.load(path)
        except scenarios.ScenarioError as exc:
            raise click.ClickException(str(exc)) from exc
        if seed is not None or profile is not None:
            loaded = dataclasses.replace(
                loaded,
                seed=loaded.seed if seed is None else seed,
                profile=profile or loaded.profile,
            )
        if url:
            with connected(url, admin_token) as sandbox:
                click.echo(_driving(sandbox.url, loaded, reset_first))
                report = scenarios.Runner(sandbox, **options).run(loaded)
        else:
            with scenarios.sandbox_for(loaded, **overrides) as sandbox:
                click.echo(f"{path}: started a sandbox at {sandbox.url} for this replay")
                report = scenarios.Runner(sandbox, **options).run(loaded)
        if interactive:
            click.echo("\r\x1b[2K", nl=False, err=True)
        click.echo(scenarios.summary(report))
        reports.append(report)
    if junit_path is not None:
        try:
            junit_path.parent.mkdir(parents=True, exist_ok=True)
            scenarios.junit(reports, junit_path)
        except OSError as exc:
            raise click.ClickException(
                f"cannot write the JUnit report {junit_path}: {exc.strerror or exc}"
            ) from exc
        click.echo(f"JUnit report written to {junit_path}")
    failed = [r.scenario.name for r in reports if not r.passed]
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(reports)} scenario(s) failed: {', '.join(failed)}"
        )


def _check_secret(secret: str | None) -> None:
    shortest = next(f.min_length for f in SUBSCRIPTION_FIELDS if f.name == "secret")
    if secret is not None and len(secret) < shortest:
        raise click.ClickException(
            f"--secret is {len(secret)} characters; webhook signing secrets have at least "
            f"{shortest}: pass the secret your receiver checks signatures with"
        )


def _driving(url: str, loaded: Any, reset_first: bool) -> str:
    """Which sandbox a --url replay drives, and what it keeps of the scenario's setup."""
    line = f"{loaded.path}: replaying against the sandbox at {url}"
    line += f", reset to seed {loaded.seed}" if reset_first else " (its world as it is)"
    if loaded.settings:
        line += (
            f"; the scenario's settings ({', '.join(loaded.settings)}) apply only to a "
            "sandbox replay starts"
        )
    return line


@main.group()
def scenario() -> None:
    """Scenario files: start a new one, or print their JSON Schema."""


STARTER = """\
# A chekt-sandbox scenario: what CHeKT does, and what your service must do in answer.
# Run it:  chekt-sandbox replay {file} --callback http://127.0.0.1:3000/chekt/webhooks \\
#              --secret <the webhook secret your service expects>
name: {name}
description: An alarm arrives; the service accepts it and looks up the site.
seed: 42                      # the fake world (same seed, same dealers/sites/devices)
# profile: chekt-apps         # webhook format: chekt-apps | legacy-guide | dealer-v1
# settings: {{token_lifetime: 3600}}   # seed, clock, token lifetime, webhook knobs (schema)
steps:
  - name: an alarm at the first site
    emit: {{type: alarm.created, data: {{site_id: 10001, priority: HIGH}}}}
  - name: the service answers 2xx
    expect_delivery: {{status: 200, within: 5s}}
  - name: the service fetches the site
    expect_request: {{method: GET, path: /partner/v1/dealers/*/sites/10001, within: 5s}}
  - name: the rest of the lifecycle, on the virtual clock
    emit: {{lifecycle: alarm}}
  - advance: 6m
  - expect_delivery: {{status: 200}}
  - name: a forged delivery is refused
    adversarial: {{kind: tampered_signature, expect: reject}}
  - check:
      deliveries: {{outcome: delivered, every_event: true}}
"""


@scenario.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("scenarios"),
    show_default=True,
)
def new_scenario(name: str, directory: Path) -> None:
    """Write a commented starter scenario NAME.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.lower()).strip("-")
    path = directory / f"{slug or 'scenario'}.yaml"
    if path.exists():
        raise click.ClickException(f"{path} already exists")
    path.write_text(STARTER.format(name=name, file=path))
    click.echo(f"wrote {path}")


@scenario.command("schema")
def scenario_schema() -> None:
    """Print the JSON Schema of scenario files."""
    from sandbox.scenario.spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
