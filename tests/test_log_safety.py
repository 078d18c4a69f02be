"""Control characters in any input never reach a log line, the terminal or a report raw:
a real server is fed them in every place a client can put them, and everything the sandbox
printed or logged meanwhile is searched for them."""

from __future__ import annotations

import base64
import json
import logging
import socket
import xml.etree.ElementTree as ET  # our own report file, not untrusted input
from pathlib import Path

import httpx
import jwt
import pytest
from click.testing import CliRunner
from helpers import Settings
from receiver import Answer, Receiver, wait_for

from sandbox import Sandbox
from sandbox.cli import main
from sandbox.logs import printable, safe_logger
from sandbox.scenario import Runner, junit, parse, summary
from sandbox.server import ThreadedServer

EVIL = "\x1b[2J\x00\r\nFAKE\x07\x85\u2028"  # ANSI clear, NUL, a forged line, BEL, C1, LS
SERVER_SIDE = ("sandbox", "uvicorn", "asyncio", "aiohttp")  # the test's own httpx is not
EVIL_URL = "%1b%5b2J%00%0d%0aFAKE%07%c2%85%e2%80%a8"


def _raw_unsafe(text: str) -> list[str]:
    """Unprintable characters in ``text`` other than the line breaks between lines."""
    return sorted({c for c in text if not c.isprintable() and c != "\n"})


def _forged(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("FAKE")]


def _raw_request(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(65536)


def test_control_characters_in_every_input_never_reach_logs_or_prints_raw(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    rx = Receiver()
    rx.answers["/evil"] = Answer(status=500, body=EVIL.encode(), headers={"X-Evil": "\x85"})
    with Sandbox(Settings(db=":memory:")) as sandbox, ThreadedServer(rx.app) as hook:
        url = sandbox.url
        auth = {"Authorization": f"Bearer {sandbox.api_key}"}
        sites = "/partner/v1/dealers/1001/sites"
        with httpx.Client(base_url=url) as http:
            # paths, queries, bodies, trace ids, credentials
            http.get(f"{sites}/{EVIL_URL}", headers=auth)
            http.get(f"/partner/v1/dealers/{EVIL_URL}/sites", headers=auth)
            http.get(sites, params={"filter": EVIL, "sort": EVIL, "fields": EVIL}, headers=auth)
            http.post(sites, json={"external_site_id": EVIL, "name": EVIL}, headers=auth)
            http.post(sites, content=EVIL.encode(), headers=auth)
            http.get(sites, headers={**auth, "X-Partner-Trace-Id": b"\x85\xa0\x9b"})
            http.get(sites, headers={"Authorization": b"Bearer \x85\x9b31m"})
            http.post(
                "/oauth/token",
                data={"grant_type": EVIL, "client_id": EVIL, "client_secret": EVIL},
            )
            basic = base64.b64encode(f"{EVIL}:{EVIL}".encode()).decode()
            http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
            )
            assertion = jwt.encode({"iss": EVIL, "sub": EVIL, "jti": EVIL}, "k" * 32, "HS256")
            http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": EVIL,
                    "client_assertion": assertion,
                },
            )
            http.get(
                "/authorize",
                params={"client_id": EVIL, "redirect_uri": EVIL, "state": EVIL},
            )
        # bytes httpx would refuse to send: raw control and latin-1 bytes in the request line
        # and in header values
        for request in (
            b"GET /partner/\x1b[2J HTTP/1.1\r\nHost: localhost\r\n\r\n",
            f"GET {sites} HTTP/1.1\r\nHost: localhost\r\nX-A: \x85\x9b\t\r\n\r\n".encode("latin-1"),
        ):
            _raw_request(url, request)
        # a webhook receiver that answers with them
        sandbox.subscribe(f"{hook}/evil", secret="whsec_" + "s" * 32)
        sandbox.emit("site.armed")
        wait_for(lambda: rx.at("/evil"))
        table = CliRunner().invoke(main, ["requests", "--url", url]).output
        deliveries = CliRunner().invoke(main, ["deliveries", "--url", url]).output
        [attempt] = sandbox.deliveries()
        answered = attempt["response"]
        # a scenario whose failure quotes a request path with them
        scenario = parse(
            "name: evil\nsteps:\n"
            f'  - call: {{method: GET, path: "{sites}/{EVIL_URL}", expect_status: 404}}\n'
            f"  - expect_request: {{method: GET, path: {sites}/nowhere, within: 0.1}}\n",
            "evil.yaml",
        )
        report = Runner(sandbox).run(scenario)
    assert not report.passed and "\\x1b[2J" in report.results[-1].detail  # quoted, escaped
    junit([report], tmp_path / "report.xml")
    report_xml = (tmp_path / "report.xml").read_text()
    ET.fromstring(report_xml)  # noqa: S314  # well-formed: XML 1.0 refuses raw controls
    logged = "\n".join(
        caplog.handler.format(r) for r in caplog.records if r.name.startswith(SERVER_SIDE)
    )
    for name, text in {
        "logs": logged,
        "requests table": table,
        "deliveries": deliveries,
        "summary": summary(report),
        "junit": report_xml,
    }.items():
        assert not _raw_unsafe(text), (name, _raw_unsafe(text))
        assert not _forged(text), (name, _forged(text))
    assert "\\x1b[2J" in table  # shown escaped, not dropped
    # the receiver's non-UTF-8 header byte is kept (as latin-1) and the export still works
    assert {"x-evil": "\x85"}.items() <= answered["headers"].items()
    assert answered["body"] == EVIL


def test_logged_exceptions_keep_their_frames_and_escape_their_messages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = safe_logger("sandbox.test")
    try:
        try:
            raise KeyError(EVIL)
        except KeyError as inner:
            raise ValueError(f"bad path /x{EVIL}") from inner
    except ValueError:
        log.exception("failed on %s", EVIL)
    text = caplog.text
    assert not _raw_unsafe(text) and not _forged(text)
    assert text.count("Traceback (most recent call last):\n") == 2  # readable, line by line
    assert "direct cause of the following exception" in text
    assert "failed on \\x1b[2J\\x00\\r\\nFAKE" in text


def test_printable_escapes_only_what_cannot_be_printed() -> None:
    assert printable("plain text, ünïcode ✓") == "plain text, ünïcode ✓"
    assert printable(EVIL) == "\\x1b[2J\\x00\\r\\nFAKE\\x07\\x85\\u2028"
    assert printable("a\nb\x1b", lines=True) == "a\nb\\x1b"
    assert json.loads(json.dumps(printable(EVIL))) == printable(EVIL)
