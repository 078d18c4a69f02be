"""Crash safety of the outbox: SIGKILL the server while deliveries are pending, again and
again; after a restart every acknowledged event is delivered at least once and no attempt
ever ran before its schedule."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import httpx
from helpers import live_server
from receiver import Answer, Receiver, wait_for
from test_cli import _free_port
from test_crash_safety import Servers

ROUNDS = 6


def _start(servers: Servers, db: Path, port: int, hook: str) -> int:
    pid = servers.serve("--port", str(port), "--db", str(db), "--callback", hook)
    with httpx.Client(timeout=1) as http:  # one for every poll (a new one costs 25 ms of CPU)
        wait_for(lambda: _ready(http, port), timeout=20)
    return pid


def _ready(http: httpx.Client, port: int) -> bool:
    try:
        return http.get(f"http://127.0.0.1:{port}/_sandbox/health").is_success
    except httpx.TransportError:
        return False


def test_sigkill_during_deliveries_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(7)
    rx = Receiver()
    rx.answers["/hook"] = Answer(delay=0.02)
    db = tmp_path / "sandbox.db"
    acknowledged: set[str] = set()
    with live_server(rx.app) as url, Servers() as servers:
        for _ in range(ROUNDS):
            port = _free_port()
            pid = _start(servers, db, port, f"{url}/hook")
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/_sandbox/events",
                    json={"random": 25, "seed": rng.randrange(1000)},
                )
                assert response.status_code == 202
                acknowledged.update(response.json()["event_ids"])
                time.sleep(rng.uniform(0.0, 0.3))
            finally:
                servers.kill(pid)
        port = _free_port()
        pid = _start(servers, db, port, f"{url}/hook")
        try:

            def delivered() -> bool:
                return {r.headers["x-chekt-event-id"] for r in rx.at("/hook")} >= acknowledged

            wait_for(delivered, timeout=30)
        finally:
            servers.kill(pid, signal.SIGINT)
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


def test_only_the_dispatchers_own_writes_skip_the_wait_for_the_disk(tmp_path: Path) -> None:
    """A relaxed transaction commits without an fsync, and every other one after it (rolled
    back or not) waits for the disk again: a client's acknowledged write never rides on it."""
    from sandbox.store import Store

    store = Store(str(tmp_path / "sandbox.db"))
    mode = lambda: store.scalar("PRAGMA synchronous")  # noqa: E731 (2: FULL, 1: NORMAL)
    seen = []
    with store.transaction(durable=False):
        seen.append(mode())
        with store.transaction():  # nested: a savepoint of the relaxed one
            seen.append(mode())
    seen.append(mode())
    try:
        with store.transaction(durable=False):
            raise RuntimeError("undone")
    except RuntimeError:
        seen.append(mode())
    with store.transaction():
        seen.append(mode())
    assert seen == [1, 1, 2, 2, 2]
    store.close()
