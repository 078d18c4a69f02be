"""Sentinel secrets: drive every tier and webhook signing with recognisable secret values,
then find none of them in the logs, in error bodies, or in the journal's default exports."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import xml.etree.ElementTree as ET  # our own report file, not untrusted input
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from helpers import Settings, live_server, public_pem, rsa_key, signed_assertion
from one_hop import TestClient
from receiver import Answer, Receiver, wait_for

from sandbox import Sandbox, create_app
from sandbox.auth.keys import new_api_key
from sandbox.scenario import Runner, junit, parse, summary
from sandbox.server import ThreadedServer
from sandbox.settings import ApiKeySpec, ClientSpec

CLIENT_SECRET = "SENTINEL-client-secret-4b1d9e"
WEBHOOK_SECRET = "whsec_SENTINEL_webhook_secret_77c2"
WRONG_SECRET = "SENTINEL-wrong-secret-0a9f"
KEY = rsa_key()
API_KEY = new_api_key()
WRONG_API_KEY = API_KEY[:-1] + ("y" if API_KEY.endswith("x") else "x")  # never the same key


def test_no_sentinel_reaches_logs_error_bodies_or_exports(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings(
        clients=(
            ClientSpec(
                client_id="s-partner",
                client_secret=CLIENT_SECRET,
                dealer_ids=(1001,),
                redirect_uris=("http://localhost:3000/callback",),
            ),
            ClientSpec(
                client_id="s-assertion",
                dealer_ids=(1001,),
                key_id="s-1",
                public_key=public_pem(KEY),
            ),
        ),
        api_keys=(ApiKeySpec(key=API_KEY, dealer_id=1001),),
    )
    rx = Receiver()
    sentinels = {CLIENT_SECRET, WEBHOOK_SECRET, WRONG_SECRET, API_KEY}
    error_bodies: list[str] = []

    def seen(response: Any) -> Any:
        if response.status_code >= 400:
            error_bodies.append(response.text + str(dict(response.headers)))
        return response

    with live_server(rx.app) as hook, TestClient(create_app(settings)) as client:
        form = {"grant_type": "client_credentials", "client_id": "s-partner"}
        token = seen(client.post("/oauth/token", data={**form, "client_secret": CLIENT_SECRET}))
        access = token.json()["access_token"]
        basic = base64.b64encode(f"s-partner:{CLIENT_SECRET}".encode()).decode()
        seen(
            client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
            )
        )
        seen(client.post("/oauth/token", data={**form, "client_secret": WRONG_SECRET}))
        seen(
            client.get(
                "/partner/v1/dealers/1001/sites", headers={"Authorization": f"Bearer {API_KEY}"}
            )
        )
        seen(
            client.get(
                "/partner/v1/dealers/1001/sites",
                headers={"Authorization": f"Bearer {WRONG_API_KEY}"},
            )
        )
        seen(
            client.get(
                "/partner/v1/dealers/1003/sites", headers={"Authorization": f"Bearer {access}"}
            )
        )
        assertion = signed_assertion("s-assertion", KEY, headers={"kid": "s-1"})
        assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        exchanged = seen(
            client.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": assertion_type,
                    "client_assertion": assertion,
                },
            )
        )
        replayed = seen(
            client.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": assertion_type,
                    "client_assertion": assertion,
                },
            )
        )
        assert exchanged.status_code == 200 and replayed.status_code == 401
        admin = client.get("/_sandbox/credentials").json()["users"][0]["email"]
        redirect = client.get(
            "/authorize",
            follow_redirects=False,
            params={
                "response_type": "code",
                "client_id": "s-partner",
                "login_hint": admin,
                "redirect_uri": "http://localhost:3000/callback",
                "scope": "offline_access",
            },
        )
        code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
        tokens = seen(
            client.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "client_id": "s-partner",
                    "client_secret": CLIENT_SECRET,
                    "redirect_uri": "http://localhost:3000/callback",
                },
            )
        )
        refresh = tokens.json()["refresh_token"]
        seen(
            client.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "client_id": "s-partner",
                    "client_secret": CLIENT_SECRET,
                    "redirect_uri": "http://localhost:3000/callback",
                },
            )
        )
        sentinels |= {access, assertion, code, refresh, exchanged.json()["access_token"]}
        client.post("/_sandbox/subscriptions", json={"url": f"{hook}/in", "secret": WEBHOOK_SECRET})
        [event_id] = client.post("/_sandbox/events", json={"type": "site.armed"}).json()[
            "event_ids"
        ]
        wait_for(lambda: rx.at("/in"))
        signature = rx.at("/in")[0].headers["x-chekt-signature"]
        sentinels.add(signature)
        journal = client.get("/_sandbox/requests").text
        revealed = client.get("/_sandbox/requests", params={"reveal": "true"}).text
        deliveries = client.get("/_sandbox/deliveries", params={"event_id": event_id}).text
    assert len(error_bodies) >= 5
    for recorded in (CLIENT_SECRET, API_KEY, code, refresh):
        assert recorded in revealed  # test credentials: what reveal=true is for
    # the partner's own signed assertion and a wrong secret are no test credentials
    assert assertion not in revealed and WRONG_SECRET not in revealed
    for sentinel in sentinels:
        assert sentinel not in caplog.text, "a secret reached the logs"
        assert not any(sentinel in body for body in error_bodies), "a secret in an error"
        assert sentinel not in journal, "a secret in the journal export"
        assert sentinel not in deliveries, "a secret in the deliveries export"


# a credential the sandbox never issued (a webhook-secret shape, so it is recognisable in a
# path or a text body too) and a production key
SENTINEL = "whsec_SENTINEL0foreign0credential0q7"
LIVE = "chekt_live_SENTINEL0live0key0value0000z9"


def _encoded_twice(value: str) -> str:
    return quote("".join(f"%{byte:02X}" for byte in value.encode()), safe="")


def _stored_bytes(sandbox: Sandbox) -> bytes:
    """Everything the journal holds: the spill files, their unwritten tail, and the fields
    kept in memory."""
    assert sandbox.app is not None
    recorder = sandbox.app.state.services.recorder
    with recorder._lock:
        spill = recorder._spill
        data = [os.pread(fd, written, 0) for fd, written in spill.files.values()]
        data.append(bytes(spill.buffer))
        for entry in recorder._entries:
            data += [entry.path.encode(), entry.query, str(entry.trace_id).encode()]
    return b"".join(data)


def _send_everywhere(url: str, api_key: str, secret: str) -> None:
    """``secret`` in ten places a partner could put a credential."""
    sites = "/partner/v1/dealers/1001/sites"
    key = {"Authorization": f"Bearer {api_key}"}
    basic = base64.b64encode(f"sandbox-platform-partner:{secret}".encode()).decode()
    with httpx.Client(base_url=url) as http:
        http.get(sites, headers={"Authorization": f"Bearer {secret}"})
        http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
        http.get(sites, headers={**key, "Proxy-Authorization": f"Bearer {secret}"})
        http.get(sites, headers={**key, "X-Api-Key": secret})
        http.get(f"{sites}/{secret}", headers=key)
        http.get(sites, params={"api_key": secret, "filter": f"name eq {secret}"}, headers=key)
        http.get(f"{sites}?filter={_encoded_twice(secret)}", headers=key)
        http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": "x", "client_secret": secret},
        )
        http.post(sites, json={"name": f"site {secret}", "password": secret}, headers=key)
        http.post(
            sites,
            content=f"my token: {secret} and {secret}".encode(),
            headers={**key, "Content-Type": "text/plain"},
        )


def test_a_credential_in_any_place_is_hidden_before_it_is_stored(tmp_path: Path) -> None:
    rx = Receiver()
    rx.answers["/in"] = Answer(body=json.dumps({"echo": SENTINEL, "live": LIVE}).encode())
    db = tmp_path / "world.db"
    with Sandbox(Settings(db=str(db))) as sandbox, ThreadedServer(rx.app) as hook:
        for secret in (SENTINEL, LIVE):
            _send_everywhere(sandbox.url, sandbox.api_key, secret)
        sandbox.subscribe(f"{hook}/in", secret="whsec_" + "w" * 32)
        sandbox.emit("site.armed")
        wait_for(lambda: rx.at("/in"))
        wait_for(lambda: sandbox.deliveries())
        with httpx.Client(base_url=sandbox.url) as http:
            journal = http.get("/_sandbox/requests").text
            revealed = http.get("/_sandbox/requests", params={"reveal": "true"}).text
            deliveries = http.get("/_sandbox/deliveries").text
            revealed_deliveries = http.get("/_sandbox/deliveries", params={"reveal": "true"}).text
        scenario = parse(
            "name: leaky\nsteps:\n"
            f"  - call: {{method: GET, path: /partner/v1/sites/{SENTINEL}, expect_status: 200}}\n",
            "leaky.yaml",
        )
        report = Runner(sandbox, callback=f"{hook}/in", secret=SENTINEL).run(scenario)
        stored = _stored_bytes(sandbox)
        entries = sandbox.requests()
    junit([report], tmp_path / "report.xml")
    report_xml = (tmp_path / "report.xml").read_text()
    ET.fromstring(report_xml)  # noqa: S314
    assert not report.passed and "/partner/v1/sites/" in report.results[0].detail
    assert len(entries) >= 20 and "[redacted]" in journal
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    basics = {
        base64.b64encode(f"sandbox-platform-partner:{s}".encode()).decode()
        for s in (SENTINEL, LIVE)
    }
    for name, text in {
        "stored": stored.decode("latin-1"),
        "journal": journal,
        "revealed": revealed,
        "deliveries": deliveries,
        "revealed deliveries": revealed_deliveries,
        "summary": summary(report),
        "junit": report_xml,
    }.items():
        for secret in (SENTINEL, LIVE, quote(SENTINEL), _encoded_twice(SENTINEL), *basics):
            assert secret not in text, (name, secret)
        assert LIVE[:14] not in text, name  # a live key: never more than its prefix


def test_reveal_shows_test_credentials_and_nothing_else(api: Any) -> None:
    api.client.get("/partner/v1/dealers/1001/sites", headers=api.bearer(api.key))
    api.client.get("/partner/v1/dealers/1001/sites", headers=api.bearer(LIVE))
    [good, live] = api.client.get("/_sandbox/requests", params={"reveal": "true"}).json()
    assert good["headers"]["authorization"] == f"Bearer {api.key}"
    assert live["headers"]["authorization"] == "Bearer [redacted]"
    [hidden, _] = api.client.get("/_sandbox/requests").json()
    assert hidden["headers"]["authorization"] == "Bearer [redacted]"


def test_the_store_file_is_owner_only_also_when_serve_creates_it(tmp_path: Path) -> None:
    from sandbox.store.db import Store

    path = tmp_path / "deep" / "sandbox.db"
    Store(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loose = tmp_path / "loose.db"
    loose.touch(mode=0o644)
    Store(loose).close()
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600
