"""The older webhook formats, delivered over HTTP: each dealer-v1 event type once, its fields
checked against the record (``/v1`` reads and the control API); legacy-guide subscriptions
registered with the guide's own event names on every surface that makes subscriptions, and
the guide's 5 s answer deadline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from helpers import Api, Settings, live_server
from one_hop import TestClient
from receiver import Hanging, Receiver, wait_for

from sandbox import VirtualClock, create_app
from sandbox.auth.clients import APPS_SCOPES
from sandbox.webhooks import verify_signature
from sandbox.world import formats

START = 1_900_000_000.0
DEALER_V1 = tuple(formats.names("dealer-v1"))
LEGACY = ["alarm.triggered", "device.status_changed"]
TWO_PARTITIONS = 1002  # the seeded dealer whose first site with two partitions is used


@pytest.fixture(scope="module")
def hooks() -> Iterator[tuple[Receiver, str]]:
    rx = Receiver()
    with live_server(rx.app) as url:
        yield rx, url


@pytest.fixture
def sandbox() -> Iterator[TestClient]:
    app = create_app(Settings(webhook_timeout=1.0), clock=VirtualClock(start=START))
    with TestClient(app) as client:
        yield client


def _made(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _emit(client: TestClient, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    made = _made(client.post("/_sandbox/events", json={"type": event_type, "data": data}), 202)
    return dict(made["events"][0])


def _app_key(
    client: TestClient, webhook: dict[str, Any] | None = None, dealer_id: int = 1001
) -> dict[str, Any]:
    body: dict[str, Any] = {"dealer_id": dealer_id, "scopes": list(APPS_SCOPES)}
    if webhook is not None:
        body["webhook"] = webhook
    return dict(_made(client.post("/_sandbox/api-keys", json=body)))


def _get(client: TestClient, path: str, key: dict[str, Any]) -> Any:
    response = client.get(path, headers={"Authorization": f"Bearer {key['key']}"})
    assert response.status_code == 200, response.text
    return response.json()


def _place(client: TestClient, key: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """A site of the key's dealer with two partitions, a camera, and a bridge."""
    sites = _get(client, "/v1/sites?limit=100", key)
    site = next(s for s in sites if len(s["arming"]["partitions"]) == 2)
    devices = _get(client, "/v1/devices?limit=1000", key)
    camera = next(d for d in devices if d["device_type"] == "camera")
    bridge = next(d for d in devices if d["device_type"] == "bridge")
    return site, camera, bridge


