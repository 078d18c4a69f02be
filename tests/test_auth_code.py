"""The authorization code flow (dealer admins consenting to a platform partner) and what
rides on it: PKCE, single-use codes, rotating refresh tokens, id tokens, revocation,
logout, and ``PUT /partner/v1/dealers/connect``."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from helpers import Api, Settings
from one_hop import TestClient

from sandbox import create_app
from sandbox.settings import ClientSpec

REDIRECT = "http://localhost:3000/callback"
SPA = ClientSpec(
    client_id="spa-partner",
    kind="platform_partner",
    public=True,
    redirect_uris=("http://localhost:5173/cb",),
)


@pytest.fixture
def settings() -> Settings:
    return Settings(clients=(SPA,))


def _user(api: Api, dealer_id: int) -> dict[str, Any]:
    return next(u for u in api.creds["users"] if u["dealer_id"] == dealer_id)


def _authorize(api: Api, **params: str) -> Any:
    query = {
        "response_type": "code",
        "client_id": api.partner["client_id"],
        "redirect_uri": REDIRECT,
        **params,
    }
    return api.client.get("/authorize", params=query, follow_redirects=False)


def _code(response: Any, state: str | None = None) -> str:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" in (
        REDIRECT,
        "http://localhost:5173/cb",
    )
    if state is not None:
        assert query["state"] == [state]
    assert "error" not in query, query
    return query["code"][0]


def _exchange(api: Api, code: str, **extra: str) -> Any:
    return api.client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": api.partner["client_id"],
            "client_secret": api.partner["client_secret"],
            **extra,
        },
    )


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def test_login_hint_signs_in_without_a_page_and_connects_the_dealer(api: Api) -> None:
    admin = _user(api, 1003)
    response = _authorize(
        api,
        scope="openid offline_access read:dealer",
        login_hint=admin["email"],
        state="s1",
        nonce="n-123",
    )
    code = _code(response, state="s1")
    tokens = _exchange(api, code)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["token_type"] == "Bearer" and body["refresh_token"].startswith("rt_")
    id_claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert id_claims["aud"] == api.partner["client_id"]
    assert id_claims["nonce"] == "n-123" and id_claims["sub"] == admin["user_id"]
    user_token = api.bearer(body["access_token"])

    partner_token = api.bearer(api.token())
    before = api.client.get("/partner/v1/dealers/1003", headers=partner_token)
    assert before.status_code == 404
    connected = api.client.put(
        "/partner/v1/dealers/connect",
        json={"external_dealer_id": "adc-67890", "company_name": "Typed By Partner"},
        headers=user_token,
    )
    assert connected.status_code == 200, connected.text
    dealer = connected.json()
    assert dealer["dealer_id"] == 1003 and dealer["external_dealer_id"] == "adc-67890"
    assert dealer["company_name"] != "Typed By Partner"  # CHeKT's stored name, not an echo
    assert set(dealer) >= {
        "company_address1",
        "company_email",
        "company_phone_number",
        "created_at",
    }
    again = api.client.put(
        "/partner/v1/dealers/connect",
        json={"external_dealer_id": "adc-67890", "company_name": "x"},
        headers=user_token,
    )
    assert again.status_code == 200
    other = api.client.put(
        "/partner/v1/dealers/connect",
        json={"external_dealer_id": "adc-other", "company_name": "x"},
        headers=user_token,
    )
    assert other.status_code == 409
    assert (
        api.client.get("/partner/v1/dealers/1003/sites", headers=partner_token).status_code == 200
    )


def test_consent_page_lists_dealer_admins_and_posts_a_decision(api: Api) -> None:
    page = _authorize(api, scope="read:dealer", state="xyz")
    assert page.status_code == 200
    for user in api.creds["users"]:
        assert user["email"] in page.text
    form = dict(
        response_type="code",
        client_id=api.partner["client_id"],
        redirect_uri=REDIRECT,
        scope="read:dealer",
        state="xyz",
        user_id=_user(api, 1001)["user_id"],
    )
    decided = api.client.post("/authorize", data=form, follow_redirects=False)
    assert _exchange(api, _code(decided, "xyz")).status_code == 200
    denied = api.client.post("/authorize", data={**form, "deny": "1"}, follow_redirects=False)
    assert parse_qs(urlsplit(denied.headers["location"]).query)["error"] == ["access_denied"]


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"client_id": "nobody"}, "Unknown client_id"),
        ({"redirect_uri": "http://localhost:3000/callback/"}, "redirect_uri"),
        ({"redirect_uri": "https://evil.example/cb"}, "redirect_uri"),
    ],
)
def test_client_and_redirect_errors_are_shown_not_redirected(
    api: Api, params: dict[str, str], text: str
) -> None:
    response = _authorize(api, **params)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert text in response.text


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "delete:everything"}, "invalid_scope"),
        ({"code_challenge": "abc", "code_challenge_method": "plain"}, "invalid_request"),
        ({"audience": "https://elsewhere/"}, "invalid_request"),
        ({"login_hint": "nobody@example.com"}, "login_required"),
    ],
)
def test_other_errors_go_back_to_the_client(api: Api, params: dict[str, str], error: str) -> None:
    response = _authorize(api, state="st", **params)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == [error] and query["state"] == ["st"]


def test_codes_are_single_use_and_reuse_revokes_what_they_issued(api: Api) -> None:
    code = _code(_authorize(api, scope="read:dealer", login_hint=_user(api, 1001)["email"]))
    first = _exchange(api, code)
    token = api.bearer(first.json()["access_token"])
    assert api.client.get("/partner/v1/dealers/1001", headers=token).status_code == 200
    reused = _exchange(api, code)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    revoked = api.client.get("/partner/v1/dealers/1001", headers=token)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]


def test_code_is_bound_to_redirect_uri_client_and_lifetime() -> None:
    from sandbox import VirtualClock

    clock = VirtualClock(start=1_800_000_000)
    with TestClient(create_app(Settings(), clock=clock)) as client:
        api = Api(client)
        hint = _user(api, 1001)["email"]
        code = _code(_authorize(api, login_hint=hint))
        wrong = _exchange(api, code, redirect_uri="http://127.0.0.1:3000/callback")
        assert wrong.json()["error"] == "invalid_grant"
        late = _code(_authorize(api, login_hint=hint))
        clock.advance(61)
        assert _exchange(api, late).json()["error"] == "invalid_grant"


def test_pkce_public_client(api: Api) -> None:
    verifier = secrets.token_urlsafe(48)
    base = {
        "response_type": "code",
        "client_id": "spa-partner",
        "redirect_uri": "http://localhost:5173/cb",
        "login_hint": _user(api, 1002)["email"],
    }
    no_pkce = api.client.get("/authorize", params=base, follow_redirects=False)
    assert parse_qs(urlsplit(no_pkce.headers["location"]).query)["error"] == ["invalid_request"]
    with_pkce = api.client.get(
        "/authorize",
        params={**base, "code_challenge": _challenge(verifier), "code_challenge_method": "S256"},
        follow_redirects=False,
    )
    code = _code(with_pkce)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": "spa-partner",
        "redirect_uri": "http://localhost:5173/cb",
    }
    missing = api.client.post("/oauth/token", data=form)  # downgrade: challenge sent, no verifier
    assert missing.json()["error"] == "invalid_grant"
    code = _code(
        api.client.get(
            "/authorize",
            params={
                **base,
                "code_challenge": _challenge(verifier),
                "code_challenge_method": "S256",
            },
            follow_redirects=False,
        )
    )
    bad = api.client.post("/oauth/token", data={**form, "code": code, "code_verifier": "x" * 43})
    assert bad.json()["error"] == "invalid_grant"
    code = _code(
        api.client.get(
            "/authorize",
            params={
                **base,
                "code_challenge": _challenge(verifier),
                "code_challenge_method": "S256",
            },
            follow_redirects=False,
        )
    )
    good = api.client.post(
        "/oauth/token",
        data={**form, "code": code, "code_verifier": verifier},
        headers={"Origin": "http://localhost:5173"},
    )
    assert good.status_code == 200
    assert good.headers["access-control-allow-origin"] == "*"


def test_cors_preflight_on_the_token_endpoint(api: Api) -> None:
    response = api.client.options(
        "/oauth/token",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert "POST" in response.headers["access-control-allow-methods"]


def test_refresh_tokens_rotate_and_reuse_revokes_the_family(api: Api) -> None:
    hint = _user(api, 1001)["email"]
    code = _code(
        _authorize(api, scope="openid offline_access read:dealer", login_hint=hint, nonce="abc")
    )
    first = _exchange(api, code).json()
    form = {
        "grant_type": "refresh_token",
        "client_id": api.partner["client_id"],
        "client_secret": api.partner["client_secret"],
    }
    second = api.client.post("/oauth/token", data={**form, "refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    refreshed = second.json()
    assert refreshed["refresh_token"] != first["refresh_token"]
    assert jwt.decode(refreshed["id_token"], options={"verify_signature": False})["nonce"] == "abc"
    reused = api.client.post("/oauth/token", data={**form, "refresh_token": first["refresh_token"]})
    assert reused.json()["error"] == "invalid_grant"
    newest = api.client.post(
        "/oauth/token", data={**form, "refresh_token": refreshed["refresh_token"]}
    )
    assert newest.json()["error"] == "invalid_grant"  # the whole family is revoked
    dealer = api.client.get(
        "/partner/v1/dealers/1001", headers=api.bearer(refreshed["access_token"])
    )
    assert dealer.status_code == 401


def test_revocation_endpoint(api: Api) -> None:
    auth = {"client_id": api.partner["client_id"], "client_secret": api.partner["client_secret"]}
    token = api.token()
    assert api.client.get("/partner/v1/dealers/1001", headers=api.bearer(token)).status_code == 200
    assert api.client.post("/oauth/revoke", data={**auth, "token": token}).status_code == 200
    assert api.client.get("/partner/v1/dealers/1001", headers=api.bearer(token)).status_code == 401
    unknown = api.client.post("/oauth/revoke", data={**auth, "token": "never-issued"})
    assert unknown.status_code == 200
    unauthenticated = api.client.post("/oauth/revoke", data={"token": token})
    assert unauthenticated.status_code == 401


def test_logout_redirects_only_to_allowed_urls(api: Api) -> None:
    ok = api.client.get(
        "/v2/logout",
        params={"client_id": api.partner["client_id"], "returnTo": "http://localhost:3000/"},
        follow_redirects=False,
    )
    assert ok.status_code == 302 and ok.headers["location"] == "http://localhost:3000/"
    evil = api.client.get(
        "/v2/logout",
        params={"client_id": api.partner["client_id"], "returnTo": "https://evil.example/"},
        follow_redirects=False,
    )
    assert evil.status_code == 400 and "location" not in evil.headers


def test_connect_refuses_app_credentials(api: Api) -> None:
    body = {"external_dealer_id": "adc-1", "company_name": "X"}
    for credential in (api.key, api.token()):
        response = api.client.put(
            "/partner/v1/dealers/connect", json=body, headers=api.bearer(credential)
        )
        assert response.status_code == 403
        assert "authorization code" in response.json()["error"]["message"]


def test_default_user_setting_signs_in_non_interactively() -> None:
    with TestClient(create_app(Settings(default_user="auth0|missing"))) as client:
        api = Api(client)
        response = _authorize(api)
        assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["login_required"]
    with TestClient(create_app(Settings())) as client:
        email = Api(client).creds["users"][0]["email"]
    with TestClient(create_app(Settings(default_user=email))) as client:
        api = Api(client)
        assert _exchange(api, _code(_authorize(api))).status_code == 200
