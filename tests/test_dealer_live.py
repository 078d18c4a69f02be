"""A camera's live view (CONTRACT §5.2): the ``mjpeg_url`` the dealer API lists is a
``multipart/x-mixed-replace`` stream of JPEG frames over real HTTP, the snapshot by MAC is the
same camera's frame as base64 JSON, and the token decides: 401 when dead, 403 for another
channel or camera."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from helpers import Settings
from receiver import wait_for

from sandbox import VirtualClock, create_app
from sandbox.server import ThreadedServer

START = 1_900_000_000.0
SITE = 10001


class Live:
    def __init__(self, url: str, http: httpx.Client, clock: VirtualClock, app: Any) -> None:
        self.url, self.http, self.clock, self.app = url, http, clock, app

    def cameras(self) -> list[dict[str, Any]]:
        answer = self.http.get(f"/ext/v1/sites/{SITE}/cameras")
        assert answer.status_code == 200, answer.text
        return list(answer.json())


@pytest.fixture
def live() -> Iterator[Live]:
    clock = VirtualClock(start=START)
    app = create_app(Settings(allowed_hosts=("*",)), clock=clock)
    with ThreadedServer(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        creds = http.get("/_sandbox/credentials").json()
        key = next(k for k in creds["api_keys"] if k["origin"] == "seeded")["key"]
        http.headers["Authorization"] = f"Bearer {key}"
        yield Live(url, http, clock, app)
    assert not app.state.server_errors


def parts(response: httpx.Response, count: int) -> list[bytes]:
    """The first ``count`` parts of a multipart/x-mixed-replace body, each checked."""
    return read_parts(response, response.iter_bytes(), count)[0]


def read_parts(
    response: httpx.Response, chunks: Iterator[bytes], count: int
) -> tuple[list[bytes], bytes]:
    """``count`` parts read from ``chunks``, and what was read after them."""
    boundary = response.headers["content-type"].split("boundary=", 1)[1].encode()
    found: list[bytes] = []
    buffer = b""
    while len(found) < count:
        buffer += next(chunks)
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = buffer[:head_end].decode("ascii").split("\r\n")
            assert head[0] == "--" + boundary.decode()
            fields = dict(line.split(": ", 1) for line in head[1:])
            assert fields["Content-Type"] == "image/jpeg"
            size = int(fields["Content-Length"])
            if len(buffer) < head_end + 4 + size + 2:
                break
            body = buffer[head_end + 4 : head_end + 4 + size]
            assert buffer[head_end + 4 + size : head_end + 6 + size] == b"\r\n"
            found.append(body)
            buffer = buffer[head_end + 6 + size :]
    return found, buffer


@pytest.mark.latency
def test_the_mjpeg_url_streams_jpeg_frames_until_the_client_goes_away(live: Live) -> None:
    camera = live.cameras()[0]
    assert camera["mjpeg_url"].startswith(f"{live.url}/api/v1/mjpeg?access_token=")
    started = time.monotonic()
    # an <img> sends no credential
    with httpx.Client(timeout=10) as viewer, viewer.stream("GET", camera["mjpeg_url"]) as got:
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=")
        frames = parts(got, 3)
    assert time.monotonic() - started < 5  # a few frames a second
    wait_for(lambda: live.app.state.live.viewers == 0)  # the server saw the viewer go
    for frame in frames:
        assert frame.startswith(b"\xff\xd8") and frame.endswith(b"\xff\xd9")
    assert live.app.state.live.encoded == 1  # the sandbox clock stood still: one frame drawn
    head = httpx.head(camera["mjpeg_url"], timeout=10)  # the headers, and no endless body
    assert head.status_code == 200 and head.headers["content-type"].startswith(
        "multipart/x-mixed-replace"
    )
    live.clock.advance(2)
    with httpx.Client(timeout=10) as viewer, viewer.stream("GET", camera["mjpeg_url"]) as got:
        [later] = parts(got, 1)
    assert later != frames[0]  # the time on it moved on


def test_a_snapshot_by_mac_and_what_the_token_allows(live: Live) -> None:
    camera = live.cameras()[0]
    token = camera["mjpeg_url"].split("access_token=", 1)[1]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert {"sub", "channel", "group_channel", "exp"} <= set(claims)
    assert claims["exp"] == int(START + 3600)  # media_url_lifetime on the sandbox clock
    mac, channel = claims["sub"], claims["channel"]
    assert int(camera["zone_numbers"][0]) == channel
    viewer = httpx.Client(base_url=live.url, timeout=10)
    got = viewer.get(f"/api/v1/snapshots/{mac}/{channel}", params={"access_token": token})
    assert got.status_code == 200, got.text
    assert got.json()["base64Encoded"] is True
    assert base64.b64decode(got.json()["data"]).startswith(b"\xff\xd8")
    lower = viewer.get(
        f"/api/v1/snapshots/{mac.lower().replace(':', '-')}/{channel}",
        params={"access_token": token},
    )
    assert lower.status_code == 200
    wrong = viewer.get(f"/api/v1/snapshots/{mac}/{channel + 1}", params={"access_token": token})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_channel"
    other = viewer.get(
        f"/api/v1/snapshots/00:11:22:33:44:55/{channel}", params={"access_token": token}
    )
    assert other.status_code == 403 and other.json()["error"]["code"] == "wrong_camera"
    for bad in ("", "not-a-token", token[:-2] + "xx"):
        refused = viewer.get("/api/v1/mjpeg", params={"access_token": bad})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    live.clock.advance(3600)
    for path in ("/api/v1/mjpeg", f"/api/v1/snapshots/{mac}/{channel}"):
        dead = viewer.get(path, params={"access_token": token})
        assert dead.status_code == 401 and dead.json()["error"]["code"] == "token_expired"
    fresh = live.cameras()[0]["mjpeg_url"].split("access_token=", 1)[1]
    again = viewer.get(f"/api/v1/snapshots/{mac}/{channel}", params={"access_token": fresh})
    assert again.status_code == 200
    viewer.close()


@pytest.mark.latency
def test_an_open_stream_ends_when_the_server_stops() -> None:
    app = create_app(Settings(allowed_hosts=("*",)))
    server = ThreadedServer(app)
    url = server.start()
    try:
        creds = httpx.get(f"{url}/_sandbox/credentials", timeout=10).json()
        key = next(k for k in creds["api_keys"] if k["origin"] == "seeded")["key"]
        cameras = httpx.get(
            f"{url}/ext/v1/sites/{SITE}/cameras",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ).json()
        with (
            httpx.Client(timeout=10) as viewer,
            viewer.stream("GET", cameras[0]["mjpeg_url"]) as got,
        ):
            chunks = got.iter_bytes()
            _, read = read_parts(got, chunks, 1)
            started = time.monotonic()
            server.stop()  # waits for every response to finish
            stopped = time.monotonic() - started
            rest = read + b"".join(chunks)
    finally:
        server.stop()
    assert stopped < 3
    assert rest.endswith(b"--chektframe--\r\n")  # the closing boundary: a clean end