def test_each_dealer_v1_type_once_with_fields_from_the_record(
    sandbox: TestClient, hooks: tuple[Receiver, str]
) -> None:
    rx, url = hooks
    key = _app_key(sandbox, dealer_id=TWO_PARTITIONS)
    hook = {"url": f"{url}/dealer", "profile": "dealer-v1", "events": list(DEALER_V1)}
    secret = _made(sandbox.post("/_sandbox/subscriptions", json=hook))["secret"]
    site, camera, bridge = _place(sandbox, key)
    auth = {"Authorization": f"Bearer {key['key']}"}

    arm = {"state": "armed_away", "partition": "all"}  # two happenings, one arming_status
    armed = sandbox.post(f"/v1/sites/{site['site_id']}/arming-state", json=arm, headers=auth)
    assert len(_made(armed, 200)["event_ids"]) == 2
    one = {"state": "disarmed", "partition": 1}
    _made(sandbox.post(f"/v1/sites/{site['site_id']}/arming-state", json=one, headers=auth), 200)
    for device in (camera, bridge):
        path = f"/v1/devices/{device['device_id']}"
        _made(sandbox.patch(path, json={"status": "offline"}, headers=auth), 200)
    at_camera = {"site_id": camera["site_id"], "device_id": camera["device_id"]}
    alarm = _emit(sandbox, "alarm.created", at_camera)
    _emit(sandbox, "snapshot.created", {**at_camera, "alarm_id": alarm["alarm_id"]})

    got = wait_for(lambda: len(rx.at("/dealer")) >= len(DEALER_V1) and rx.at("/dealer"))
    for received in got:
        verify_signature(secret, received.headers, received.body, now=START)
    bodies = {json.loads(r.body)["event_type"]: (r, json.loads(r.body)) for r in got}
    assert sorted(bodies) == sorted(DEALER_V1) and len(got) == len(DEALER_V1)

    since = datetime.fromtimestamp(START, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = _get(sandbox, f"/v1/events?limit=100&since={since}", key)["data"]  # the new ones
    seq = {e["id"]: e["event_id"] for e in record}  # evt_… id -> the record's numeric id
    data = {}
    for name, (received, body) in bodies.items():
        assert body["event_id"] == seq[received.headers["x-chekt-event-id"]], name
        assert body["api_version"] == "v1" and body["endpoint_url"] == f"{url}/dealer"
        data[name] = body["payload"]["data"]
        assert isinstance(data[name]["event_time"], str)
    statuses = {n: bodies[n][1]["status"] for n in bodies}
    assert statuses == {
        "arming_status": "armed",
        "partition_arming_status": "disarmed",
        "camera_network": "offline",
        "bridge_network": "offline",
        "alarm_event": "triggered",
        "event_video": "ready",
    }

    names = {p["partition"]: p["name"] for p in site["arming"]["partitions"]}
    for name in ("arming_status", "partition_arming_status"):
        assert data[name]["site_id"] == site["site_id"]
        assert data[name]["site_name"] == site["name"]
        assert data[name]["account_number"] == site["account_number"]
    assert data["arming_status"]["arming_action"] == "arm"
    assert data["arming_status"]["partitions"] == [
        {"partition_id": n, "partition_name": names[n], "arming_status": "armed"} for n in (1, 2)
    ]
    assert data["partition_arming_status"]["arming_action"] == "disarm"
    assert data["partition_arming_status"]["partitions"] == [
        {"partition_id": 1, "partition_name": names[1], "arming_status": "disarmed"}
    ]
    now = _get(sandbox, "/v1/sites?limit=100", key)
    [after] = [s for s in now if s["site_id"] == site["site_id"]]
    assert [p["state"] for p in after["arming"]["partitions"]] == ["disarmed", "armed_away"]

    for name, device in (("camera_network", camera), ("bridge_network", bridge)):
        assert data[name]["device_id"] == device["device_id"]
        assert data[name]["device_name"] == device["name"]
        assert data[name]["zone_number"] == device["zone_number"]
        assert data[name]["is_online"] == 0
        assert _get(sandbox, f"/v1/devices/{device['device_id']}", key)["status"] == "offline"

    control = _made(sandbox.get(f"/_sandbox/alarms/{alarm['alarm_id']}"), 200)
    created = next(e for e in record if e["id"] == alarm["event_id"])
    for name in ("alarm_event", "event_video"):
        assert data[name]["device_id"] == control["device_id"] == camera["device_id"]
        assert data[name]["device_name"] == camera["name"]
        assert data[name]["zone_number"] == control["zone_number"]
        assert data[name]["site_id"] == control["site_id"]
        # both name the alarm's own event: what events-video-urls takes for its clip
        assert data[name]["event_id"] == created["event_id"]
    assert bodies["alarm_event"][1]["event_id"] == created["event_id"]
    assert bodies["event_video"][1]["event_id"] > created["event_id"]


def test_subscriptions_take_each_formats_own_names(
    sandbox: TestClient, hooks: tuple[Receiver, str]
) -> None:
    """The guide's registration (its legacy names) on the control API, the Partner API and an
    app key's webhook; names a format does not have are refused."""
    rx, url = hooks
    api = Api(sandbox)
    partner = {"Authorization": f"Bearer {api.key}"}

    def hook(path: str) -> dict[str, Any]:
        return {"url": f"{url}/{path}", "profile": "legacy-guide", "events": LEGACY}

    made = [
        _made(sandbox.post("/_sandbox/subscriptions", json=hook("control"))),
        _made(sandbox.post("/partner/v1/webhooks", json=hook("partner"), headers=partner)),
        _app_key(sandbox, hook("app"))["webhook"],
    ]
    assert all(m["events"] == LEGACY and m["profile"] == "legacy-guide" for m in made)
    listed = _made(sandbox.get("/partner/v1/webhooks", headers=partner), 200)
    assert any(item["events"] == LEGACY for item in listed)

    _emit(sandbox, "alarm.created", {"site_id": 10001})
    _emit(sandbox, "site.armed", {"site_id": 10001})  # not listed
    device = {"site_id": 10001, "device_id": 100001}
    _emit(sandbox, "device.offline", device)
    for sub, path in zip(made, ("control", "partner", "app"), strict=True):
        got = wait_for(lambda p=path: len(rx.at(f"/{p}")) >= 2 and rx.at(f"/{p}"))
        bodies = [json.loads(r.body) for r in got]
        assert [b["type"] for b in bodies] == LEGACY, path
        assert bodies[1]["data"]["status"] == "offline"
        assert bodies[1]["data"]["device_id"] == 100001
        for received in got:
            verify_signature(sub["secret"], received.headers, received.body, variant="legacy")

    wrong = {"url": f"{url}/x", "events": ["alarm.exploded"]}
    refused = sandbox.post("/_sandbox/subscriptions", json=wrong)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "events"
    patched = sandbox.patch(
        f"/partner/v1/webhooks/{made[1]['webhook_id']}",
        json={"events": ["camera_network"]},
        headers=partner,
    )
    assert _made(patched, 200)["events"] == ["camera_network"]


def test_a_dealer_v1_name_narrows_and_another_formats_name_stands_for_its_type(
    sandbox: TestClient, hooks: tuple[Receiver, str]
) -> None:
    rx, url = hooks
    cameras = {"url": f"{url}/cameras", "profile": "dealer-v1", "events": ["camera_network"]}
    apps = {"url": f"{url}/apps", "events": ["device.status_changed"]}  # chekt-apps
    for body in (cameras, apps):
        _made(sandbox.post("/_sandbox/subscriptions", json=body))
    key = _app_key(sandbox, dealer_id=TWO_PARTITIONS)
    _, camera, bridge = _place(sandbox, key)
    for device in (bridge, camera):
        _emit(sandbox, "device.offline", {k: device[k] for k in ("site_id", "device_id")})
    [only] = wait_for(lambda: rx.at("/cameras"))
    assert json.loads(only.body)["payload"]["data"]["device_id"] == camera["device_id"]
    both = wait_for(lambda: len(rx.at("/apps")) == 2 and rx.at("/apps"))
    assert {json.loads(r.body)["type"] for r in both} == {"device.offline"}
    assert len(rx.at("/cameras")) == 1


def test_legacy_guide_receivers_have_five_seconds() -> None:
    """A receiver that holds the request: a legacy-guide delivery gives up at the guide's 5 s,
    though the sandbox waits 30 s for the current format's."""
    settings = Settings()
    assert settings.webhook_timeout == 30
    # held past 5 s (let go when the test ends, so the receiver stops at once)
    with Hanging() as url, TestClient(create_app(settings)) as client:
        body = {"url": f"{url}/legacy", "profile": "legacy-guide", "events": ["alarm.triggered"]}
        _made(client.post("/_sandbox/subscriptions", json=body))
        _emit(client, "alarm.created", {"site_id": 10001})
        [attempt] = wait_for(lambda: _made(client.get("/_sandbox/deliveries"), 200), timeout=15)
    assert attempt["outcome"] == "timeout" and attempt["next_at"] is not None  # retried
    assert attempt["error"] == "no answer within 5 s"
    assert 5000 <= attempt["latency_ms"] < 5500
