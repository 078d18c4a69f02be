"""What the tests share: the suite's ``Settings`` (every response checked against the OpenAPI
document), the test credentials, the ``Api`` helper and a threaded server for receivers.
(Not in conftest.py, whose module name the example's own conftest also uses.)"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from one_hop import TestClient
from starlette.types import ASGIApp

import sandbox
from sandbox.auth.keys import new_api_key
from sandbox.server import ThreadedServer
from sandbox.settings import ApiKeySpec, ClientSpec


@dataclass(frozen=True)
class Settings(sandbox.Settings):
    """The suite's settings: the sandbox checks every response it sends against its OpenAPI
    document, so a response off the document fails whichever test received it, over any
    client (``CHEKT_SANDBOX_CHECK_RESPONSES`` does the same for sandboxes the suite starts
    from the environment: the plugin's and ``serve``'s). The TestClient's ``Host: testserver``
    is a name like a compose service's: allowed through the setting, as a user would."""

    check_responses: bool = True
    allowed_hosts: tuple[str, ...] = ("testserver",)


ISSUER = "http://testserver/"  # TestClient's origin
REDIRECT = "http://localhost:3000/callback"  # the seeded partner's
READ_ONLY_KEY = new_api_key()
OTHER_DEALER_KEY = new_api_key()

TEST_SETTINGS = Settings(
    clients=(
        ClientSpec(
            client_id="narrow-partner",
            client_secret="narrow-secret-0123456789",
            kind="platform_partner",
            dealer_ids=(1001,),
            scopes=("read:dealer", "read:sites"),
        ),
        ClientSpec(
            client_id="dealer-app-1002",
            client_secret="dealer-app-secret-0123456789",
            kind="dealer_app",
            dealer_ids=(1002,),
        ),
    ),
    api_keys=(
        ApiKeySpec(key=READ_ONLY_KEY, dealer_id=1001, scopes=("read:sites",), name="read-only"),
        ApiKeySpec(key=OTHER_DEALER_KEY, dealer_id=1003, name="dealer-1003"),
    ),
)


class Api:
    """A TestClient plus the sandbox's credentials, with short helpers for auth headers."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.creds: dict[str, Any] = client.get("/_sandbox/credentials").json()
        seeded = next(k for k in self.creds["api_keys"] if k["origin"] == "seeded")
        self.key: str = seeded["key"]
        self.partner = next(
            c for c in self.creds["clients"] if c["client_id"] == "sandbox-platform-partner"
        )

    def token(self, client_id: str | None = None, **form: str) -> str:
        client = next(
            c
            for c in self.creds["clients"]
            if c["client_id"] == (client_id or self.partner["client_id"])
        )
        response = self.client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
                **form,
            },
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def dealer_admin(self, dealer_id: int = 1001) -> dict[str, Any]:
        users = self.creds["users"]
        return next(u for u in users if u["dealer_id"] == dealer_id and u["role"] == "dealer_admin")

    def code(self, client_id: str, redirect_uri: str = REDIRECT, **params: str) -> str:
        """An authorization code, signed in without the page (``login_hint``: dealer 1001's
        admin unless the params say otherwise)."""
        response = self.client.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "login_hint": self.dealer_admin()["email"],
                **params,
            },
            follow_redirects=False,
        )
        assert response.status_code == 302, response.text
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert "error" not in query, query
        return query["code"][0]

    @staticmethod
    def bearer(credential: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential}"}


def live_server(app: ASGIApp) -> ThreadedServer:
    """Serve ``app`` on a free loopback port in a thread: ``with live_server(app) as url``."""
    return ThreadedServer(app)


@functools.cache
def rsa_key(name: str = "partner") -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key, made on first use and then shared by every module of this process
    that asks for the same ``name`` (each takes a tenth of a second to make, and every xdist
    worker imports every module); distinct names, distinct keys."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    """The PEM of ``key``'s public half, as a client registers it."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def signed_assertion(
    client_id: str,
    key: Any,
    alg: str = "RS256",
    headers: dict[str, Any] | None = None,
    **overrides: Any,
) -> str:
    """The assertion CHeKT's sample builds: iss = sub = client id, aud = issuer, 300 s, a
    fresh jti. ``overrides`` change claims, and a None removes a claim (or a header)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        **overrides,
    }
    header = {"typ": "JWT", **(headers or {})}
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None},
        key,
        algorithm=alg,
        headers={k: v for k, v in header.items() if v is not None},
    )
