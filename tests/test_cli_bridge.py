"""``chekt-sandbox serve`` and the bridges' local API: its own port (``--bridge-port``), off
with ``--no-bridge``, listed in the banner and the credentials, stopped with the server."""

from __future__ import annotations

import json
import signal
import socket
import subprocess

import httpx
import pytest
from click.testing import CliRunner
from test_cli import _free_port, serving

from sandbox.cli import main
from sandbox.settings import DEFAULT_BRIDGE_PORT


def test_serve_opens_the_bridge_port_and_stops_it() -> None:
    port = _free_port()
    with serving("--db", ":memory:", "--bridge-port", str(port)) as (url, process):
        assert process.stdout is not None
        output = ""
        while "Press Ctrl-C" not in output:
            output += process.stdout.readline()
        curl = output.split("Raise an alarm through bridge", 1)[1].split("\n\n")[0]
        script = "\n".join(curl.splitlines()[1:])
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=30
        )
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["alarm_id"].startswith("A-")
        bridges = httpx.get(f"{url}/_sandbox/credentials").json()["bridges"]
        first = bridges[0]
        assert first["url"] == f"http://127.0.0.1:{port}"
        assert {"bridge_id", "dealer_id", "site_id", "channels", "api_token"} <= set(first)
        answer = httpx.post(
            f"{first['url']}/api/v1/events",
            json={"target_channel": str(first["channels"][0]), "event_description": "Motion"},
            auth=("apikey", first["api_token"]),
        )
        assert answer.status_code == 200, answer.text
        journal = httpx.get(f"{url}/_sandbox/requests", params={"path": "/api/v1/events"}).json()
        assert [e["status"] for e in journal] == [200, 200]
        listed = CliRunner().invoke(main, ["requests", "--url", url, "--surface", "bridge"])
        assert listed.exit_code == 0 and "/api/v1/events" in listed.output, listed.output
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=10)
    output += rest
    assert process.returncode == 0 and "Traceback" not in output
    assert f"bridge API  http://127.0.0.1:{port}/api/v1/events" in output
    assert first["api_token"] in output
    for address in (url, f"http://127.0.0.1:{port}"):
        try:
            httpx.get(f"{address}/api/v1/health", timeout=1)
        except httpx.TransportError:
            continue
        raise AssertionError(f"{address} still answers after the server stopped")


def test_no_bridge_turns_the_listener_off() -> None:
    with serving("--db", ":memory:", "--no-bridge") as (url, process):
        bridges = httpx.get(f"{url}/_sandbox/credentials").json()["bridges"]
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
    assert bridges and {b["url"] for b in bridges} == {None}
    assert "bridge API  off" in output


def test_a_taken_bridge_port_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            main, ["serve", "--port", "0", "--bridge-port", str(port), "--db", ":memory:"]
        )
    assert result.exit_code == 1
    assert "bridges' local API" in result.output and "--bridge-port" in result.output


def test_help_documents_the_bridge_flags() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert "--bridge-port" in result.output and "--no-bridge" in result.output


@pytest.mark.serial  # another worker's serve could free the port between our bind and ours
def test_a_taken_default_bridge_port_falls_back_to_a_free_one() -> None:
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", DEFAULT_BRIDGE_PORT))
            holder.listen()
        except OSError:
            pass  # something else holds it already: as good
        with serving("--db", ":memory:") as (url, process):
            [first, *_] = httpx.get(f"{url}/_sandbox/credentials").json()["bridges"]
            health = httpx.get(f"{first['url']}/api/v1/health")
            process.send_signal(signal.SIGINT)
            output, _ = process.communicate(timeout=10)
    assert health.status_code == 200
    assert not first["url"].endswith(f":{DEFAULT_BRIDGE_PORT}")
    assert f"{DEFAULT_BRIDGE_PORT} was taken" in output
