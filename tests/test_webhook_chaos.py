"""Webhook chaos beyond duplicates and reordering, seen on the wire by real receivers:
bursts, slow sending, oversized bodies, unknown event types and extra fields — each set
through ``/_sandbox/faults``, marked in the delivery journal and cleared again."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Settings
from one_hop import TestClient
from receiver import Answer, Receiver, wait_for
from test_webhooks import emit, subscribe

from sandbox import VirtualClock, create_app
from sandbox.client import Sandbox
from sandbox.scenario import Runner, parse
from sandbox.settings import Settings as SandboxSettings
from sandbox.settings import SettingsError
from sandbox.webhooks import verify_signature
from sandbox.webhooks.chaos import EXTRA_DATA, EXTRA_ENVELOPE, KNOBS, UNKNOWN_TYPES
from sandbox.world import catalog

START = 1_900_000_000.0
OFF = {"duplicate_rate": 0.0, "reorder_window": 0.0, **dict.fromkeys(KNOBS, 0)}


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=START)


@pytest.fixture
def sandbox(clock: VirtualClock) -> Iterator[TestClient]:
    settings = Settings(webhook_timeout=5.0, webhook_concurrency=2)
    with TestClient(create_app(settings, clock=clock)) as client:
        yield client


def chaos(client: TestClient, **knobs: Any) -> dict[str, Any]:
    response = client.post("/_sandbox/faults", json=knobs)
    assert response.status_code == 200, response.text
    return dict(response.json())


def journal(client: TestClient, **filters: str) -> list[dict[str, Any]]:
    return list(client.get("/_sandbox/deliveries", params=filters).json())


def test_oversized_bodies_with_extra_fields_stay_valid_and_signed(
    sandbox: TestClient, receiver: tuple[Receiver, str], clock: VirtualClock
) -> None:
    rx, url = receiver
    sub = subscribe(sandbox, f"{url}/big")
    knobs = chaos(sandbox, oversize=256 * 1024, extra_fields=1)
    assert knobs["oversize"] == 262144 and knobs["extra_fields"] == 1
    [event_id] = emit(sandbox, type="alarm.created")
    [got] = wait_for(lambda: rx.at("/big"))
    assert len(got.body) == 262144
    verify_signature(sub["secret"], got.headers, got.body, now=clock.now())
    envelope = json.loads(got.body)
    assert envelope["id"] == event_id and envelope["type"] == "alarm.created"
    assert EXTRA_ENVELOPE.items() <= envelope.items()
    assert EXTRA_DATA.items() <= envelope["data"].items()
    assert set(envelope["data"]["padding"]) == {"x"}
    [attempt] = wait_for(lambda: journal(sandbox, event_id=event_id))
    assert attempt["outcome"] == "delivered"
    assert attempt["chaos"] == "extra_fields, oversize 262144"

    assert sandbox.delete("/_sandbox/faults").json() == {**OFF, "inbound": []}
    [plain_id] = emit(sandbox, type="alarm.created")
    plain = wait_for(
        lambda: [r for r in rx.at("/big") if r.headers["x-chekt-event-id"] == plain_id]
    )
    data = json.loads(plain[0].body)["data"]
    assert len(plain[0].body) < 4096 and "padding" not in data and "labels" not in data
    assert wait_for(lambda: journal(sandbox, event_id=plain_id))[0]["chaos"] is None


def test_unknown_event_types_arrive_signed_in_each_format(
    sandbox: TestClient, receiver: tuple[Receiver, str], clock: VirtualClock
) -> None:
    rx, url = receiver
    apps = subscribe(sandbox, f"{url}/apps")
    dealer = subscribe(sandbox, f"{url}/dealer", profile="dealer-v1")
    chaos(sandbox, unknown_types=1)
    [event_id] = emit(sandbox, type="alarm.created")
    for path, sub in (("/apps", apps), ("/dealer", dealer)):
        both = wait_for(lambda path=path: len(rx.at(path)) == 2 and rx.at(path))
        for got in both:
            verify_signature(sub["secret"], got.headers, got.body, now=clock.now())
        bodies = [json.loads(got.body) for got in both]
        if path == "/apps":
            names = {body["type"] for body in bodies}
            unknown = next(b for b in bodies if b["type"] != "alarm.created")
            assert unknown["type"] in UNKNOWN_TYPES and unknown["id"] != event_id
        else:
            names = {body["event_type"] for body in bodies}
            unknown = next(b for b in bodies if b["event_type"] != "alarm_event")
            assert unknown["event_type"].replace("_", ".", 1) in UNKNOWN_TYPES
            assert unknown["event_id"] >= 10**12  # off the record's numbering
        [new_name] = names - {"alarm.created", "alarm_event"}
        assert new_name.replace("_", ".", 1) not in catalog.EVENT_TYPES
    marked = wait_for(
        lambda: [a for a in journal(sandbox) if (a["chaos"] or "").startswith("unknown_type")]
    )
    assert len(marked) == 2 and all(a["outcome"] == "delivered" for a in marked)
    assert all(a["event_id"] != event_id for a in marked)

    card = {f["id"]: f for f in sandbox.get("/_sandbox/report").json()["findings"]}
    assert card["ignores_unknown"]["ok"] is True
    assert sorted(card["ignores_unknown"]["attempts"]) == sorted(a["seq"] for a in marked)

    chaos(sandbox, unknown_types=0)
    [again] = emit(sandbox, type="alarm.created")
    wait_for(lambda: len(rx.at("/apps")) == 3)
    assert len(wait_for(lambda: journal(sandbox, event_id=again))) == 2  # one per subscription
    assert len(rx.at("/apps")) == 3


def test_the_report_card_flags_a_receiver_that_refuses_unknown_fields(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    rx.answers["/strict"] = Answer(status=422)  # a schema that forbids extra properties
    subscribe(sandbox, f"{url}/strict")
    card = {f["id"]: f for f in sandbox.get("/_sandbox/report").json()["findings"]}
    assert card["ignores_unknown"]["ok"] is None  # nothing unknown was sent yet
    chaos(sandbox, extra_fields=1)
    [event_id] = emit(sandbox, type="site.armed")
    [refused] = wait_for(lambda: journal(sandbox, event_id=event_id))
    assert refused["status_code"] == 422 and refused["chaos"] == "extra_fields"
    card = {f["id"]: f for f in sandbox.get("/_sandbox/report").json()["findings"]}
    assert card["ignores_unknown"]["ok"] is False
    assert card["ignores_unknown"]["attempts"] == [refused["seq"]]


def _unknown_names(seed: int, url: str) -> list[str]:
    """Which unknown types a sandbox of ``seed`` sends for the same twelve events."""
    clock = VirtualClock(start=START)
    with TestClient(create_app(Settings(seed=seed), clock=clock)) as client:
        subscribe(client, url)
        chaos(client, unknown_types=0.5)
        ids = emit(client, random=12, seed=3)
        wait_for(lambda: len(journal(client, outcome="delivered")) >= len(ids))
        store = client.app.state.services.world.store  # type: ignore[attr-defined]
        rows = store.all(  # in the order they were made
            "SELECT chaos FROM deliveries WHERE chaos IS NOT NULL ORDER BY rowid"
        )
    return [str(row["chaos"]) for row in rows]


def test_the_chaos_is_seeded(receiver: tuple[Receiver, str]) -> None:
    _, url = receiver
    first = _unknown_names(7, f"{url}/a")
    assert first and len(first) < 12  # a share, not all
    assert _unknown_names(7, f"{url}/b") == first
    assert _unknown_names(8, f"{url}/c") != first


class Trickle(socketserver.ThreadingTCPServer):
    """A bare HTTP receiver that notes when each piece of a request body arrives."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Reads)
        self.pieces: list[tuple[float, bytes]] = []
        self.head = b""
        self.done = threading.Event()


