"""Tier 1 (API keys) and tier 2 (OAuth client credentials): what is accepted, what is
refused, and with which RFC 6749 / 6750 error."""

from __future__ import annotations

import base64

import jwt
import pytest
from helpers import OTHER_DEALER_KEY, READ_ONLY_KEY, Api, Settings
from one_hop import TestClient

from sandbox import VirtualClock, create_app
from sandbox.auth.keys import is_well_formed, new_api_key

SITES = "/partner/v1/dealers/1001/sites"


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def test_api_key_format_has_prefix_randomness_and_checksum() -> None:
    keys = {new_api_key() for _ in range(200)}
    assert len(keys) == 200
    key = keys.pop()
    assert key.startswith("chekt_test_") and len(key) >= 32
    assert is_well_formed(key)
    flipped = key[:-7] + ("A" if key[-7] != "A" else "B") + key[-6:]
    assert not is_well_formed(flipped)


def test_api_key_reads_its_dealer(api: Api) -> None:
    response = api.client.get(SITES, headers=api.bearer(api.key))
    assert response.status_code == 200
    assert {site["dealer_id"] for site in response.json()} == {1001}


def test_no_credentials_is_a_bare_challenge(api: Api) -> None:
    response = api.client.get(SITES)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="chekt"'
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert error["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("credential", "code"),
    [
        ("chekt_test_" + "A" * 32, "invalid_api_key"),  # bad checksum
        ("chekt_test_short", "invalid_api_key"),
        ("not-a-jwt", "invalid_token"),
        ("a.b.c", "invalid_token"),
    ],
)
def test_bad_credentials_are_invalid_token(api: Api, credential: str, code: str) -> None:
    response = api.client.get(SITES, headers=api.bearer(credential))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["error"]["code"] == code


def test_well_formed_unknown_key_is_refused(api: Api) -> None:
    response = api.client.get(SITES, headers=api.bearer(new_api_key()))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_live_key_is_refused_with_its_own_code_and_never_echoed(api: Api) -> None:
    live = "chekt_live_" + "x" * 40
    response = api.client.get(SITES, headers=api.bearer(live))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "live_credentials_not_accepted"
    assert live not in response.text
    assert live not in response.headers["www-authenticate"]


def test_live_client_secret_is_refused_at_the_token_endpoint(api: Api) -> None:
    response = api.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": api.partner["client_id"],
            "client_secret": "chekt_live_" + "y" * 40,
        },
    )
    assert response.status_code == 401
    assert response.json()["error"] == "live_credentials_not_accepted"
    assert "chekt_live_" + "y" * 40 not in response.text


def test_missing_scope_is_403_with_insufficient_scope(api: Api) -> None:
    body = {"external_site_id": "x-1", "name": "X", "timezone": "UTC"}
    response = api.client.post(SITES, json=body, headers=api.bearer(READ_ONLY_KEY))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="create:sites"' in challenge


def test_api_key_of_another_dealer_sees_404(api: Api) -> None:
    response = api.client.get(SITES, headers=api.bearer(OTHER_DEALER_KEY))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    own = api.client.get("/partner/v1/dealers/1003/sites", headers=api.bearer(OTHER_DEALER_KEY))
    assert own.status_code == 200


def test_client_credentials_token_has_the_contract_claims(api: Api) -> None:
    response = api.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": api.partner["client_id"],
            "client_secret": api.partner["client_secret"],
        },
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert set(body["scope"].split()) == set(api.partner["scopes"])
    jwks = api.client.get("/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256"
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert key["use"] == "sig" and key["kty"] == "RSA"
    claims = jwt.decode(
        body["access_token"],
        jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience="https://adc-m2m.chektdev.com/",
        issuer="http://testserver/",
    )
    assert claims["sub"] == f"{api.partner['client_id']}@clients"
    assert claims["azp"] == api.partner["client_id"]
    assert claims["gty"] == "client-credentials"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["jti"]


def test_http_basic_client_authentication(api: Api) -> None:
    response = api.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=_basic(api.partner["client_id"], api.partner["client_secret"]),
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    assert api.client.get("/partner/v1/dealers/1002", headers=api.bearer(token)).status_code == 200


def test_wrong_secret_over_basic_gets_a_basic_challenge(api: Api) -> None:
    response = api.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=_basic(api.partner["client_id"], "wrong"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({}, 400, "invalid_request"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
            401,
            "invalid_client",
        ),
    ],
)
def test_token_endpoint_errors(api: Api, form: dict[str, str], status: int, error: str) -> None:
    response = api.client.post("/oauth/token", data=form)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"


