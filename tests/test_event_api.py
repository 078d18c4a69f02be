"""The Partner Event API over HTTP, as a video platform uses it: an assertion token, an event,
its media uploaded to the URLs the answer gave, and the alarm it raised reaching a subscriber
with those very bytes; resends, conflicts and every malformed field."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from helpers import Settings, public_pem, rsa_key
from PIL import Image
from receiver import Receiver, wait_for

from sandbox import Sandbox

KEY = rsa_key()
PRIVATE_PEM = KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)
CLIENT = "video-platform"
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x08mdat"


def jpeg(color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), color).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(Settings(db=":memory:", clock="virtual", webhook_timeout=2.0)) as running:
        running.register_client(
            client_id=CLIENT,
            kind="platform_partner",
            dealer_ids=[1001],
            public_key=public_pem(KEY),
            key_id="vp-1",
        )
        yield running


@pytest.fixture(scope="module")
def token(sandbox: Sandbox) -> str:
    return sandbox.assertion_token(CLIENT, PRIVATE_PEM, kid="vp-1")


@pytest.fixture(scope="module")
def bridge(sandbox: Sandbox) -> dict[str, Any]:
    """Dealer 1001's first bridge with a camera, as /_sandbox/credentials lists it."""
    return next(
        b for b in sandbox.credentials["bridges"] if b["dealer_id"] == 1001 and b["cameras"]
    )


def event(bridge: dict[str, Any], number: int, **changes: Any) -> dict[str, Any]:
    body = {
        "version": "1.0",
        "location_id": bridge["location_id"],
        "recorder_id": bridge["recorder_id"],
        "camera_id": bridge["cameras"][0]["camera_id"],
        "event_id": f"{1714560000000000 + number}",
        "event_type": "alarm",
        "event_status": "active",
        "event_time": "2024-05-01T12:00:00Z",
        **changes,
    }
    return {k: v for k, v in body.items() if v is not None}


