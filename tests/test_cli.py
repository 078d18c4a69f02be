"""``chekt-sandbox serve`` as a user runs it: a real process on a free port, the README's
commands run as written, clean shutdown, and refusal of production credentials."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import PIPE, STDOUT, Popen

import httpx
import pytest
from click.testing import CliRunner
from helpers import live_server
from receiver import Receiver, wait_for

from sandbox.cli import main
from sandbox.webhooks import verify_signature

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("chekt-sandbox"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


READY_WITHIN = 60  # s: a bound, not a figure; a loaded parallel run can take a while to start


def _wait_ready(url: str, process: Popen[str]) -> None:
    deadline = time.monotonic() + READY_WITHIN
    # one client for every poll: each new one (httpx.get makes one) builds an SSL context,
    # 25 ms of CPU, a serve's whole start polled every 50 ms
    with httpx.Client(timeout=1) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(
                    f"serve exited early: {process.stdout.read() if process.stdout else ''}"
                )
            try:
                if http.get(f"{url}/.well-known/jwks.json").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
    raise AssertionError(f"serve did not become ready within {READY_WITHIN} s")


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, Popen[str]]]:
    """``chekt-sandbox serve`` on a free port (unless the environment names one)."""
    port = int((env or {}).get("CHEKT_SANDBOX_PORT", 0)) or _free_port()
    command = [CLI, "serve", *args]
    if not env:
        command += ["--port", str(port)]
    with Popen(command, env=env, stdout=PIPE, stderr=STDOUT, text=True) as process:
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process)
            yield url, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Popen[str]]]:
    with serving("--db", str(tmp_path_factory.mktemp("serve") / "sandbox.db")) as running:
        yield running


def _readme_block(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- readme-test: {name} -->\n```bash\n(.*?)```", text, re.S)
    assert match, f"README block {name!r} not found"
    return match.group(1)


def _run_block(name: str, url: str) -> str:
    script = _readme_block(name).replace("http://127.0.0.1:8765", url)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_token_lines_work_as_written(served: tuple[str, Popen[str]]) -> None:
    sites = json.loads(_run_block("token", served[0]))
    assert len(sites) == 5
    assert all(set(site) == {"site_id", "name", "timezone"} for site in sites)


def test_readme_api_key_lines_work_as_written(served: tuple[str, Popen[str]]) -> None:
    site = json.loads(_run_block("api-key", served[0]))
    assert site["external_site_id"] == "my-site-1" and site["timezone"] == "Europe/Berlin"


def test_readme_apps_lines_work_as_written(served: tuple[str, Popen[str]]) -> None:
    alarm = json.loads(_run_block("apps", served[0]))
    assert alarm["state"] == "acknowledged" and alarm["reason"] == "verified on video"
    assert alarm["site_id"] == 10001 and alarm["snapshot_url"].startswith(served[0])


def test_banner_and_its_curl_work(served: tuple[str, Popen[str]]) -> None:
    url, process = served
    credentials = httpx.get(f"{url}/_sandbox/credentials").json()
    dashboard = httpx.get(f"{url}/", follow_redirects=True)  # the base URL opens the dashboard
    assert dashboard.status_code == 200 and "<h1>Requests</h1>" in dashboard.text
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert f"base URL    {url}" in output
    assert f"issuer      {url}/" in output
    assert f"dashboard   {url}/_sandbox/ui" in output
    assert credentials["api_keys"][0]["key"] in output
    assert "Traceback" not in output
    curl = output.split("Get a token and list a dealer's sites:\n", 1)[1].split("\n\n")[0]
    script = "\n".join(line.strip() for line in curl.splitlines())
    assert "TOKEN=$(curl" in script and "/partner/v1/dealers/1001/sites" in script


def test_banner_curl_runs() -> None:
    with serving("--db", ":memory:") as (_, process):
        assert process.stdout is not None
        banner = ""
        while "Press Ctrl-C" not in banner:
            banner += process.stdout.readline()
        curl = banner.split("Get a token and list a dealer's sites:\n", 1)[1].split("\n\n")[0]
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", curl], capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 5


def test_live_key_in_config_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "sandbox.yaml"
    config.write_text(
        "api_keys:\n  - key: chekt_live_0123456789abcdefghijklmnopqrstuv\n    dealer_id: 1001\n"
    )
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--port", "0"])
    assert result.exit_code == 1
    assert "never accepts production credentials" in result.output
    assert "chekt_live_0123456789abcdefghijklmnopqrstuv" not in result.output


def test_non_loopback_bind_needs_an_admin_token() -> None:
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--port", "0"])  # noqa: S104
    assert result.exit_code == 1
    assert "--admin-token" in result.output


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port), "--db", ":memory:"])
    assert result.exit_code == 1
    assert "cannot serve" in result.output


def test_help_documents_every_flag() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--host",
        "--port",
        "--seed",
        "--config",
        "--db",
        "--clock",
        "--issuer",
        "--admin-token",
    ):
        assert flag in result.output


def test_environment_configures_serve() -> None:
    env = {
        **os.environ,
        "CHEKT_SANDBOX_PORT": str(_free_port()),
        "CHEKT_SANDBOX_SEED": "5",
        "CHEKT_SANDBOX_DB": ":memory:",
    }
    with serving(env=env) as (_, process):
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
    assert "seed 5" in output


def test_keys_new_snippet_registers_a_working_assertion_client(tmp_path: Path) -> None:
    import uuid

    import jwt
    from cryptography.hazmat.primitives import serialization

    result = CliRunner().invoke(
        main, ["keys", "new", "--dir", str(tmp_path / "keys"), "--client-id", "acme"]
    )
    assert result.exit_code == 0, result.output
    private = tmp_path / "keys" / "acme-private.pem"
    assert private.stat().st_mode & 0o777 == 0o600
    snippet = result.output.split("(--config):\n\n", 1)[1].split("\n\n", 1)[0]
    config = tmp_path / "sandbox.yaml"
    config.write_text(snippet + "\n")
    kid = snippet.split("key_id: ")[1].strip()
    key = serialization.load_pem_private_key(private.read_bytes(), None)
    with serving("--db", ":memory:", "--config", str(config)) as (url, _):
        now = int(time.time())
        signed = jwt.encode(
            {
                "iss": "acme",
                "sub": "acme",
                "aud": url + "/",
                "iat": now,
                "exp": now + 300,
                "jti": str(uuid.uuid4()),
            },
            key,  # type: ignore[arg-type]
            algorithm="RS256",
            headers={"kid": kid},
        )
        response = httpx.post(
            f"{url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": signed,
            },
        )
    assert response.status_code == 200, response.text


def test_serve_tls_uses_the_origin_as_issuer(tmp_path: Path) -> None:
    import ssl

    env = {
        **os.environ,
        "CHEKT_SANDBOX_STATE_DIR": str(tmp_path / "state"),
        "CHEKT_SANDBOX_PORT": str(_free_port()),
        "CHEKT_SANDBOX_DB": ":memory:",
        "CHEKT_SANDBOX_TLS": "true",
    }
    port = env["CHEKT_SANDBOX_PORT"]
    command = [CLI, "serve"]
    with Popen(command, env=env, stdout=PIPE, stderr=STDOUT, text=True) as process:
        ca = tmp_path / "state" / "tls" / "ca.pem"
        try:
            deadline = time.monotonic() + 20
            while not ca.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            context = ssl.create_default_context(cafile=str(ca))
            issuers = []
            for host in ("127.0.0.1", "localhost"):
                for _ in range(200):
                    try:
                        response = httpx.get(
                            f"https://{host}:{port}/.well-known/openid-configuration",
                            verify=context,
                        )
                        break
                    except httpx.ConnectError:
                        time.sleep(0.05)
                issuers.append(response.json()["issuer"])
        finally:
            process.send_signal(signal.SIGINT)
            output, _ = process.communicate(timeout=10)
    assert issuers == [f"https://127.0.0.1:{port}/", f"https://localhost:{port}/"]
    assert "SSL_CERT_FILE" in output and "NODE_EXTRA_CA_CERTS" in output


def test_callback_emit_advance_and_deliveries_commands() -> None:
    rx = Receiver()
    with (
        live_server(rx.app) as hook_url,
        serving(
            "--db",
            ":memory:",
            "--clock",
            "virtual",
            "--callback",
            f"{hook_url}/cb",
            "--events",
            "alarm.created,alarm.acknowledged",
        ) as (url, process),
    ):
        assert process.stdout is not None
        banner = ""
        while "Press Ctrl-C" not in banner:
            banner += process.stdout.readline()
        secret = banner.split("signing     ", 1)[1].split()[0]
        runner = CliRunner()
        emitted = runner.invoke(main, ["emit", "--lifecycle", "alarm", "--url", url])
        assert emitted.exit_code == 0, emitted.output
        assert len(emitted.output.split()) == 4
        [created] = wait_for(lambda: rx.at("/cb"))
        start = httpx.get(f"{url}/_sandbox/clock").json()["now"]
        verify_signature(secret, created.headers, created.body, now=start)
        advanced = runner.invoke(main, ["advance", "--seconds", "400", "--url", url])
        assert advanced.exit_code == 0, advanced.output
        received = wait_for(lambda: len(rx.at("/cb")) == 2 and rx.at("/cb"))
        now = float(advanced.output.split()[1])
        assert now == pytest.approx(start + 400, abs=0.001)
        # only the two subscribed types arrive, signed with the printed secret at the time
        # the clock stood at when each fell due (the acknowledgement: 40 s in)
        verify_signature(secret, received[1].headers, received[1].body, now=start + 40)
        table = runner.invoke(main, ["deliveries", "--url", url])
        assert table.exit_code == 0 and table.output.count("delivered") == 2
        lines = runner.invoke(main, ["deliveries", "--json", "--url", url]).output.splitlines()
        assert [json.loads(line)["outcome"] for line in lines] == ["delivered", "delivered"]
        bad = runner.invoke(main, ["emit", "alarm.exploded", "--url", url])
        assert bad.exit_code == 1 and "unknown event type" in bad.output
    unreachable = CliRunner().invoke(
        main, ["emit", "site.armed", "--url", f"http://127.0.0.1:{_free_port()}"]
    )
    assert unreachable.exit_code == 1 and "cannot reach the sandbox" in unreachable.output


def test_requests_command_prints_the_journal() -> None:
    with serving("--db", ":memory:") as (url, _):
        key = httpx.get(f"{url}/_sandbox/credentials").json()["api_keys"][0]["key"]
        httpx.get(
            f"{url}/partner/v1/dealers/1001/sites", headers={"Authorization": f"Bearer {key}"}
        )
        httpx.get(f"{url}/partner/v1/%1b[31mred")  # a control character in the path
        runner = CliRunner()
        table = runner.invoke(main, ["requests", "--url", url])
        assert table.exit_code == 0, table.output
        assert "/partner/v1/dealers/1001/sites" in table.output
        assert "sandbox-dealer-app-1001" in table.output
        assert "\x1b" not in table.output and "\\x1b[31mred" in table.output
        lines = runner.invoke(main, ["requests", "--json", "--status", "4xx", "--url", url])
        entries = [json.loads(line) for line in lines.output.splitlines()]
        assert [e["status"] for e in entries] == [404]
        assert key not in table.output + lines.output
