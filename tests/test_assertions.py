"""Tier 3: signed-JWT assertions, exactly as CHeKT's sample sends them, and every rule of
RFC 7523 / RFC 8725 that the sandbox enforces, each as its own negative case."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import ISSUER, Api, Settings, live_server, public_pem, rsa_key, signed_assertion
from one_hop import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox import create_app
from sandbox.client import public_cas
from sandbox.settings import ClientSpec

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PARTNER_CLAIM = "https://api.chektdev.com/claims/partner"
RSA_KEY = rsa_key()
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = rsa_key("other")


@pytest.fixture
def settings() -> Settings:
    return Settings(
        clients=(
            ClientSpec(
                client_id="m2m-partner",
                kind="platform_partner",
                dealer_ids=(1001,),
                public_key=public_pem(RSA_KEY),
                key_id="partner-key-1",
            ),
            ClientSpec(
                client_id="ec-partner",
                kind="platform_partner",
                dealer_ids=(1002,),
                public_key=public_pem(EC_KEY),
            ),
        )
    )


def assertion(
    client_id: str = "m2m-partner",
    key: Any = RSA_KEY,
    alg: str = "RS256",
    headers: dict[str, Any] | None = None,
    **overrides: Any,
) -> str:
    """An assertion of the m2m partner's registered key unless told otherwise."""
    return signed_assertion(
        client_id, key, alg, {"kid": "partner-key-1", **(headers or {})}, **overrides
    )


def sample_exchange(client: TestClient, signed: str, **extra: str) -> httpx.Response:
    """Byte for byte the form CHeKT's sample posts: no client_id."""
    return client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
            "audience": "https://adc-m2m.chektdev.com/",
            PARTNER_CLAIM: '{"dealer_id":"1234567890","site_id":"1234567890"}',
            **extra,
        },
    )


def test_the_samples_exchange_gets_a_token_with_the_partner_claim(api: Api) -> None:
    response = sample_exchange(api.client, assertion())
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "m2m-partner@clients" and claims["azp"] == "m2m-partner"
    assert claims[PARTNER_CLAIM] == {"dealer_id": "1234567890", "site_id": "1234567890"}
    sites = api.client.get("/partner/v1/dealers/1001/sites", headers=api.bearer(token))
    assert sites.status_code == 200


def test_plain_partner_claim_is_copied_as_is(api: Api) -> None:
    response = sample_exchange(api.client, assertion(), **{PARTNER_CLAIM: "dealer-42"})
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims[PARTNER_CLAIM] == "dealer-42"


def test_ec_keys_sign_es256(api: Api) -> None:
    signed = assertion("ec-partner", EC_KEY, "ES256", headers={"kid": None})
    assert sample_exchange(api.client, signed).status_code == 200


def test_rfc7523_jwt_bearer_grant(api: Api) -> None:
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}
    ok = api.client.post("/oauth/token", data={**form, "assertion": assertion()})
    assert ok.status_code == 200
    bad = api.client.post("/oauth/token", data={**form, "assertion": assertion(key=OTHER_KEY)})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"


def _forged_hs256() -> str:
    # the RSA public key used as an HMAC secret: the classic algorithm-confusion forgery
    now = int(time.time())
    claims = {
        "iss": "m2m-partner",
        "sub": "m2m-partner",
        "aud": ISSUER,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    header = json.dumps({"alg": "HS256", "typ": "JWT", "kid": "partner-key-1"}).encode()
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    signing_input = f"{b64(header)}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(public_pem(RSA_KEY).encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _unsigned() -> str:
    now = int(time.time())
    return jwt.encode(
        {
            "iss": "m2m-partner",
            "sub": "m2m-partner",
            "aud": ISSUER,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        },
        None,
        algorithm="none",
        headers={"kid": "partner-key-1"},
    )


NEGATIVE: dict[str, Callable[[], str]] = {
    "signed by another key": lambda: assertion(key=OTHER_KEY),
    "alg none": _unsigned,
    "HS256 with the public key as secret": _forged_hs256,
    "iss differs from sub": lambda: assertion(sub="someone-else"),
    "unknown client": lambda: assertion("ghost", iss="ghost", sub="ghost"),
    "aud without trailing slash": lambda: assertion(aud=ISSUER.rstrip("/")),
    "aud of another server": lambda: assertion(aud="https://api.chektdev.com/"),
    "no exp": lambda: assertion(exp=None),
    "lifetime over 300 s": lambda: assertion(exp=int(time.time()) + 301),
    "expired beyond skew": lambda: assertion(
        iat=int(time.time()) - 400, exp=int(time.time()) - 100
    ),
    "iat in the future": lambda: assertion(iat=int(time.time()) + 120, exp=int(time.time()) + 200),
    "nbf in the future": lambda: assertion(nbf=int(time.time()) + 120),
    "no jti": lambda: assertion(jti=None),
    "unknown kid": lambda: assertion(headers={"kid": "not-registered"}),
    "wrong algorithm for the key": lambda: assertion(alg="PS256"),
    "embedded attacker jwk": lambda: assertion(
        key=OTHER_KEY,
        headers={"jwk": json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(OTHER_KEY.public_key()))},
    ),
}


@pytest.mark.parametrize("case", list(NEGATIVE))
def test_each_rule_is_enforced(api: Api, case: str) -> None:
    response = sample_exchange(api.client, NEGATIVE[case]())
    assert response.status_code == 401, (case, response.text)
    assert response.json()["error"] == "invalid_client"
    assert response.json()["error_description"]


def test_within_skew_is_accepted(api: Api) -> None:
    now = int(time.time())
    assert sample_exchange(api.client, assertion(iat=now + 30, exp=now + 300)).status_code == 200
    assert sample_exchange(api.client, assertion(iat=now - 320, exp=now - 20)).status_code == 200


