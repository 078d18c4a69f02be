"""What the sandbox opens it closes: on stop, and at the latest when an app is garbage
collected. Python 3.13 reports an unclosed SQLite connection as a ``ResourceWarning``, which
fails every suite that, like this one and many partners', runs with warnings as errors."""

from __future__ import annotations

import gc
import sqlite3

import httpx
import pytest

from sandbox import Sandbox, create_app
from sandbox.store import Store


def closed(store: Store) -> bool:
    try:
        store.scalar("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False


def test_a_dropped_app_closes_its_store() -> None:
    app = create_app()
    connection = app.state.services.world.store._conn
    del app
    gc.collect()  # an app is full of reference cycles: only the collector frees it
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        connection.execute("SELECT 1")


def test_stopping_a_sandbox_closes_its_store_and_journal() -> None:
    with Sandbox() as sandbox:
        headers = {"Authorization": f"Bearer {sandbox.api_key}"}
        httpx.get(f"{sandbox.url}/partner/v1/dealers/1001/sites", headers=headers)
        assert sandbox.requests()  # the journal holds an entry (in its spill file)
        services = sandbox.app.state.services  # type: ignore[union-attr]
    assert closed(services.world.store)
    assert services.recorder._spill.files == {}