class _Reads(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, Trickle)
        sock: socket.socket = self.request
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, rest = data.split(b"\r\n\r\n", 1)
        server.head = head
        length = int(
            next(
                line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            ).split(b":")[1]
        )
        if rest:
            server.pieces.append((time.monotonic(), rest))
        got = len(rest)
        while got < length:
            piece = sock.recv(65536)
            if not piece:
                break
            server.pieces.append((time.monotonic(), piece))
            got += len(piece)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        server.done.set()


def test_slow_sending_trickles_the_signed_body(sandbox: TestClient, clock: VirtualClock) -> None:
    with Trickle() as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            port = server.server_address[1]
            sub = subscribe(sandbox, f"http://127.0.0.1:{port}/slow")
            chaos(sandbox, slow_send_ms=700)
            [event_id] = emit(sandbox, type="alarm.created")
            assert server.done.wait(10)
        finally:
            server.shutdown()
    times = [at for at, _ in server.pieces]
    assert len(server.pieces) >= 4  # in several pieces ...
    assert times[-1] - times[0] >= 0.5  # ... spread over time
    body = b"".join(piece for _, piece in server.pieces)
    headers = {}
    for line in server.head.split(b"\r\n")[1:]:
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    assert "transfer-encoding" not in headers and int(headers["content-length"]) == len(body)
    verify_signature(sub["secret"], headers, body, now=clock.now())
    assert json.loads(body)["id"] == event_id
    [attempt] = wait_for(lambda: journal(sandbox, event_id=event_id))
    assert attempt["chaos"] == "slow_send 700 ms" and attempt["outcome"] == "delivered"
    assert chaos(sandbox, slow_send_ms=0)["slow_send_ms"] == 0