def test_jti_is_single_use(api: Api) -> None:
    signed = assertion()
    assert sample_exchange(api.client, signed).status_code == 200
    replay = sample_exchange(api.client, signed)
    assert replay.status_code == 401 and "already used" in replay.json()["error_description"]


def test_secret_together_with_an_assertion_is_invalid_request(api: Api) -> None:
    response = sample_exchange(api.client, assertion(), client_secret="anything")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    mismatched = sample_exchange(api.client, assertion(), client_id="ec-partner")
    assert mismatched.status_code == 401


def test_wrong_assertion_type_is_invalid_request(api: Api) -> None:
    response = sample_exchange(api.client, assertion(), client_assertion_type="jwt")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_jku_and_x5u_headers_are_never_fetched(api: Api) -> None:
    fetched: list[str] = []

    async def jwks(request: Request) -> JSONResponse:
        fetched.append(request.url.path)
        key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(OTHER_KEY.public_key()))
        return JSONResponse({"keys": [{**key, "kid": "partner-key-1"}]})

    trap = Starlette(routes=[Route("/jwks.json", jwks), Route("/cert.pem", jwks)])
    with live_server(trap) as url:
        signed = assertion(
            key=OTHER_KEY, headers={"jku": f"{url}/jwks.json", "x5u": f"{url}/cert.pem"}
        )
        response = sample_exchange(api.client, signed)
    assert response.status_code == 401
    assert fetched == []


def test_fifty_concurrent_uses_of_one_jti_succeed_exactly_once(settings: Settings) -> None:
    signed = assertion(aud=None)
    with live_server(create_app(settings)) as url:
        signed = assertion(aud=url + "/")
        statuses: list[int] = []
        barrier = threading.Barrier(50)

        def use() -> None:
            barrier.wait()
            with httpx.Client(verify=public_cas()) as client:  # CAs loaded once, not 50 times
                response = client.post(
                    f"{url}/oauth/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_assertion_type": ASSERTION_TYPE,
                        "client_assertion": signed,
                    },
                )
            statuses.append(response.status_code)

        threads = [threading.Thread(target=use) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(statuses) == [200] + [401] * 49


def test_used_jtis_survive_a_restart(tmp_path: Path, settings: Settings) -> None:
    durable = Settings(db=str(tmp_path / "sandbox.db"), clients=settings.clients)
    signed = assertion()
    with TestClient(create_app(durable)) as client:
        assert sample_exchange(client, signed).status_code == 200
    with TestClient(create_app(durable)) as client:
        assert sample_exchange(client, signed).status_code == 401


def test_jwks_url_registration_with_refetch_limit() -> None:
    fetches: list[float] = []
    served = {
        "keys": [
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key())), "kid": "k1"}
        ]
    }

    async def jwks(request: Request) -> JSONResponse:
        fetches.append(time.monotonic())
        return JSONResponse(served)

    with live_server(Starlette(routes=[Route("/jwks.json", jwks)])) as url:
        settings = Settings(
            clients=(
                ClientSpec(
                    client_id="jwks-partner", dealer_ids=(1001,), jwks_url=f"{url}/jwks.json"
                ),
            )
        )
        with TestClient(create_app(settings)) as client:
            ok = sample_exchange(client, assertion("jwks-partner", headers={"kid": "k1"}))
            assert ok.status_code == 200, ok.text
            again = sample_exchange(client, assertion("jwks-partner", headers={"kid": "k1"}))
            assert again.status_code == 200
            assert len(fetches) == 1  # cached
            for _ in range(3):  # unknown kids: at most one refetch per 30 s
                unknown = sample_exchange(client, assertion("jwks-partner", headers={"kid": "k2"}))
                assert unknown.status_code == 401
            assert len(fetches) == 2
            listed = client.get("/_sandbox/credentials").json()["assertion_keys"]
    assert any(k["client_id"] == "jwks-partner" and k["jwks_url"] for k in listed)


def test_jwks_url_at_a_refused_destination_is_not_fetched() -> None:
    settings = Settings(
        clients=(
            ClientSpec(
                client_id="meta", dealer_ids=(1001,), jwks_url="http://169.254.169.254/jwks.json"
            ),
        )
    )
    with TestClient(create_app(settings)) as client:
        response = sample_exchange(client, assertion("meta"))
    assert response.status_code == 401
    assert (
        "link-local" in response.json()["error_description"]
        or "metadata" in response.json()["error_description"]
    )


def test_register_a_key_over_the_control_api(api: Api) -> None:
    created = api.client.post(
        "/_sandbox/clients",
        json={
            "client_id": "late-partner",
            "kind": "platform_partner",
            "dealer_ids": [1002],
            "public_key": public_pem(OTHER_KEY),
            "key_id": "late-1",
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["client_secret"] is None
    signed = assertion("late-partner", OTHER_KEY, headers={"kid": "late-1"})
    response = sample_exchange(api.client, signed)
    assert response.status_code == 200
    token = api.bearer(response.json()["access_token"])
    assert api.client.get("/partner/v1/dealers/1002/sites", headers=token).status_code == 200
    listed = api.client.get("/_sandbox/credentials").json()
    assert {
        "client_id": "late-partner",
        "kid": "late-1",
        "alg": "RS256",
        "source": "control",
        "jwks_url": None,
    } in listed["assertion_keys"]
    duplicate = api.client.post(
        "/_sandbox/clients", json={"client_id": "late-partner", "public_key": public_pem(OTHER_KEY)}
    )
    assert duplicate.status_code == 409
    bad = api.client.post("/_sandbox/clients", json={"client_id": "x", "public_key": "nope"})
    assert bad.status_code == 422
