"""The dealer API's site calls (CONTRACT §5.2), over HTTP only: arming a site and a partition
with the live client's body and the documented one (the state reads back, the webhooks
arrive, the audit log names the dealer API), another dealer's site is absent, an unknown
partition is named; cameras, zones, audio devices and bridges with every field typed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from helpers import Settings
from one_hop import TestClient
from receiver import Receiver, wait_for

from sandbox import VirtualClock, create_app

START = 1_900_000_000.0
SITE, PARTITIONED, OTHER = 10006, 10006, 10001  # dealer 1002's (two partitions); 1001's
BASE = "/ext/v1/sites"


@pytest.fixture
def dealer(receiver: tuple[Receiver, str]) -> Iterator[dict[str, Any]]:
    """A sandbox on a virtual clock, and an API key of dealer 1002 whose app hears
    site.* webhooks at the receiver."""
    rx, url = receiver
    app = create_app(Settings(webhook_timeout=1.0), clock=VirtualClock(start=START))
    with TestClient(app) as client:
        made = client.post(
            "/_sandbox/api-keys",
            json={"dealer_id": 1002, "scopes": ["sites:read"], "webhook": {"url": f"{url}/hook"}},
        )
        assert made.status_code == 201, made.text
        client.headers["Authorization"] = f"Bearer {made.json()['key']}"
        yield {"client": client, "rx": rx, "key": made.json(), "app": app}
    assert not app.state.server_errors
    app.state.services.close()


def _heard(rx: Receiver, count: int) -> list[dict[str, Any]]:
    wait_for(lambda: len(rx.at("/hook")) >= count)
    return [json.loads(r.body) for r in rx.at("/hook")]


def _armed(client: TestClient, path: str, body: Any = None) -> Any:
    answer = (
        client.post(f"{BASE}/{SITE}/{path}", json=body)
        if body is not None
        else (client.post(f"{BASE}/{SITE}/{path}"))
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_site_is_armed_and_disarmed_with_either_body_and_webhooks_follow(
    dealer: dict[str, Any],
) -> None:
    client, rx = dealer["client"], dealer["rx"]
    before = client.get(f"{BASE}/{SITE}/arming").json()
    assert before["arming_status"] == "disarmed"
    armed = _armed(client, "arming/actions/arm", {"user": "installer@example.com"})
    assert armed["arming_status"] == "armed" and armed["arming_updated_at"]
    assert client.get(f"{BASE}/{SITE}/arming").json() == armed
    heard = _heard(rx, 2)  # one per partition: the site has two
    assert {h["type"] for h in heard} == {"site.armed"}
    assert sorted(h["data"]["partition"] for h in heard) == [1, 2]
    assert {h["data"]["state"] for h in heard} == {"armed_away"}  # no mode: away
    assert {h["data"]["user_id"] for h in heard} == {"installer@example.com"}

    disarmed = _armed(client, "arming/actions/disarm", {"user": 7})
    assert disarmed["arming_status"] == "disarmed"
    assert client.get(f"{BASE}/{SITE}/arming").json() == disarmed
    assert [h["type"] for h in _heard(rx, 4)[2:]] == ["site.disarmed"] * 2

    documented = {"mode": "night", "user_code": "1234", "bypass_zones": ["002"], "force_arm": True}
    assert _armed(client, "arming/actions/arm", documented)["arming_status"] == "armed"
    assert {h["data"]["state"] for h in _heard(rx, 6)[4:]} == {"armed_night"}
    assert _armed(client, "arming/actions/disarm")["arming_status"] == "disarmed"  # no body
    assert [h["type"] for h in _heard(rx, 8)[6:]] == ["site.disarmed"] * 2

    document = client.get("/openapi.json").json()
    for body in _heard(rx, 8):  # each as the document gives the webhook
        schema = document["webhooks"][f"chekt-apps:{body['type']}"]["post"]["requestBody"]
        schema = {
            **schema["content"]["application/json"]["schema"],
            "components": document["components"],
        }
        jsonschema.Draft202012Validator(schema).validate(body)

    trail = client.get("/_sandbox/audit", params={"actor_id": dealer["key"]["client_id"]}).json()
    assert len(trail) == 8 and {t["surface"] for t in trail} == {"dealer"}
    assert {t["dealer_id"] for t in trail} == {1002}


def test_one_partition_is_armed_and_disarmed_and_reads_back(dealer: dict[str, Any]) -> None:
    client, rx = dealer["client"], dealer["rx"]
    partitions = client.get(f"{BASE}/{PARTITIONED}/partition-arming").json()
    assert [p["partition_number"] for p in partitions] == [1, 2]
    for p in partitions:
        assert set(p) == {"partition_id", "partition_name", "partition_number", "arming_status"}
        assert isinstance(p["partition_id"], int) and isinstance(p["partition_name"], str)
        assert p["arming_status"] == "disarmed"
    second = partitions[1]["partition_id"]
    after = _armed(
        client, "partition-arming/actions/arm", {"partition_ids": [second], "user": "u1"}
    )
    assert [p["arming_status"] for p in after] == ["disarmed", "armed"]
    assert client.get(f"{BASE}/{PARTITIONED}/partition-arming").json() == after
    assert client.get(f"{BASE}/{PARTITIONED}/arming").json()["arming_status"] == "armed"
    [heard] = _heard(rx, 1)
    assert heard["type"] == "site.armed" and heard["data"]["partition"] == 2
    assert heard["data"]["site_id"] == PARTITIONED

    body = {"partition_ids": [second], "mode": "stay", "user_code": "9876", "force_arm": False}
    assert _armed(client, "partition-arming/actions/disarm", body)[1]["arming_status"] == (
        "disarmed"
    )
    assert _heard(rx, 2)[1]["type"] == "site.disarmed"
    assert client.get(f"{BASE}/{PARTITIONED}/arming").json()["arming_status"] == "disarmed"


def test_refusals_name_what_is_wrong(dealer: dict[str, Any]) -> None:
    client = dealer["client"]
    for path in ("arming", "partition-arming", "cameras", "zones", "audio-devices", "bridges"):
        absent = client.get(f"{BASE}/{OTHER}/{path}")  # dealer 1001's site
        assert absent.status_code == 404, (path, absent.text)
        assert absent.json()["error"]["code"] == "site_not_found"
    refused = client.post(f"{BASE}/{OTHER}/arming/actions/arm", json={"user": "x"})
    assert refused.status_code == 404
    unknown = client.post(
        f"{BASE}/{PARTITIONED}/partition-arming/actions/arm", json={"partition_ids": [1, 9]}
    )
    assert unknown.status_code == 422
    error = unknown.json()["error"]
    assert error["detail"] == "partition_ids" and "9" in error["message"]
    for body, field in (
        ({"mode": "vacation"}, "mode"),
        ({"user_code": "12"}, "user_code"),
        ({"bypass_zones": [1]}, "bypass_zones"),
        ({"force_arm": "yes"}, "force_arm"),
        ({"unheard": 1}, "unheard"),
    ):
        bad = client.post(f"{BASE}/{SITE}/arming/actions/arm", json=body)
        assert bad.status_code == 422 and bad.json()["error"]["detail"] == field, bad.text
    missing = client.post(f"{BASE}/{SITE}/partition-arming/actions/arm", json={"user": "x"})
    assert missing.status_code == 422 and missing.json()["error"]["detail"] == "partition_ids"
    assert client.get(f"{BASE}/{SITE}/arming").json()["arming_status"] == "disarmed"
    assert dealer["rx"].at("/hook") == []  # nothing refused reached the record


def test_devices_of_a_site_with_every_field_typed(dealer: dict[str, Any]) -> None:
    client = dealer["client"]
    cameras = client.get(f"{BASE}/{SITE}/cameras").json()
    assert cameras
    for camera in cameras:
        assert set(camera) == {"device_id", "name", "status", "mjpeg_url", "zone_numbers"}
        assert isinstance(camera["device_id"], int) and isinstance(camera["name"], str)
        assert camera["status"] in ("online", "offline")
        assert camera["mjpeg_url"].startswith("http://testserver/api/v1/mjpeg?access_token=")
        assert camera["zone_numbers"] and all(len(z) == 3 for z in camera["zone_numbers"])
    zones = client.get(f"{BASE}/{SITE}/zones").json()
    assert {z["zone_number"] for z in zones} == {n for c in cameras for n in c["zone_numbers"]}
    for zone in zones:
        assert set(zone) == {"zone_number", "zone_name", "device_id", "zone_numbers"}
        assert zone["zone_number"] in zone["zone_numbers"]
        assert zone["device_id"] in {c["device_id"] for c in cameras}
    [bridge] = client.get(f"{BASE}/{SITE}/bridges").json()
    assert set(bridge) >= {
        "bridge_id",
        "serial_number",
        "model",
        "firmware_version",
        "status",
        "mac_address",
        "ip_address",
    }
    assert isinstance(bridge["bridge_id"], int) and bridge["status"] in ("online", "offline")
    assert bridge["serial_number"].startswith("CK") and bridge["ip_address"].count(".") == 3
    assert bridge["bridge_id"] not in {c["device_id"] for c in cameras}
    assert client.get(f"{BASE}/{SITE}/audio-devices").json() == []
