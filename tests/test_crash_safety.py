"""Crash safety: SIGKILL the server at random moments while partners write, 50 times; the
database always passes its integrity check and every acknowledged write is still there.

The servers are forked from one process that imported the CLI once (``serve_zygote.py``):
each is the process ``chekt-sandbox serve`` starts, without a second of imports per kill."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import sys
import threading
import time
from contextlib import closing, suppress
from pathlib import Path
from subprocess import PIPE, Popen

import httpx
from receiver import wait_for
from test_cli import _free_port

KILLS = 50
ZYGOTE = Path(__file__).with_name("serve_zygote.py")


def _ready(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(f"{url}/_sandbox/health").is_success
    except httpx.TransportError:
        return False


def _crash_lane(db: Path, rounds: int, rng: random.Random) -> tuple[list[str], list[str]]:
    """Serve ``db``, write to it, SIGKILL the server at a random moment; ``rounds`` times.
    Returns the acknowledged writes and the integrity check after every kill."""
    acknowledged: list[str] = []
    integrity: list[str] = []
    # one client per lane: each new one (httpx.get makes one) builds an SSL context, 25 ms of
    # CPU, and a round polls its server's start every 20 ms
    with Servers() as servers, httpx.Client(timeout=5) as http:
        for round_number in range(rounds):
            _crash_round(servers, http, db, round_number, rng, acknowledged)
            with closing(sqlite3.connect(db)) as conn:  # every one of the crashed databases
                integrity.append(conn.execute("PRAGMA integrity_check").fetchone()[0])
    return acknowledged, integrity


class Servers:
    """``serve`` processes forked from one that imported the CLI once (``serve_zygote.py``)."""

    def __enter__(self) -> Servers:
        self._zygote = Popen([sys.executable, str(ZYGOTE)], stdin=PIPE, stdout=PIPE, text=True)
        return self

    def _ask(self, line: str) -> str:
        assert self._zygote.stdin and self._zygote.stdout
        self._zygote.stdin.write(line + "\n")
        self._zygote.stdin.flush()
        return self._zygote.stdout.readline().strip()

    def serve(self, *args: str) -> int:
        """``chekt-sandbox serve *args``: its pid."""
        return int(self._ask("serve " + json.dumps(args)))

    def kill(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (SIGKILL) and return once the process is gone."""
        with suppress(ProcessLookupError):
            os.kill(pid, sig)
        assert self._ask(f"wait {pid}") == "done"

    def __exit__(self, *exc: object) -> None:
        with self._zygote:
            assert self._zygote.stdin
            self._zygote.stdin.close()


def _crash_round(
    servers: Servers,
    http: httpx.Client,
    db: Path,
    round_number: int,
    rng: random.Random,
    acknowledged: list[str],
) -> None:
    """Serve ``db``, write to it from a partner's thread, SIGKILL the server mid-writes."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    stop, written = threading.Event(), threading.Event()

    def write(key: str) -> None:
        n = 0
        while not stop.is_set():
            external = f"crash-{db.stem}-{round_number}-{n}"
            n += 1
            try:
                response = http.post(
                    f"{url}/partner/v1/dealers/1001/sites",
                    json={"external_site_id": external, "name": "Crash", "timezone": "UTC"},
                    headers={"Authorization": f"Bearer {key}"},
                )
            except httpx.TransportError:
                return  # killed mid-request: not acknowledged
            if response.status_code == 201:
                acknowledged.append(external)
                written.set()

    pid = servers.serve("--port", str(port), "--db", str(db))
    writer: threading.Thread | None = None
    try:
        wait_for(lambda: _ready(http, url), timeout=20)
        key = http.get(f"{url}/_sandbox/credentials").json()["api_keys"][0]["key"]
        writer = threading.Thread(target=write, args=(key,))
        writer.start()
        # writes are under way (however loaded the machine), then a random moment
        written.wait(timeout=20)  # (the count of acknowledged writes is checked below)
        time.sleep(rng.uniform(0.02, 0.25))
    finally:
        servers.kill(pid)  # also when a step above failed: no server outlives the test
        stop.set()
        if writer is not None:
            writer.join()


def test_fifty_sigkills_during_writes_lose_no_acknowledged_write(tmp_path: Path) -> None:
    # two lanes of 25 kills, each on its own database, side by side (one per core)
    lanes = [(tmp_path / f"lane{n}.db", random.Random(50 + n)) for n in range(2)]
    results: dict[Path, tuple[list[str], list[str]]] = {}
    threads = [
        threading.Thread(
            target=lambda db=db, rng=rng: results.update({db: _crash_lane(db, KILLS // 2, rng)})
        )
        for db, rng in lanes
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2, "a lane failed"
    integrity = [check for _, checks in results.values() for check in checks]
    assert integrity == ["ok"] * KILLS
    for db, (acknowledged, _) in results.items():
        assert len(acknowledged) > KILLS // 2  # the writes really ran
        with closing(sqlite3.connect(db)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = {row[0] for row in conn.execute("SELECT external_site_id FROM sites")}
        missing = [e for e in acknowledged if e not in stored]
        assert missing == [], f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