def test_both_basic_and_body_credentials_is_invalid_request(api: Api) -> None:
    response = api.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": api.partner["client_id"],
            "client_secret": api.partner["client_secret"],
        },
        headers=_basic(api.partner["client_id"], api.partner["client_secret"]),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_scope_narrowing_and_invalid_scope(api: Api) -> None:
    token = api.token(scope="read:sites")
    assert api.client.get(SITES, headers=api.bearer(token)).status_code == 200
    denied = api.client.get("/partner/v1/dealers/1001", headers=api.bearer(token))
    assert denied.status_code == 403
    assert 'scope="read:dealer"' in denied.headers["www-authenticate"]
    refused = api.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "narrow-partner",
            "client_secret": "narrow-secret-0123456789",
            "scope": "read:sites delete:sites",
        },
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"


def test_unknown_audience_is_refused(api: Api) -> None:
    response = api.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": api.partner["client_id"],
            "client_secret": api.partner["client_secret"],
            "audience": "https://elsewhere.example/",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_auth0_error_style_says_access_denied() -> None:
    with TestClient(create_app(Settings(error_style="auth0"))) as client:
        response = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
        )
    assert response.status_code == 401
    assert response.json()["error"] == "access_denied"


def test_token_expires_on_the_sandbox_clock() -> None:
    clock = VirtualClock(start=1_800_000_000)
    with TestClient(create_app(Settings(), clock=clock)) as client:
        api = Api(client)
        token = api.token()
        assert client.get(SITES, headers=api.bearer(token)).status_code == 200
        clock.advance(3599)
        assert client.get(SITES, headers=api.bearer(token)).status_code == 200
        clock.advance(1)
        expired = client.get(SITES, headers=api.bearer(token))
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "invalid_token"
    assert "expired" in expired.json()["error"]["message"]


def test_token_from_another_issuer_origin_is_refused(api: Api) -> None:
    token = api.token()
    response = api.client.get(
        SITES,
        headers={**api.bearer(token), "Host": "localhost:8765"},  # a name it answers to
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_tampered_and_foreign_tokens_are_refused(api: Api) -> None:
    token = api.token()
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"
    assert api.client.get(SITES, headers=api.bearer(tampered)).status_code == 401
    forged = jwt.encode(
        {
            "iss": "http://testserver/",
            "sub": "x@clients",
            "aud": "https://adc-m2m.chektdev.com/",
            "azp": api.partner["client_id"],
            "scope": "read:sites",
            "iat": 1,
            "exp": 4_000_000_000,
        },
        "a-shared-secret-that-is-long-enough",
        algorithm="HS256",
        headers={"kid": jwt.get_unverified_header(token)["kid"]},
    )
    response = api.client.get(SITES, headers=api.bearer(forged))
    assert response.status_code == 401


def test_discovery_documents(api: Api) -> None:
    config = api.client.get("/.well-known/openid-configuration").json()
    assert config["issuer"] == "http://testserver/"
    assert config["token_endpoint"] == "http://testserver/oauth/token"
    assert config["jwks_uri"] == "http://testserver/.well-known/jwks.json"
    assert config["authorization_endpoint"] == "http://testserver/authorize"
    assert config["revocation_endpoint"] == "http://testserver/oauth/revoke"
    assert {"client_credentials", "authorization_code", "refresh_token"} <= set(
        config["grant_types_supported"]
    )
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert len(config["scopes_supported"]) == 18 + 4  # the Partner API's and OpenID's
    for endpoint in ("authorization_endpoint", "revocation_endpoint", "end_session_endpoint"):
        path = config[endpoint].removeprefix("http://testserver")
        assert api.client.get(path).status_code != 404, endpoint


def test_pinned_issuer_is_used_for_tokens_and_discovery() -> None:
    settings = Settings(issuer="https://sandbox.example.test")
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        claims = jwt.decode(api.token(), options={"verify_signature": False})
        discovery = client.get("/.well-known/openid-configuration").json()
    assert claims["iss"] == "https://sandbox.example.test/"
    assert discovery["issuer"] == "https://sandbox.example.test/"
