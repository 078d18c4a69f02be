"""Crash safety of the outbox: SIGKILL the server while deliveries are pending, again and
again; after a restart every acknowledged event is delivered at least once and no attempt
ever ran before its schedule."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from subprocess import DEVNULL, Popen

import httpx
from helpers import live_server
from receiver import Answer, Receiver, wait_for
from test_cli import CLI, _free_port

ROUNDS = 6


def _start(db: Path, port: int, hook: str) -> Popen[bytes]:
    process = Popen(
        [CLI, "serve", "--port", str(port), "--db", str(db), "--callback", hook],
        stdout=DEVNULL,
        stderr=DEVNULL,
    )
    wait_for(lambda: _ready(port), timeout=20)
    return process


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1).is_success
    except httpx.TransportError:
        return False


def test_sigkill_during_deliveries_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(7)
    rx = Receiver()
    rx.answers["/hook"] = Answer(delay=0.02)
    db = tmp_path / "sandbox.db"
    acknowledged: set[str] = set()
    with live_server(rx.app) as url:
        for _ in range(ROUNDS):
            port = _free_port()
            process = _start(db, port, f"{url}/hook")
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/_sandbox/events",
                    json={"random": 25, "seed": rng.randrange(1000)},
                )
                assert response.status_code == 202
                acknowledged.update(response.json()["event_ids"])
                time.sleep(rng.uniform(0.0, 0.3))
            finally:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        port = _free_port()
        process = _start(db, port, f"{url}/hook")
        try:

            def delivered() -> bool:
                return {r.headers["x-chekt-event-id"] for r in rx.at("/hook")} >= acknowledged

            wait_for(delivered, timeout=30)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        early = conn.execute(
            "SELECT COUNT(*) FROM attempts WHERE sent_at < scheduled_at"
        ).fetchone()[0]
        attempts = conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    assert early == 0
    assert attempts >= len(acknowledged)
    received = [json.loads(r.body)["id"] for r in rx.at("/hook")]
    assert set(received) >= acknowledged
