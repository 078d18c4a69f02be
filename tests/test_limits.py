"""Request limits and malformed input: every bad request gets a clear 4xx with the
envelope, never a 500, and a slow or oversized client is cut off without stalling others."""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from helpers import Api, Settings
from one_hop import TestClient

from sandbox import create_app
from sandbox.server import ThreadedServer

SITES = "/partner/v1/dealers/1001/sites"


def test_oversized_headers_get_431(api: Api) -> None:
    response = api.client.get(SITES, headers={**api.bearer(api.key), "X-Big": "a" * 17_000})
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "request_header_fields_too_large"


def test_a_declared_oversized_body_gets_413_without_being_read(api: Api) -> None:
    response = api.client.post(
        SITES,
        content=b"{" + b" " * (2 << 20) + b"}",
        headers={**api.bearer(api.key), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_chunked_oversized_body_gets_413(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 65536

    response = api.client.post(
        SITES, content=chunks(), headers={**api.bearer(api.key), "Content-Type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize("max_body", [64 << 10, 3 << 20])
def test_the_max_body_setting_is_the_one_bound(max_body: int) -> None:
    """Bodies are bounded by ``Settings.max_body`` alone: no second constant in a handler."""
    body = json.dumps({"url": "http://127.0.0.1:9/" + "a" * (2 << 20)}).encode()
    with TestClient(create_app(Settings(max_body=max_body))) as client:
        response = client.post(
            "/_sandbox/subscriptions", content=body, headers={"Content-Type": "application/json"}
        )
    expected = 413 if len(body) > max_body else 422  # too long a url, read and refused
    assert response.status_code == expected, response.text


def _raw(port: int, payload: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(payload)
    return sock


@pytest.mark.latency
def test_slow_silent_and_oversized_clients_are_cut_off_while_others_are_served() -> None:
    settings = Settings(request_timeout=1.0, idle_timeout=1.0)
    server = ThreadedServer(create_app(settings), settings=settings)
    with server as url:
        port = int(url.rsplit(":", 1)[1])
        key = httpx.get(f"{url}/_sandbox/credentials").json()["api_keys"][0]["key"]
        head = (
            f"POST {SITES} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        served: list[float] = []

        def well_behaved() -> None:
            for _ in range(20):
                started = time.monotonic()
                response = httpx.get(f"{url}{SITES}", headers={"Authorization": f"Bearer {key}"})
                assert response.status_code == 200
                served.append(time.monotonic() - started)

        started = time.monotonic()
        clients = {
            "slow body": _raw(port, head + b'Content-Length: 100\r\n\r\n{"name":'),  # stalls
            "slow headers": _raw(port, head[:40]),  # the rest of the headers never comes
            "oversized": _raw(port, head + b"Content-Length: 5000000\r\n\r\n"),
            "silent": _raw(port, b""),  # connects and never sends a byte
        }
        neighbour = threading.Thread(target=well_behaved)
        neighbour.start()
        answers: dict[str, tuple[bytes, float]] = {}
        for name, sock in clients.items():
            with sock:
                answers[name] = (_read_until_closed(sock), time.monotonic() - started)
        neighbour.join()
    status = {name: answer.split(b"\r\n")[0] for name, (answer, _) in answers.items()}
    assert b" 413 " in status["oversized"]
    for name in ("slow body", "slow headers"):
        assert b" 408 " in status[name], name
        assert json.loads(answers[name][0].split(b"\r\n\r\n", 1)[1])["error"]["code"] == (
            "request_timeout"
        )
    assert answers["silent"][0] == b""  # closed without a word: there was no request
    for name, (_, closed_after) in answers.items():
        assert closed_after < 1.0 + 1.0, name  # the deadline plus a second
    assert len(served) == 20 and max(served) < 1.0  # others were served meanwhile


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_growing_head_gets_431_as_it_passes_the_limit_on_a_real_server() -> None:
    """Headers are bounded while they arrive: a head that never ends is cut off near 16 KiB
    with the envelope, not buffered until the header deadline."""
    settings = Settings(request_timeout=5.0)
    with ThreadedServer(create_app(settings), settings=settings) as url:
        sock = _raw(int(url.rsplit(":", 1)[1]), b"GET /_sandbox/health HTTP/1.1\r\nHost: x\r\n")
        with sock:
            started = time.monotonic()
            sent = 0
            while sent < 1 << 20 and not select.select([sock], [], [], 0.005)[0]:
                sock.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")  # a line at a time
                sent += 1012
            answer = _read_until_closed(sock)
            took = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert json.loads(body)["error"]["code"] == "request_header_fields_too_large"
    assert sent < 64 << 10 and took < 2.0


def test_pipelined_requests_are_answered_in_order_and_a_stalled_one_times_out() -> None:
    settings = Settings(request_timeout=1.0)
    with ThreadedServer(create_app(settings), settings=settings) as url:
        get = b"GET /_sandbox/health HTTP/1.1\r\nHost: localhost\r\n\r\n"
        sock = _raw(int(url.rsplit(":", 1)[1]), get * 3 + get[:20])  # three, then a stall
        with sock:
            started = time.monotonic()
            answer = _read_until_closed(sock)
            closed_after = time.monotonic() - started
    assert re.findall(rb"HTTP/1\.1 ([0-9]{3}) ", answer) == [b"200", b"200", b"200", b"408"]
    assert 0.9 < closed_after < 2.0


def test_an_idle_keep_alive_connection_is_closed_after_idle_timeout() -> None:
    settings = Settings(idle_timeout=0.5)
    with ThreadedServer(create_app(settings), settings=settings) as url:
        sock = _raw(
            int(url.rsplit(":", 1)[1]), b"GET /_sandbox/health HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        with sock:
            answered = time.monotonic()
            answer = _read_until_closed(sock)  # returns once the server closes
            idle = time.monotonic() - answered
    assert b" 200 " in answer.split(b"\r\n")[0]
    assert 0.4 < idle < 1.5


MALFORMED = [
    (b"", "application/json"),
    (b" ", "application/json"),
    (b"{", "application/json"),
    (b"}", "application/json"),
    (b"[1,", "application/json"),
    (b'{"a":}', "application/json"),
    (b"{'a': 1}", "application/json"),
    (b'{"a": 1,}', "application/json"),
    (b"nul", "application/json"),
    (b'{"a": NaN}', "application/json"),
    (b'{"a": Infinity}', "application/json"),
    (b'{"a": -Infinity}', "application/json"),
    (b'{"name": "a", "name": "b"}', "application/json"),
    (b"\xff\xfe\xfd", "application/json"),
    (b'{"name": "\xc3\x28"}', "application/json"),
    (b'"\\ud800"', "application/json"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json"),
    (b'{"n": ' + b"9" * 5000 + b"}", "application/json"),
    (b'{"n": 1e999999}', "application/json"),
    (b'{"external_site_id": 1e400, "name": "x", "timezone": "UTC"}', "application/json"),
    (b"123", "application/json"),
    (b'"a string"', "application/json"),
    (b"true", "application/json"),
    (b"null", "application/json"),
    (b"[]", "application/json"),
    (b'{"name": "x"}', "text/plain"),
    (b'{"name": "x"}', "application/xml"),
    (b"name=x", "application/x-www-form-urlencoded"),
    (b'{"name": "x"}', ""),
    (b'{"name": "x"}', "multipart/form-data; boundary=x"),
    (b'{"external_site_id": "a", "name": "\\u0000", "timezone": "UTC"}', "application/json"),
    (b'{"external_site_id": ["a"], "name": "x", "timezone": "UTC"}', "application/json"),
    (b'{"external_site_id": "a", "name": {"x": 1}, "timezone": "UTC"}', "application/json"),
    (
        b'{"external_site_id": "a", "name": "x", "timezone": "UTC", "monitoring_station_id": true}',
        "application/json",
    ),
]


@pytest.mark.parametrize(("body", "content_type"), MALFORMED)
def test_malformed_bodies_get_a_clear_4xx(api: Api, body: bytes, content_type: str) -> None:
    headers = {**api.bearer(api.key)}
    if content_type:
        headers["Content-Type"] = content_type
    for method, path in (
        ("POST", SITES),
        ("PATCH", f"{SITES}/10001"),
        ("POST", f"{SITES}/10001/devices"),
    ):
        response = api.client.request(method, path, content=body, headers=headers)
        assert response.status_code in (400, 413, 415, 422), (method, body[:40], response.text)
        error = response.json()["error"]
        assert error["request_id"] == response.headers["x-request-id"] and error["message"]
    assert api.client.app.state.server_errors == []


def test_a_refused_client_still_sending_reads_the_whole_answer() -> None:
    """A lingering close: bytes the client sends after its 431 are read and dropped, so its
    socket is not reset and the answer waiting in it can be read, then the end of stream."""
    settings = Settings(request_timeout=5.0)
    with ThreadedServer(create_app(settings), settings=settings) as url:
        sock = _raw(int(url.rsplit(":", 1)[1]), b"GET /_sandbox/health HTTP/1.1\r\nHost: x\r\n")
        with sock:
            sent = 0
            while sent < 1 << 20 and not select.select([sock], [], [], 0.005)[0]:
                sock.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")  # until the answer is there
                sent += 1012
            for _ in range(64):  # and the client goes on sending a while
                sock.sendall(b"X-More: " + b"b" * 4000 + b"\r\n")
            answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == (
        "request_header_fields_too_large"
    )
