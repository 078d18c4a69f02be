"""The server sends a response's head with the first bytes of its body, in one write
(``sandbox.protocol.HeldHead``): what reaches the client is the same bytes, in the same
order, whatever the response (a HEAD, a stream, an error after the head)."""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Any

import httpx
from helpers import Settings, live_server

from sandbox import create_app
from sandbox.protocol import HeldHead

SITES = "/partner/v1/dealers/1001/sites"
HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n"


class Wire(asyncio.Transport):
    """The socket's side: what was written, one item a write (the OS's part, not ours)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def _held() -> tuple[HeldHead, Wire]:
    wire = Wire()
    held = HeldHead(wire)
    held.state = 0  # a response begins
    return held, wire


def test_a_head_with_a_length_goes_out_with_its_body_in_one_write() -> None:
    held, wire = _held()
    held.write(HEAD)
    assert wire.writes == []
    held.write(b"[]")
    held.write(b"")  # nothing after the body is held back
    assert wire.writes == [HEAD + b"[]", b""]


def test_a_stream_head_goes_out_at_once() -> None:
    held, wire = _held()
    stream = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    held.write(stream)
    assert wire.writes == [stream]


def test_a_held_head_goes_out_alone_when_the_response_ends_or_closes() -> None:
    held, wire = _held()
    held.write(HEAD)
    held.flush()  # a HEAD: the response ends without a body
    held.flush()
    assert wire.writes == [HEAD]
    held, wire = _held()
    held.write(HEAD)
    held.close()  # an app that failed after the head: the head, then the close
    assert wire.writes == [HEAD] and wire.closing
    held, wire = _held()
    held.write(HEAD)
    wire.closing = True  # the client went away: nothing more is written
    held.flush()
    assert wire.writes == []


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send one request and read its whole response (by its Content-Length)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    if not request.startswith(b"HEAD"):
        while len(body) < length:
            body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_answers_on_a_real_server_arrive_whole_and_in_order() -> None:
    with live_server(create_app(Settings())) as url:
        key = httpx.get(f"{url}/_sandbox/credentials").json()["api_keys"][0]["key"]
        expected = httpx.get(f"{url}{SITES}", headers={"Authorization": f"Bearer {key}"})
        request = f"{SITES} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\r\n"
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), 10) as sock:
            answers = [
                _exchange(sock, method + b" " + request.encode())
                for method in (b"GET", b"GET", b"HEAD", b"GET")  # handled, replayed, HEAD
            ]
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert f"content-length: {len(expected.content)}".encode() in answer
    assert [a.partition(b"\r\n\r\n")[2] for a in answers] == [expected.content] * 2 + [
        b"",
        expected.content,
    ]
