"""The sandbox connects only to registered webhook and JWKS URLs, and never to a refused
destination: every outbound connect() made during a run is recorded and checked."""

from __future__ import annotations

import json
import socket
from typing import Any

import jwt
import pytest
from helpers import Settings, live_server, rsa_key, signed_assertion
from one_hop import TestClient
from receiver import Receiver, wait_for
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox import create_app
from sandbox.settings import ClientSpec

KEY = rsa_key()
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address a socket in this process connects to, from now on."""
    seen: list[Any] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        # a partner host that resolves to a private address (DNS, simulated)
        if host == "private.partner.test":
            return real_getaddrinfo("10.1.2.3", *args, **kwargs)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return seen


def test_only_registered_destinations_are_contacted(connections: list[Any]) -> None:
    rx = Receiver()
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key())), "kid": "o-1"}

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse({"keys": [jwk]})

    with (
        live_server(rx.app) as hook,
        live_server(Starlette(routes=[Route("/jwks.json", jwks)])) as keys_url,
    ):
        settings = Settings(
            clients=(
                ClientSpec(
                    client_id="o-partner", dealer_ids=(1001,), jwks_url=f"{keys_url}/jwks.json"
                ),
            )
        )
        with TestClient(create_app(settings)) as client:
            connections.clear()  # from here on, only what the sandbox itself does
            assertion = signed_assertion("o-partner", KEY, headers={"kid": "o-1"})
            token = client.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_assertion": assertion,
                    "client_assertion_type": ASSERTION_TYPE,
                },
            )
            assert token.status_code == 200
            client.post("/_sandbox/subscriptions", json={"url": f"{hook}/in"})
            literal = client.post(
                "/_sandbox/subscriptions", json={"url": "http://10.1.2.3:8080/private"}
            )
            assert literal.status_code == 422  # a literal private address: refused at once
            named = client.post(
                "/_sandbox/subscriptions", json={"url": "http://private.partner.test:8080/x"}
            )
            assert named.status_code == 201  # a name: judged on its address at send time
            client.post("/_sandbox/events", json={"type": "site.armed"})
            wait_for(lambda: rx.at("/in"))
            attempts = wait_for(
                lambda: (
                    len(client.get("/_sandbox/deliveries").json()) == 2
                    and client.get("/_sandbox/deliveries").json()
                )
            )
            blocked = next(a for a in attempts if "private.partner.test" in a["url"])
            assert blocked["outcome"] == "blocked_destination"
    allowed = {
        ("127.0.0.1", int(hook.rsplit(":", 1)[1])),
        ("127.0.0.1", int(keys_url.rsplit(":", 1)[1])),
    }
    contacted = {(a[0], a[1]) for a in connections if isinstance(a, tuple)}
    assert contacted, "the sandbox made no outbound connection at all"
    assert contacted <= allowed, f"unexpected destinations: {contacted - allowed}"
    assert not any(str(a[0]).startswith("10.") for a in connections if isinstance(a, tuple))
