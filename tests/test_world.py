"""The seeded world: deterministic per seed, realistic in shape, restored by reset."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

from helpers import Api, Settings
from one_hop import TestClient

from sandbox import create_app
from sandbox.clock import VirtualClock
from sandbox.store import WORLD_TABLES, Store
from sandbox.world import World
from sandbox.world.history import seed_history
from sandbox.world.seed import (
    BRIDGE_CHANNELS,
    HISTORY_START,
    _Seeder,
    draw,
    draw_apart,
    seed_world,
)


def _world_dump(seed: int) -> str:
    store = Store()
    world = World(store, clock=None)  # type: ignore[arg-type]  # seeding never reads the clock
    seed_world(world, seed)
    return json.dumps(store.dump(WORLD_TABLES), sort_keys=True)


def test_same_seed_same_world_byte_for_byte() -> None:
    assert _world_dump(7) == _world_dump(7)
    assert _world_dump(7) != _world_dump(8)
    fresh = draw(7, 3, 5)  # not the process's copy: drawn again, from nothing
    assert json.dumps(fresh.rows, sort_keys=True) == _world_dump(7)


def test_the_draw_fits_every_sandbox_of_the_process() -> None:
    """One draw serves every sandbox a process starts: it reads no clock, port or origin."""
    store = Store()
    world = World(store, VirtualClock(1e9), base_url="http://127.0.0.1:1")
    with store.transaction():
        _Seeder(world, 7).dealers(3, 5)
        seed_history(world, 7, HISTORY_START)
    assert json.dumps(store.dump(WORLD_TABLES), sort_keys=True) == _world_dump(7)


def test_a_reseed_copies_back_the_very_rows_the_first_seeding_drew() -> None:
    store = Store()
    world = World(store, clock=None)  # type: ignore[arg-type]
    seed_world(world, 7)
    first = json.dumps(store.dump(WORLD_TABLES), sort_keys=True)
    store.execute("DELETE FROM alarms WHERE alarm_id = 'A-10001'")
    seed_world(world, 7)
    assert json.dumps(store.dump(WORLD_TABLES), sort_keys=True) == first
    assert first == _world_dump(7)


def test_world_shape() -> None:
    store = Store()
    seed_world(World(store, clock=None), 42, dealers=3, sites_per_dealer=5)  # type: ignore[arg-type]
    assert store.scalar("SELECT COUNT(*) FROM dealers") == 3
    assert store.scalar("SELECT COUNT(*) FROM sites") == 15
    timezones = {r["timezone"] for r in store.all("SELECT timezone FROM sites")}
    assert len(timezones) >= 4
    bridges = store.all("SELECT * FROM devices WHERE device_type = 'bridge'")
    assert bridges and all(b["channels"] in BRIDGE_CHANNELS for b in bridges)
    cameras_per_site = Counter(
        r["site_id"] for r in store.all("SELECT site_id FROM devices WHERE device_type = 'camera'")
    )
    channels = {b["site_id"]: b["channels"] for b in bridges}
    assert all(count <= channels[site] for site, count in cameras_per_site.items())
    zones = [r["zone_number"] for r in store.all("SELECT zone_number FROM devices")]
    assert all(len(z) == 3 and z.isdigit() for z in zones)
    assert store.scalar("SELECT COUNT(*) FROM contacts") >= 15
    assert store.scalar("SELECT COUNT(*) FROM users WHERE role = 'dealer_admin'") == 3
    accounts = store.all(
        "SELECT monitoring_station_id, account_number, COUNT(*) AS n FROM sites "
        "GROUP BY 1, 2 HAVING n > 1"
    )
    assert accounts == []


def test_reset_restores_the_seeded_world_and_keeps_credentials(api: Api) -> None:
    h = api.bearer(api.key)
    before = api.client.get("/partner/v1/dealers/1001/sites", headers=h).json()
    first = before[0]["site_id"]
    assert (
        api.client.delete(f"/partner/v1/dealers/1001/sites/{first}", headers=h).status_code == 204
    )
    reset = api.client.post("/_sandbox/reset").json()
    assert reset == {"reset": ["deliveries", "recorder", "world"], "seed": 42}
    assert api.client.get("/partner/v1/dealers/1001/sites", headers=h).json() == before
    token = api.token()
    assert api.client.get("/partner/v1/dealers/1002", headers=api.bearer(token)).status_code == 200


def test_reset_with_another_seed(api: Api) -> None:
    h = api.bearer(api.key)
    before = api.client.get("/partner/v1/dealers/1001/sites", headers=h).json()
    assert api.client.post("/_sandbox/reset", json={"seed": 9}).json()["seed"] == 9
    after = api.client.get("/partner/v1/dealers/1001/sites", headers=h).json()
    assert [s["name"] for s in after] != [s["name"] for s in before]
    bad = api.client.post("/_sandbox/reset", json={"seed": "nine"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "seed"


def test_file_store_keeps_world_and_credentials_across_restarts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(db=str(tmp_path / "sandbox.db"))
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        created = client.post(
            "/partner/v1/dealers/1001/sites",
            json={"external_site_id": "kept", "name": "Kept", "timezone": "UTC"},
            headers=api.bearer(api.key),
        ).json()
        key = api.key
    with TestClient(create_app(settings)) as client:
        again = client.get(
            f"/partner/v1/dealers/1001/sites/{created['site_id']}",
            headers={"Authorization": f"Bearer {key}"},
        )
    assert again.status_code == 200 and again.json()["name"] == "Kept"


def test_control_api_needs_the_admin_token_off_loopback() -> None:
    settings = Settings(host="0.0.0.0", admin_token="let-me-in-0123456789")  # noqa: S104
    with TestClient(create_app(settings)) as client:
        assert client.get("/_sandbox/credentials").status_code == 401
        wrong = client.get("/_sandbox/credentials", headers={"X-Sandbox-Admin-Token": "no"})
        assert wrong.status_code == 401
        right = client.get(
            "/_sandbox/credentials", headers={"X-Sandbox-Admin-Token": "let-me-in-0123456789"}
        )
        assert right.status_code == 200
    with TestClient(create_app(Settings(host="0.0.0.0"))) as client:  # noqa: S104
        assert client.get("/_sandbox/credentials").status_code == 403


def test_a_reseed_puts_back_what_a_cascade_took_and_an_update_changed() -> None:
    """An in-memory store puts back only the tables written since the last seeding, and a
    write reaches every table that refers to it (a deleted site takes devices along)."""
    store = Store()
    world = World(store, clock=None)  # type: ignore[arg-type]
    seed_world(world, 7)
    first = json.dumps(store.dump(WORLD_TABLES), sort_keys=True)
    store.execute("DELETE FROM sites WHERE site_id = 10001")
    store.execute("UPDATE dealers SET company_name = 'Renamed' WHERE dealer_id = 1002")
    store.execute("DELETE FROM events WHERE seq > 100")
    assert json.dumps(store.dump(WORLD_TABLES), sort_keys=True) != first
    seed_world(world, 7)
    assert json.dumps(store.dump(WORLD_TABLES), sort_keys=True) == first
    seed_world(world, 7)  # nothing written since: nothing to put back, the same world
    assert json.dumps(store.dump(WORLD_TABLES), sort_keys=True) == first


def test_serve_draws_the_very_same_world_in_a_child_process() -> None:
    here = draw(7, 3, 5, "iso")
    argv = [sys.executable, "-m", "sandbox.world.seed", "7", "3", "5", "iso"]
    child = json.loads(subprocess.run(argv, capture_output=True, check=True).stdout)
    assert child == {"rows": here.rows, "alarm_number": here.alarm_number}
    apart = draw_apart(7, 3, 5, "iso")
    assert apart.rows == here.rows and apart.alarm_number == here.alarm_number
