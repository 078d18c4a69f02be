"""The virtual clock as a simulation clock: advance steps through what falls due, a receiver
in another process that follows the sandbox clock sees every attempt fresh, a hanging
receiver holds a step no longer than the delivery timeout, and absurd times are refused."""

from __future__ import annotations

import math
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import Settings, live_server
from one_hop import TestClient
from receiver import Hanging, Receiver

from sandbox import Sandbox, VirtualClock, create_app
from sandbox.cli import main
from sandbox.client import SandboxError

START = 1_900_000_000.0
SECRET = "clock-receiver-secret-0123456789"
RUNS = 20


@contextmanager
def receiver_process(sandbox_url: str) -> Iterator[str]:
    """``tests/clock_receiver.py`` in a process of its own; yields its URL."""
    script = Path(__file__).with_name("clock_receiver.py")
    command = [sys.executable, str(script), sandbox_url, SECRET]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            port = process.stdout.readline().strip()
            assert port.isdigit(), "the receiver process did not start"
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()


def test_a_receiver_in_another_process_verifies_all_eight_attempts_in_each_of_20_runs() -> None:
    """Each run: a fresh subscription, one event, then advance in a tight loop (a step of
    1 to 3 h, varying by run) past the 24 h schedule."""
    with Sandbox(Settings(), clock="virtual") as sandbox, receiver_process(sandbox.url) as url:
        for run in range(RUNS):
            sandbox.subscribe(f"{url}/run-{run}", events=["site.armed"], secret=SECRET)
            [event_id] = sandbox.emit("site.armed")
            step = random.Random(run).uniform(3600, 10_800)
            for _ in range(math.ceil(86_400 / step) + 1):
                sandbox.clock.advance(step)
            journal = sandbox.deliveries(event_id=event_id)  # no waiting: advance settled
            assert [a["attempt"] for a in journal] == list(range(1, 9)), run
            verdicts = [a["response"]["body"] for a in journal]
            assert verdicts == ["verified"] * 8, (run, verdicts)
            assert all(a["sent_at"] == a["scheduled_at"] for a in journal)


@pytest.mark.latency
def test_a_hanging_receiver_holds_each_step_at_most_the_delivery_timeout() -> None:
    """The attempt at each due time times out (0.3 s here) and is recorded at that time;
    then the clock moves on to the next attempt, 5 s later."""
    clock = VirtualClock(start=START)
    settings = Settings(webhook_timeout=0.3)
    with Hanging() as url, TestClient(create_app(settings, clock=clock)) as client:
        client.post("/_sandbox/subscriptions", json={"url": f"{url}/hang"})
        [event_id] = client.post("/_sandbox/events", json={"type": "site.armed"}).json()[
            "event_ids"
        ]
        started = time.monotonic()
        moved = client.post("/_sandbox/clock/advance", json={"seconds": 7})
        took = time.monotonic() - started
        journal = client.get("/_sandbox/deliveries", params={"event_id": event_id}).json()
    assert moved.status_code == 200 and moved.json()["now"] == START + 7
    assert 0.5 <= took < 2 * (0.3 + 1.0)  # two attempts, each cut off at 0.3 s
    assert [a["outcome"] for a in journal] == ["timeout", "timeout"]
    assert [a["sent_at"] for a in journal] == [a["scheduled_at"] for a in journal]


def test_every_response_and_delivery_states_the_sandbox_time() -> None:
    rx = Receiver()
    clock = VirtualClock(start=START)
    with live_server(rx.app) as url, TestClient(create_app(Settings(), clock=clock)) as client:
        for path in ("/_sandbox/clock", "/partner/v1/dealers", "/nowhere"):
            assert client.get(path).headers["x-sandbox-time"] == f"{START:.6f}", path
        moved = client.post("/_sandbox/clock/advance", json={"seconds": 1.5})
        assert moved.headers["x-sandbox-time"] == f"{START + 1.5:.6f}"  # after the move
        client.post("/_sandbox/subscriptions", json={"url": f"{url}/t"})
        client.post("/_sandbox/events", json={"type": "site.armed"})
        client.post("/_sandbox/clock/advance", json={"seconds": 0})
        [got] = rx.at("/t")
    assert float(got.headers["x-sandbox-time"]) == START + 1.5
    assert got.headers["x-chekt-timestamp"] == str(int(START + 1.5))


TOO_FAR = 253_402_300_800  # 10000-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("advance", '{"seconds": -1}'),
        ("advance", '{"seconds": "60"}'),
        ("advance", '{"seconds": true}'),
        ("advance", '{"seconds": 1' + "0" * 400 + "}"),
        ("advance", f'{{"seconds": {TOO_FAR}}}'),
        ("advance", "{}"),
        ("set", f'{{"now": {TOO_FAR}}}'),
        ("set", f'{{"now": {START - 1}}}'),  # backwards
        ("set", '{"now": -5}'),
    ],
)
def test_absurd_clock_values_get_a_422_envelope(path: str, raw: str) -> None:
    with TestClient(create_app(Settings(), clock=VirtualClock(start=START))) as client:
        response = client.post(
            f"/_sandbox/clock/{path}", content=raw, headers={"Content-Type": "application/json"}
        )
        error = response.json()["error"]
        assert response.status_code == 422, response.text
        assert error["field"] == ("seconds" if path == "advance" else "now")
        assert client.get("/_sandbox/clock").json()["now"] == START


@pytest.mark.parametrize("path", ["advance", "set"])
def test_an_infinite_clock_value_is_refused_by_the_json_reader(path: str) -> None:
    """``1e400`` is JSON's way to say infinity: the strict reader refuses it as a body."""
    with TestClient(create_app(Settings(), clock=VirtualClock(start=START))) as client:
        name = "seconds" if path == "advance" else "now"
        response = client.post(
            f"/_sandbox/clock/{path}",
            content=f'{{"{name}": 1e400}}',
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert "too large" in response.json()["error"]["message"]
        assert client.get("/_sandbox/clock").json()["now"] == START


ABSURD = [math.nan, math.inf, -math.inf, -1.0, float(TOO_FAR)]


@pytest.mark.parametrize("value", ABSURD)
def test_absurd_clock_values_raise_value_error_in_process(value: float) -> None:
    clock = VirtualClock(start=START)
    with pytest.raises(ValueError, match="seconds must be a finite number"):
        clock.advance(value)
    with pytest.raises(ValueError, match="now must be a finite number"):
        clock.set(value)
    with pytest.raises(ValueError, match="start must be a finite number"):
        VirtualClock(start=value)
    assert clock.now() == START


def test_absurd_clock_values_are_refused_by_the_client_and_the_cli() -> None:
    with Sandbox(Settings(), clock="virtual") as sandbox:
        for value in ABSURD:
            with pytest.raises(SandboxError, match="seconds must be a finite number"):
                sandbox.clock.advance(value)
            with pytest.raises(SandboxError, match="now must be a finite number"):
                sandbox.clock.set(value)
            result = CliRunner().invoke(
                main, ["advance", f"--seconds={value}", "--url", sandbox.url]
            )
            assert result.exit_code == 1, result.output
            assert "seconds must be a finite number" in result.output
        with pytest.raises(SandboxError, match="past 9999"):
            sandbox.clock.advance(TOO_FAR - 1)  # fine alone, too far from today
        assert sandbox.clock.now() < TOO_FAR
