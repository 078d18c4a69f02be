"""Crash safety: SIGKILL the server at random moments while partners write, 50 times; the
database always passes its integrity check and every acknowledged write is still there."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
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


def test_fifty_sigkills_during_writes_lose_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(50)
    db = tmp_path / "sandbox.db"
    acknowledged: list[str] = []
    integrity: list[str] = []
    for round_number in range(KILLS):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with Popen(
            [CLI, "serve", "--port", str(port), "--db", str(db)], stdout=DEVNULL, stderr=DEVNULL
        ) as process:
            wait_for(lambda url=url: _ready(url), timeout=20)  # type: ignore[misc]
            key = httpx.get(f"{url}/_sandbox/credentials").json()["api_keys"][0]["key"]
            stop = threading.Event()

            def write(
                url: str = url,
                key: str = key,
                round_number: int = round_number,
                stop: threading.Event = stop,
            ) -> None:
                with httpx.Client(
                    base_url=url, timeout=5, headers={"Authorization": f"Bearer {key}"}
                ) as client:
                    n = 0
                    while not stop.is_set():
                        external = f"crash-{round_number}-{n}"
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

            writer = threading.Thread(target=write)
            writer.start()
            time.sleep(rng.uniform(0.02, 0.25))
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            stop.set()
            writer.join()
        with sqlite3.connect(db) as conn:  # every one of the 50 crashed databases
            integrity.append(conn.execute("PRAGMA integrity_check").fetchone()[0])
    assert integrity == ["ok"] * KILLS
    assert len(acknowledged) > KILLS  # the writes really ran
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in conn.execute("SELECT external_site_id FROM sites")}
    missing = [e for e in acknowledged if e not in stored]
    assert missing == [], f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