def _spread(rx: Receiver, path: str, count: int) -> float:
    got = wait_for(lambda: len(rx.at(path)) == count and rx.at(path))
    return float(max(r.at for r in got) - min(r.at for r in got))


def test_a_burst_skips_the_concurrency_cap(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    rx.answers["/paced"] = rx.answers["/burst"] = Answer(delay=0.4)
    paced = subscribe(sandbox, f"{url}/paced")
    emit(sandbox, random=3, seed=1)  # at most 2 in flight: the third waits for an answer
    assert _spread(rx, "/paced", 3) >= 0.35
    sandbox.delete(f"/_sandbox/subscriptions/{paced['webhook_id']}")

    subscribe(sandbox, f"{url}/burst")
    assert chaos(sandbox, burst=6)["burst"] == 6
    ids = emit(sandbox, random=6, seed=2)
    assert _spread(rx, "/burst", 6) < 0.3  # all six in flight at once

    def marked() -> list[dict[str, Any]]:
        return [a for a in journal(sandbox) if a["event_id"] in ids]

    wait_for(lambda: len(marked()) == 6)
    assert all(a["chaos"] == "burst" and a["outcome"] == "delivered" for a in marked())
    assert sandbox.get("/_sandbox/faults").json()["burst"] == 0  # used up


def test_bad_knobs_are_422_and_settings_come_back_on_reset(clock: VirtualClock) -> None:
    settings = Settings(webhook_oversize=4096, webhook_extra_fields=0.5)
    with TestClient(create_app(settings, clock=clock)) as client:
        assert client.get("/_sandbox/faults").json()["oversize"] == 4096
        for bad in (
            {"oversize": -1},
            {"burst": 1.5},
            {"unknown_types": 2},
            {"slow_send_ms": 10**6},
            {"extra_fields": True},
        ):
            response = client.post("/_sandbox/faults", json=bad)
            assert response.status_code == 422, bad
            assert response.json()["error"]["field"] == next(iter(bad))
        assert client.delete("/_sandbox/faults").json()["oversize"] == 0
        assert client.post("/_sandbox/reset").status_code == 200
        knobs = client.get("/_sandbox/faults").json()
        assert knobs["oversize"] == 4096 and knobs["extra_fields"] == 0.5


def test_the_settings_file_sets_the_knobs(tmp_path: Path) -> None:
    config = tmp_path / "sandbox.yaml"
    config.write_text("webhook_oversize: 2048\nwebhook_unknown_types: 0.25\nwebhook_burst: 5\n")
    settings = SandboxSettings.load(config, env={})
    assert (settings.webhook_oversize, settings.webhook_unknown_types) == (2048, 0.25)
    assert settings.webhook_burst == 5
    config.write_text("webhook_extra_fields: 3\n")
    with pytest.raises(SettingsError, match="webhook_extra_fields"):
        SandboxSettings.load(config, env={})


def test_the_scenario_fault_step_takes_the_chaos_knobs() -> None:
    scenario = parse(
        "name: chaos\nsteps:\n  - fault: {oversize: 65536, unknown_types: 0.5, burst: 3}\n"
    )
    [step] = scenario.steps
    assert step.args == {"oversize": 65536, "unknown_types": 0.5, "burst": 3}


def test_a_replayed_fault_step_sets_the_knobs_and_puts_them_back() -> None:
    text = "name: chaos\nsteps:\n  - fault: {oversize: 4096, extra_fields: 1, burst: 2}\n"
    with Sandbox(clock="virtual") as sandbox:
        report = Runner(sandbox).run(parse(text))
        assert report.passed, [r.detail for r in report.results]
        assert report.results[0].detail == "burst=2, oversize=4096, extra_fields=1.0"
        assert sandbox.webhook_chaos() == OFF  # the run left the knobs as it found them
        assert sandbox.webhook_chaos(unknown_types=0.5)["unknown_types"] == 0.5
        sandbox.clear_faults()
        assert sandbox.webhook_chaos() == OFF
