"""The verbs people expect from a local platform CLI (Stripe CLI, WireMock admin), each run as
a user runs it against a real sandbox: deliveries --follow, reset, resend, subscribe,
credentials, token, serve --fresh; and one clear line when something is wrong."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE, Popen

import httpx
import pytest
from click.testing import CliRunner
from helpers import live_server
from receiver import Answer, Receiver, wait_for
from test_cli import CLI, serving

from sandbox import Sandbox
from sandbox.cli import main
from sandbox.cli_control import connected
from sandbox.settings import Settings
from sandbox.webhooks import verify_signature


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(clock="virtual") as running:
        yield running


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _sites(sandbox: Sandbox) -> list[str]:
    token = cli("token", "--url", sandbox.url).strip()
    answer = httpx.get(
        f"{sandbox.url}/partner/v1/dealers/1001/sites",
        headers={"Authorization": f"Bearer {token}"},
    )
    return [s["name"] for s in answer.json()]


def _add_site(sandbox: Sandbox, name: str) -> None:
    token = cli("token", "--url", sandbox.url).strip()
    httpx.post(
        f"{sandbox.url}/partner/v1/dealers/1001/sites",
        json={"external_site_id": name, "name": name, "timezone": "UTC"},
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()


def test_deliveries_follow_prints_attempts_as_they_happen(sandbox: Sandbox) -> None:
    rx = Receiver()
    with live_server(rx.app) as hook:
        sandbox.subscribe(f"{hook}/in")
        command = [CLI, "deliveries", "--follow", "--url", sandbox.url]
        with Popen(command, stdout=PIPE, stderr=subprocess.STDOUT, text=True) as follow:
            lines: queue.Queue[str] = queue.Queue()
            assert follow.stdout is not None
            reader = threading.Thread(target=lambda: [lines.put(x) for x in follow.stdout or []])
            reader.start()
            try:
                assert "status" in lines.get(timeout=20)  # the header, before any attempt
                [first] = sandbox.emit("alarm.created")
                line = lines.get(timeout=10)
                assert first in line and "delivered" in line and " 200 " in line
                rx.answers["/in"] = Answer(status=503, body=b"maintenance")
                [second] = sandbox.emit("alarm.created")
                line = lines.get(timeout=10)
                assert second in line and "failed" in line and "503 maintenance" in line
                assert lines.empty()
            finally:
                follow.send_signal(signal.SIGINT)
                follow.wait(timeout=10)
                reader.join(timeout=10)


def test_reset_clears_the_world_or_only_what_is_named(sandbox: Sandbox) -> None:
    _add_site(sandbox, "Mine")
    out = cli("reset", "--only", "recorder", "--url", sandbox.url)
    assert out.strip() == f"reset recorder of {sandbox.url} (seed 42)"
    assert not sandbox.requests(method="POST", path="/partner/v1/*")  # the journal went
    assert "Mine" in _sites(sandbox)  # the world stayed
    out = cli("reset", "--seed", "7", "--url", sandbox.url)
    assert "reset deliveries, recorder, world" in out and "(seed 7)" in out
    assert "Mine" not in _sites(sandbox)


def test_subscribe_resend_and_remove(sandbox: Sandbox) -> None:
    rx = Receiver()
    with live_server(rx.app) as hook:
        out = cli("subscribe", f"{hook}/cb", "--events", "alarm.created", "--url", sandbox.url)
        fields = {line[:12].strip(): line[12:] for line in out.splitlines()}
        assert fields["events"] == "alarm.created"
        [event_id] = sandbox.emit("alarm.created")
        [got] = wait_for(lambda: rx.at("/cb"))
        verify_signature(fields["secret"], got.headers, got.body, now=sandbox.clock.now())
        assert len(cli("resend", event_id, "--url", sandbox.url).split()) == 1
        wait_for(lambda: len(rx.at("/cb")) == 2)
        webhook_id = fields["webhook id"]
        removed = cli("subscribe", "--remove", webhook_id, "--url", sandbox.url)
        assert removed.strip() == f"removed {webhook_id}"
    assert sandbox.call("GET", "/_sandbox/subscriptions") == []


def test_credentials_prints_what_a_developer_needs(sandbox: Sandbox) -> None:
    creds = sandbox.credentials
    out = cli("credentials", "--url", sandbox.url)
    assert sandbox.partner["client_id"] in out and sandbox.partner["client_secret"] in out
    assert creds["api_keys"][0]["key"] in out and creds["users"][0]["email"] in out
    assert json.loads(cli("credentials", "--json", "--url", sandbox.url)) == creds


def test_token_for_the_partner_a_named_client_and_a_key(sandbox: Sandbox, tmp_path: Path) -> None:
    for args in ((), ("--client-id", "sandbox-dealer-app-1001")):
        token = cli("token", *args, "--url", sandbox.url).strip()
        answer = httpx.get(
            f"{sandbox.url}/partner/v1/dealers/1001/sites",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
    cli("keys", "new", "--dir", str(tmp_path), "--client-id", "acme")
    sandbox.register_client(
        client_id="acme",
        kind="platform_partner",
        public_key=(tmp_path / "acme-public.pem").read_text(),
    )  # no key_id: the sandbox names it by thumbprint, as token --key does
    key = str(tmp_path / "acme-private.pem")
    token = cli("token", "--client-id", "acme", "--key", key, "--url", sandbox.url).strip()
    assert token.count(".") == 2
    unknown = CliRunner().invoke(main, ["token", "--client-id", "nobody", "--url", sandbox.url])
    assert unknown.exit_code == 1
    assert unknown.output.strip().startswith("Error: no client 'nobody' in this sandbox")


def test_config_file_key_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    cli("keys", "new", "--dir", str(folder / "keys"), "--client-id", "acme")
    config = folder / "sandbox.yaml"
    config.write_text(
        "clients:\n  - client_id: acme\n    kind: platform_partner\n"
        "    public_key_file: keys/acme-public.pem\n"
    )
    settings = Settings.load(config, db=":memory:")  # the tests run from the repository root
    with Sandbox(settings) as running:
        private = (folder / "keys" / "acme-private.pem").read_bytes()
        assert running.assertion_token("acme", private).count(".") == 2


def test_serve_fresh_starts_from_an_empty_store(tmp_path: Path) -> None:
    db = str(tmp_path / "dev.db")
    with serving("--db", db) as (url, _), connected(url, None) as running:
        _add_site(running, "Kept")
    with serving("--db", db) as (url, _), connected(url, None) as running:
        assert "Kept" in _sites(running)
    with serving("--db", db, "--fresh") as (url, _), connected(url, None) as running:
        assert "Kept" not in _sites(running)


def test_busy_port_is_one_line_naming_host_and_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [CLI, "serve", "--port", str(port), "--db", ":memory:"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"Error: cannot serve on 127.0.0.1:{port}: the port is in use; stop what serves "
        "there, or pick another with --port (0 picks a free one)\n"
    )
