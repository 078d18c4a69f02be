"""Crash safety: SIGKILL the server at random moments while partners write, 50 times; the
database always passes its integrity check and every acknowledged write is still there."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from subprocess import DEVNULL, Popen

import httpx
from receiver import wait_for
from test_cli import CLI, _free_port

KILLS = 50


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_sandbox/health", timeout=1).is_success
    except httpx.TransportError:
        return False


def _crash_lane(db: Path, rounds: int, rng: random.Random) -> tuple[list[str], list[str]]:
    """Serve ``db``, write to it, SIGKILL the server at a random moment; ``rounds`` times.
    Returns the acknowledged writes and the integrity check after every kill."""
    acknowledged: list[str] = []
    integrity: list[str] = []
    for round_number in range(rounds):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with Popen(
            [CLI, "serve", "--port", str(port), "--db", str(db)], stdout=DEVNULL, stderr=DEVNULL
        ) as process:
            wait_for(lambda url=url: _ready(url), timeout=20)  # type: ignore[misc]
            key = httpx.get(f"{url}/_sandbox/credentials").json()["api_keys"][0]["key"]
            stop, written = threading.Event(), threading.Event()

            def write(
                url: str = url,
                key: str = key,
                round_number: int = round_number,
                stop: threading.Event = stop,
                written: threading.Event = written,
            ) -> None:
                with httpx.Client(
                    base_url=url, timeout=5, headers={"Authorization": f"Bearer {key}"}
                ) as client:
                    n = 0
                    while not stop.is_set():
                        external = f"crash-{db.stem}-{round_number}-{n}"
                        n += 1
                        try:
                            response = client.post(
                                "/partner/v1/dealers/1001/sites",
                                json={
                                    "external_site_id": external,
                                    "name": "Crash",
                                    "timezone": "UTC",
                                },
                            )
                        except httpx.TransportError:
                            return  # killed mid-request: not acknowledged
                        if response.status_code == 201:
                            acknowledged.append(external)
                            written.set()

            writer = threading.Thread(target=write)
            writer.start()
            # writes are under way (however loaded the machine), then a random moment
            written.wait(timeout=20)  # (the count of acknowledged writes is checked below)
            time.sleep(rng.uniform(0.02, 0.25))
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            stop.set()
            writer.join()
        with closing(sqlite3.connect(db)) as conn:  # every one of the crashed databases
            integrity.append(conn.execute("PRAGMA integrity_check").fetchone()[0])
    return acknowledged, integrity


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
