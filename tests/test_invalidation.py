"""Caches and the dispatcher follow the store by themselves: a write made anywhere (a domain
call from another thread, another tool on the same store) is seen without any handler having
to remember to invalidate or wake."""

from __future__ import annotations

import random

from helpers import Api, Settings, live_server
from one_hop import TestClient
from receiver import Receiver, wait_for

from sandbox import create_app
from sandbox.world import record
from sandbox.world.audit import SANDBOX

SITES = "/partner/v1/dealers/1001/sites"


def test_a_key_deleted_behind_the_handlers_back_stops_working_at_once(api: Api) -> None:
    headers = api.bearer(api.key)
    assert api.client.get(SITES, headers=headers).status_code == 200  # verdict now cached
    store = api.client.app.state.services.world.store  # type: ignore[attr-defined]
    store.execute("DELETE FROM api_keys WHERE key = ?", (api.key,))
    assert api.client.get(SITES, headers=headers).status_code == 401


def test_an_event_recorded_in_process_is_delivered_without_a_wake_call() -> None:
    receiver = Receiver()
    with live_server(receiver.app) as url, TestClient(create_app(Settings())) as client:
        created = client.post("/_sandbox/subscriptions", json={"url": f"{url}/hook"})
        assert created.status_code == 201, created.text
        world = client.app.state.services.world  # type: ignore[attr-defined]
        with world.store.transaction():
            record.emit(world, random.Random(1), "site.armed", {}, actor=SANDBOX)
        wait_for(lambda: receiver.at("/hook"), timeout=5)


def test_caches_keep_only_what_the_current_data_version_made(api: Api) -> None:
    """A write makes every cached read and page stale, so none is kept: under a stream of
    events, entries kept until a count cap filled grew the server by ~100 MB a minute."""
    services = api.client.app.state.services  # type: ignore[attr-defined]
    apps_key = api.client.post(
        "/_sandbox/api-keys", json={"dealer_id": 1001, "scopes": ["events:read"]}
    ).json()["key"]
    alarm = {"type": "alarm.created", "data": {"site_id": 10001}}  # a site of dealer 1001
    for _ in range(5):
        emitted = api.client.post("/_sandbox/events", json=alarm)
        assert emitted.status_code == 202, emitted.text
        alarms = api.client.get("/v1/alarms", headers=api.bearer(apps_key))
        assert alarms.status_code == 200, alarms.text
        assert alarms.json()[0]["alarm_id"] == emitted.json()["events"][0]["alarm_id"]
    assert len(services.linked_lists._items) == 1
    assert len(services.world.store._cache) <= 4  # this version's reads only


def test_reads_remembered_in_a_transaction_follow_its_own_writes() -> None:
    """A batch of happenings reads sites and devices once (``Store.remembered``): a write in
    the transaction that may change a read (a device's name) makes it fresh, one that cannot
    (its status) keeps it, and nothing is remembered past the transaction."""
    with TestClient(create_app(Settings())) as client:
        store = client.app.state.services.world.store  # type: ignore[attr-defined]
        read = "SELECT device_id, name FROM devices WHERE device_id = ?"
        reads = {"devices": frozenset({"device_id", "name"})}
        with store.transaction():
            first = store.remembered(read, (100002,), reads)
            store.execute("UPDATE devices SET status = 'offline' WHERE device_id = 100002")
            assert store.remembered(read, (100002,), reads) is first
            store.execute("UPDATE devices SET name = 'Renamed' WHERE device_id = 100002")
            assert store.remembered(read, (100002,), reads)[0]["name"] == "Renamed"
        try:
            with store.transaction():
                store.execute("UPDATE devices SET name = 'Undone' WHERE device_id = 100002")
                assert store.remembered(read, (100002,), reads)[0]["name"] == "Undone"
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        with store.transaction():
            assert store.remembered(read, (100002,), reads)[0]["name"] == "Renamed"
