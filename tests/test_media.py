"""The links webhooks carry resolve: snapshots are JPEGs, clips are H.264 MP4s, the tracking
link answers the responder's progress; each is authorized by its own signed token, which
expires on the sandbox clock."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import pytest
from helpers import Settings, live_server
from one_hop import TestClient
from PIL import Image
from receiver import Receiver, wait_for

from sandbox import SettingsError, VirtualClock, create_app
from sandbox.world import media

START = 1_900_000_000.0


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    rx = Receiver()
    with live_server(rx.app) as url:
        yield rx, url


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=START)


def _sandbox(clock: VirtualClock, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(webhook_timeout=1.0, **settings), clock=clock))


@pytest.fixture
def sandbox(clock: VirtualClock) -> Iterator[TestClient]:
    with _sandbox(clock, media_url_lifetime=600) as client:
        yield client


def delivered(
    client: TestClient, receiver: tuple[Receiver, str], path: str, **body: Any
) -> dict[str, Any]:
    """Emit one event to a fresh subscription at ``path`` and return the ``data`` it got."""
    rx, url = receiver
    response = client.post("/_sandbox/subscriptions", json={"url": f"{url}{path}"})
    assert response.status_code == 201, response.text
    assert client.post("/_sandbox/events", json=body).status_code == 202
    [got] = wait_for(lambda: rx.at(path))
    data: dict[str, Any] = json.loads(got.body)["data"]
    return data


def local(url: str) -> str:
    """The path and query of a link (the TestClient is the sandbox it names)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_a_delivered_snapshot_url_serves_the_same_jpeg_from_the_cache(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    data = delivered(sandbox, receiver, "/snap", type="alarm.created")
    assert urlsplit(data["snapshot_url"]).path == f"/_sandbox/media/{data['alarm_id']}.jpg"
    first = sandbox.get(local(data["snapshot_url"]))
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/jpeg"
    assert first.headers["cache-control"] == "private, max-age=600"
    image = Image.open(io.BytesIO(first.content))
    assert (image.format, image.size) == ("JPEG", media.SNAPSHOT_SIZE)
    second = sandbox.get(local(data["snapshot_url"]))
    assert second.content == first.content
    octets = sandbox.get(
        local(data["snapshot_url"]), headers={"Accept": "application/octet-stream"}
    )
    assert octets.headers["content-type"] == "application/octet-stream"
    assert octets.content == first.content
    assert sandbox.app.state.media.renders == 1  # type: ignore[attr-defined]


def test_the_same_seed_renders_the_same_bytes_in_another_sandbox(
    receiver: tuple[Receiver, str],
) -> None:
    with _sandbox(VirtualClock(START)) as one, _sandbox(VirtualClock(START)) as two:
        data = delivered(one, receiver, "/one", type="alarm.created")
        same = {k: data[k] for k in ("site_id", "device_id", "alarm_id")}
        again = delivered(two, receiver, "/two", type="alarm.created", data=same)
        assert again["snapshot_url"] != data["snapshot_url"]  # each store signs with its key
        for link in ("snapshot_url", "clip_url"):
            assert one.get(local(data[link])).content == two.get(local(again[link])).content


def test_the_clip_is_an_h264_mp4_of_three_seconds(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    data = delivered(sandbox, receiver, "/clip", type="alarm.created")
    response = sandbox.get(local(data["clip_url"]))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(response.content)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == media.CLIP_SIZE
        assert container.duration == media.CLIP_SECONDS * 1_000_000  # microseconds
    assert len(frames) == media.CLIP_FPS * media.CLIP_SECONDS
    assert response.content.index(b"moov") < response.content.index(b"mdat")  # plays at once


def test_a_link_expires_on_the_sandbox_clock(
    sandbox: TestClient, receiver: tuple[Receiver, str], clock: VirtualClock
) -> None:
    data = delivered(sandbox, receiver, "/expiry", type="snapshot.created")
    assert sandbox.get(local(data["url"])).status_code == 200
    clock.advance(600)
    refused(sandbox.get(local(data["url"])), 403, "link_expired")


def _with_claims(token: str, **changes: Any) -> str:
    body, _, mac = token.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    changed = base64.urlsafe_b64encode(json.dumps({**claims, **changes}).encode())
    return f"{changed.decode().rstrip('=')}.{mac}"


def test_a_missing_forged_or_borrowed_token_is_refused(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    data = delivered(sandbox, receiver, "/forged", type="alarm.created")
    link = urlsplit(data["snapshot_url"])
    token = parse_qs(link.query)["access_token"][0]
    refused(sandbox.get(link.path), 401, "invalid_token")
    longer = _with_claims(token, exp=START + 10**6)
    refused(sandbox.get(link.path, params={"access_token": longer}), 401, "invalid_token")
    refused(sandbox.get(link.path, params={"access_token": "not.a-token"}), 401, "invalid_token")
    clip_path = urlsplit(data["clip_url"]).path
    refused(sandbox.get(clip_path, params={"access_token": token}), 401, "invalid_token")
    other = link.path.replace(data["alarm_id"], "A-00000")
    refused(sandbox.get(other, params={"access_token": token}), 401, "invalid_token")
    refused(sandbox.get(f"/_sandbox/media/{data['alarm_id']}.gif?{link.query}"), 404, "not_found")


def test_the_tracking_link_follows_the_responder(
    sandbox: TestClient, receiver: tuple[Receiver, str], clock: VirtualClock
) -> None:
    for step in ("alarm.created", "alarm.acknowledged"):  # an alarm that can be dispatched
        assert sandbox.post("/_sandbox/events", json={"type": step}).status_code == 202
    data = delivered(sandbox, receiver, "/track", type="alarm.dispatched")
    response = sandbox.get(local(data["tracking_url"]))
    assert response.status_code == 200, response.text
    progress = response.json()
    assert progress["status"] == "en_route"
    assert progress["eta_seconds"] == data["eta_seconds"]
    assert progress["responder_id"] == data["responder_id"]
    clock.advance(data["eta_seconds"])
    assert sandbox.get(local(data["tracking_url"])).json()["status"] == "on_site"
    clock.advance(600)  # media_url_lifetime after the arrival
    refused(sandbox.get(local(data["tracking_url"])), 403, "link_expired")


def test_links_need_no_admin_token_off_loopback(clock: VirtualClock) -> None:
    """Off loopback the control API needs the admin token; a link's own token is enough."""
    with _sandbox(clock, host="192.0.2.10", admin_token="admin-token-0123") as client:
        store = client.app.state.services.world.store  # type: ignore[attr-defined]
        claims = {"kind": "snapshot", "id": "snap_1", "site_id": 1, "at": START}
        url = media.link(store, "http://testserver", claims, "jpg")
        assert client.get("/_sandbox/health").status_code == 401
        response = client.get(local(url))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/jpeg"


def test_the_link_lifetime_is_a_setting_that_must_be_positive() -> None:
    env = {"CHEKT_SANDBOX_MEDIA_URL_LIFETIME": "120"}
    assert Settings.load(None, env=env).media_url_lifetime == 120
    with pytest.raises(SettingsError, match="media_url_lifetime"):
        Settings.load(None, env={"CHEKT_SANDBOX_MEDIA_URL_LIFETIME": "0"})
