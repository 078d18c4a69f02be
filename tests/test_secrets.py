"""Sentinel secrets: drive every tier and webhook signing with recognisable secret values,
then find none of them in the logs, in error bodies, or in the journal's default exports."""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers import Settings, live_server, public_pem, signed_assertion
from receiver import Receiver, wait_for
from starlette.testclient import TestClient

from sandbox import create_app
from sandbox.auth.keys import new_api_key
from sandbox.settings import ApiKeySpec, ClientSpec

CLIENT_SECRET = "SENTINEL-client-secret-4b1d9e"
WEBHOOK_SECRET = "whsec_SENTINEL_webhook_secret_77c2"
WRONG_SECRET = "SENTINEL-wrong-secret-0a9f"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
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
    for recorded in (CLIENT_SECRET, API_KEY, assertion, code, refresh):
        assert recorded in revealed  # the sentinels really went through the sandbox
    for sentinel in sentinels:
        assert sentinel not in caplog.text, "a secret reached the logs"
        assert not any(sentinel in body for body in error_bodies), "a secret in an error"
        assert sentinel not in journal, "a secret in the journal export"
        assert sentinel not in deliveries, "a secret in the deliveries export"