def post(sandbox: Sandbox, body: Any, headers: dict[str, str]) -> httpx.Response:
    return sandbox.request("POST", "/partner/v1/events", json=body, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_event_becomes_an_alarm_that_shows_the_uploaded_media(
    sandbox: Sandbox,
    token: str,
    bridge: dict[str, Any],
    receiver: tuple[Receiver, str],
) -> None:
    rx, url = receiver
    sandbox.subscribe(f"{url}/hooks", events=["alarm.created"])
    sent = event(bridge, 1)
    answer = post(sandbox, sent, bearer(token))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["event_id"] == sent["event_id"] and body["expires_in"] == 900
    alarm_id = body["alarm_id"]
    picture, clip = jpeg(), MP4
    for kind, data, content_type in (
        ("snapshot", picture, "image/jpeg"),
        ("clip", clip, "video/mp4"),
    ):
        put = httpx.put(
            body["upload_urls"][kind], content=data, headers={"Content-Type": content_type}
        )
        assert put.status_code == 204, put.text

    [hook] = wait_for(lambda: rx.at("/hooks"))
    created = json.loads(hook.body)
    assert created["type"] == "alarm.created" and created["data"]["alarm_id"] == alarm_id
    assert created["data"]["site_id"] == bridge["site_id"]
    assert created["data"]["device_id"] == bridge["cameras"][0]["device_id"]
    assert httpx.get(created["data"]["snapshot_url"]).content == picture
    assert httpx.get(created["data"]["clip_url"]).content == clip
    alarm = sandbox.alarm(alarm_id)
    assert httpx.get(alarm["snapshot_url"]).content == picture

    again = post(sandbox, sent, bearer(token))
    assert again.status_code == 201 and again.json() == body
    assert again.headers["Idempotent-Replayed"] == "true"
    changed = post(sandbox, {**sent, "event_time": "2024-05-01T12:00:01Z"}, bearer(token))
    assert changed.status_code == 409, changed.text
    assert changed.json()["error"]["code"] == "idempotency_conflict"
    assert len(sandbox.alarms(site_id=bridge["site_id"], state="created")) >= 1
    [logged] = [e for e in sandbox.inbound(source="event_api") if e["alarm_id"] == alarm_id]
    assert logged["client_id"] == CLIENT and logged["event_id"] == sent["event_id"]
    posts = sandbox.requests(surface="event_api", method="POST")
    assert len(posts) == 3 and {p["tier"] for p in posts} == {"assertion"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"version": "2.0"}, "version"),
        ({"location_id": None}, "location_id"),
        ({"location_id": "abcdef"}, "location_id"),
        ({"location_id": "ZZZZZZ"}, "location_id"),
        ({"recorder_id": "ZZZZZZ"}, "recorder_id"),
        ({"camera_id": "not-a-uuid"}, "camera_id"),
        ({"camera_id": "00000000-0000-0000-0000-000000000000"}, "camera_id"),
        ({"event_id": "123"}, "event_id"),
        ({"event_id": True}, "event_id"),
        ({"event_type": "fire"}, "event_type"),
        ({"event_status": "restored"}, "event_status"),
        ({"event_time": "2024-05-01T12:00:00"}, "event_time"),
        ({"event_time": "yesterday"}, "event_time"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_each_malformed_field_is_a_422_naming_it(
    sandbox: Sandbox, token: str, bridge: dict[str, Any], changes: dict[str, Any], field: str
) -> None:
    alarms = len(sandbox.alarms())
    answer = post(sandbox, event(bridge, 100, **changes), bearer(token))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field
    assert len(sandbox.alarms()) == alarms


def test_credentials_reach_and_the_api_key_header(
    sandbox: Sandbox, token: str, bridge: dict[str, Any]
) -> None:
    assert post(sandbox, event(bridge, 200), {}).status_code == 401
    other = next(b for b in sandbox.credentials["bridges"] if b["dealer_id"] == 1002)
    foreign = event(other, 201, camera_id=other["cameras"][0]["camera_id"])
    refused = post(sandbox, foreign, bearer(token))
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "location_id"
    by_key = post(sandbox, event(bridge, 202), {"X-API-KEY": sandbox.api_key})
    assert by_key.status_code == 201, by_key.text
    [entry] = sandbox.requests(surface="event_api", status=201, tier="api_key")
    assert "chekt_test_" not in json.dumps(entry["headers"])


def test_uploads_are_checked(sandbox: Sandbox, token: str, bridge: dict[str, Any]) -> None:
    body = post(sandbox, event(bridge, 300), bearer(token)).json()
    snapshot, clip = body["upload_urls"]["snapshot"], body["upload_urls"]["clip"]
    wrong_type = httpx.put(snapshot, content=jpeg(), headers={"Content-Type": "image/png"})
    assert wrong_type.status_code == 415
    not_jpeg = httpx.put(snapshot, content=MP4, headers={"Content-Type": "image/jpeg"})
    assert not_jpeg.status_code == 422 and not_jpeg.json()["error"]["field"] == "body"
    too_big = httpx.put(clip, content=MP4 + bytes(32 << 20), headers={"Content-Type": "video/mp4"})
    assert too_big.status_code == 413
    forged = snapshot.replace("/snapshot?", "/clip?")
    assert httpx.put(forged, content=MP4, headers={"Content-Type": "video/mp4"}).status_code == 401
    sandbox.clock.advance(901)
    late = httpx.put(snapshot, content=jpeg(), headers={"Content-Type": "image/jpeg"})
    assert late.status_code == 403 and late.json()["error"]["code"] == "link_expired"
    alarm = sandbox.alarm(body["alarm_id"])
    assert httpx.get(alarm["snapshot_url"]).content[:3] == b"\xff\xd8\xff"  # rendered, as before


def test_trouble_and_arming_events_change_the_record(
    sandbox: Sandbox, token: str, bridge: dict[str, Any]
) -> None:
    camera = bridge["cameras"][0]["device_id"]
    trouble = post(sandbox, event(bridge, 400, event_type="trouble"), bearer(token))
    assert trouble.status_code == 201 and "alarm_id" not in trouble.json()
    offline = [
        e for e in sandbox.inbound(event_type="trouble") if e["event_id"] == str(1714560000000400)
    ]
    assert offline and offline[0]["record_event_ids"]
    trail = sandbox.audit(target=f"device {camera}", surface="event_api")
    assert [t["action"] for t in trail] == ["device.offline"]
    restored = post(
        sandbox, event(bridge, 401, event_type="trouble", event_status="restored"), bearer(token)
    )
    assert restored.status_code == 201
    trail = sandbox.audit(target=f"device {camera}", surface="event_api")
    assert [t["action"] for t in trail] == ["device.offline", "device.online"]
    armed = post(
        sandbox, event(bridge, 402, event_type="arming", event_status="armed"), bearer(token)
    )
    assert armed.status_code == 201
    trail = sandbox.audit(target=f"site {bridge['site_id']} partition 1", surface="event_api")
    assert [t["action"] for t in trail][-1] == "site.armed"
