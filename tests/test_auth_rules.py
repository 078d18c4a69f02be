"""The auth server by the rules: revocation only of the caller's own, validly signed tokens
(RFC 7009), codes and refresh tokens consumed only after every check passed, user tokens that
reach no further than their application, ``login_hint`` only on loopback, logout targets, the
token endpoint's CORS, and signing keys published as long as a token they signed lives."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers import REDIRECT, Api, Settings
from one_hop import TestClient

from sandbox import VirtualClock, create_app
from sandbox.settings import ClientSpec

OTHER = ClientSpec(
    client_id="other-web",
    client_secret="other-web-secret-0123456789",
    kind="platform_partner",
    redirect_uris=(REDIRECT,),
)
SPA = ClientSpec(
    client_id="spa-partner",
    kind="platform_partner",
    dealer_ids=(1001,),
    public=True,
    redirect_uris=("http://localhost:5173/cb",),
)
DEALER_WEB = ClientSpec(
    client_id="dealer-web-1002",
    client_secret="dealer-web-secret-0123456789",
    kind="dealer_app",
    dealer_ids=(1002,),
    redirect_uris=("http://localhost:4000/cb",),
    logout_urls=("http://localhost:4000/bye",),
)
SETTINGS = Settings(clients=(OTHER, SPA, DEALER_WEB))
VERIFIER = secrets.token_urlsafe(48)


@pytest.fixture
def settings() -> Settings:
    return SETTINGS


def _secret(api: Api, client_id: str) -> dict[str, str]:
    client = next(c for c in api.creds["clients"] if c["client_id"] == client_id)
    return {"client_id": client_id, "client_secret": client["client_secret"]}


def _owner(api: Api) -> dict[str, str]:
    """The seeded platform partner's credentials: the owner of the flows in these tests."""
    return _secret(api, api.partner["client_id"])


def _exchange(api: Api, code: str, auth: dict[str, str], **extra: str) -> Any:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    return api.client.post("/oauth/token", data={**form, **auth, **extra})


def _user_tokens(api: Api, client_id: str | None = None, **params: str) -> dict[str, Any]:
    """Tokens from the authorization code flow (with a refresh token) for the seeded partner."""
    client_id = client_id or api.partner["client_id"]
    code = api.code(client_id, scope="offline_access read:dealer", **params)
    response = _exchange(api, code, _secret(api, client_id))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _works(api: Api, token: str, dealer_id: int = 1001) -> bool:
    response = api.client.get(f"/partner/v1/dealers/{dealer_id}", headers=api.bearer(token))
    assert response.status_code in (200, 401, 404), response.text
    return response.status_code == 200


def _refresh(api: Api, refresh_token: str, auth: dict[str, str]) -> Any:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return api.client.post("/oauth/token", data={**form, **auth})


# ---------------------------------------------------------------- revocation (RFC 7009)


def test_a_token_signed_for_another_client_is_refused_and_keeps_working(api: Api) -> None:
    victim = api.token()
    attacker = _secret(api, "other-web")
    response = api.client.post("/oauth/revoke", data={**attacker, "token": victim})
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert _works(api, victim)
    tokens = _user_tokens(api)
    refused = api.client.post("/oauth/revoke", data={**attacker, "token": tokens["refresh_token"]})
    assert refused.status_code == 400
    assert _refresh(api, tokens["refresh_token"], _owner(api)).is_success


def test_a_token_minted_at_another_origin_of_the_sandbox_is_revoked(api: Api) -> None:
    form = {"grant_type": "client_credentials", **_owner(api)}
    minted = api.client.post("/oauth/token", data=form, headers={"Host": "localhost:8765"})
    token = minted.json()["access_token"]
    revoked = api.client.post("/oauth/revoke", data={**_owner(api), "token": token})
    assert revoked.status_code == 200
    used = api.client.get(
        "/partner/v1/dealers/1001", headers={**api.bearer(token), "Host": "localhost:8765"}
    )
    assert used.status_code == 401 and "revoked" in used.json()["error"]["message"]


@pytest.mark.parametrize("signing", ["unsigned", "foreign key"])
def test_a_forged_token_naming_the_attacker_revokes_nothing(api: Api, signing: str) -> None:
    """A forged token that copies a victim's jti and sid but names the attacker as azp."""
    victim = _user_tokens(api)
    claims = jwt.decode(victim["access_token"], options={"verify_signature": False})
    forged_claims = {**claims, "azp": "other-web"}
    if signing == "unsigned":
        forged = jwt.encode(forged_claims, None, algorithm="none")
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = jwt.get_unverified_header(victim["access_token"])["kid"]
        forged = jwt.encode(forged_claims, key, algorithm="RS256", headers={"kid": kid})
    response = api.client.post("/oauth/revoke", data={**_secret(api, "other-web"), "token": forged})
    assert response.status_code == 200  # an invalid token is no error (RFC 7009 §2.2)
    assert _works(api, victim["access_token"])
    refreshed = _refresh(api, victim["refresh_token"], _owner(api))
    assert refreshed.status_code == 200, refreshed.text


def test_a_public_client_revokes_only_its_own(api: Api) -> None:
    partner = _user_tokens(api)
    spa = {"client_id": "spa-partner"}
    for token in (partner["refresh_token"], partner["access_token"], api.token()):
        refused = api.client.post("/oauth/revoke", data={**spa, "token": token})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert _works(api, partner["access_token"])
    own = _spa_tokens(api)
    assert _works(api, own["access_token"])
    assert api.client.post("/oauth/revoke", data={**spa, "token": own["refresh_token"]}).is_success
    assert _refresh(api, own["refresh_token"], spa).json()["error"] == "invalid_grant"
    assert not _works(api, own["access_token"])
    assert _refresh(api, partner["refresh_token"], _owner(api)).is_success


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def _spa_tokens(api: Api) -> dict[str, Any]:
    code = api.code(
        "spa-partner",
        "http://localhost:5173/cb",
        scope="offline_access read:dealer",
        code_challenge=_challenge(VERIFIER),
        code_challenge_method="S256",
    )
    response = _exchange(
        api,
        code,
        {"client_id": "spa-partner"},
        redirect_uri="http://localhost:5173/cb",
        code_verifier=VERIFIER,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


# ---------------------------------------------------------------- nothing burnt by a wrong guess


def test_a_wrong_client_does_not_consume_the_code(api: Api) -> None:
    code = api.code(api.partner["client_id"], scope="read:dealer")
    for _ in range(2):  # the second try would be a "reuse" if the first had consumed it
        stolen = _exchange(api, code, _secret(api, "other-web"))
        assert stolen.json()["error"] == "invalid_grant"
    legitimate = _exchange(api, code, _owner(api))
    assert legitimate.status_code == 200, legitimate.text
    assert _works(api, legitimate.json()["access_token"])


def test_a_wrong_verifier_does_not_consume_the_code(api: Api) -> None:
    code = api.code(
        "spa-partner",
        "http://localhost:5173/cb",
        scope="read:dealer",
        code_challenge=_challenge(VERIFIER),
        code_challenge_method="S256",
    )
    form = {"client_id": "spa-partner", "redirect_uri": "http://localhost:5173/cb"}
    for wrong in (secrets.token_urlsafe(48), ""):
        guessed = _exchange(api, code, form, code_verifier=wrong)
        assert guessed.json()["error"] == "invalid_grant"
    good = _exchange(api, code, form, code_verifier=VERIFIER)
    assert good.status_code == 200, good.text
    assert _works(api, good.json()["access_token"])


def test_a_wrong_client_does_not_consume_the_refresh_token(api: Api) -> None:
    tokens = _user_tokens(api)
    for auth in (_secret(api, "other-web"), {"client_id": "spa-partner"}):
        stolen = _refresh(api, tokens["refresh_token"], auth)
        assert stolen.json()["error"] == "invalid_grant"
    rotated = _refresh(api, tokens["refresh_token"], _owner(api))
    assert rotated.status_code == 200, rotated.text
    assert _works(api, tokens["access_token"]) and _works(api, rotated.json()["access_token"])


# ---------------------------------------------------------------- what a user token reaches


def test_a_dealer_apps_user_token_reaches_only_the_apps_dealer(api: Api) -> None:
    code = api.code("dealer-web-1002", "http://localhost:4000/cb", scope="read:dealer")
    response = _exchange(
        api, code, _secret(api, "dealer-web-1002"), redirect_uri="http://localhost:4000/cb"
    )
    token = response.json()["access_token"]  # signed in as dealer 1001's admin
    assert _works(api, token, 1002)
    assert not _works(api, token, 1001)
    assert not _works(api, token, 1003)


def test_a_platform_partners_user_token_reaches_only_connected_dealers(api: Api) -> None:
    code = api.code(
        api.partner["client_id"], scope="read:dealer", login_hint=api.dealer_admin(1003)["email"]
    )
    token = _exchange(api, code, _owner(api)).json()["access_token"]
    assert not _works(api, token, 1003)  # the user's dealer, not (yet) connected
    assert _works(api, token, 1001)  # connected to the partner: what its M2M token reaches
    connected = api.client.put(
        "/partner/v1/dealers/connect",
        json={"external_dealer_id": "ext-3", "company_name": "x"},
        headers=api.bearer(token),
    )
    assert connected.status_code == 200, connected.text
    assert _works(api, token, 1003)


# ---------------------------------------------------------------- login_hint, logout, CORS


def _off_loopback(**settings: Any) -> TestClient:
    app = create_app(Settings(host="192.0.2.10", admin_token="admin-token-0123", **settings))
    return TestClient(app, headers={"X-Sandbox-Admin-Token": "admin-token-0123"})


@pytest.mark.parametrize("allowed", [False, True])
def test_login_hint_signs_in_off_loopback_only_when_the_setting_says(allowed: bool) -> None:
    with _off_loopback(login_hint_off_loopback=allowed) as client:
        api = Api(client)
        response = client.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": api.partner["client_id"],
                "redirect_uri": REDIRECT,
                "login_hint": api.dealer_admin(1001)["email"],
            },
            follow_redirects=False,
        )
        if allowed:
            assert response.status_code == 302 and "code=" in response.headers["location"]
        else:
            assert response.status_code == 200 and "Sign in as" in response.text


@pytest.mark.parametrize(
    ("client_id", "return_to", "allowed"),
    [
        ("sandbox-platform-partner", "http://localhost:3000", True),  # CHeKT's sample
        ("sandbox-platform-partner", "http://localhost:3000/", True),
        ("sandbox-platform-partner", "http://127.0.0.1:3000", True),
        ("sandbox-platform-partner", "http://LOCALHOST:3000", True),
        ("sandbox-platform-partner", "http://localhost:3000/callback", False),
        ("sandbox-platform-partner", "http://localhost:3001", False),
        ("sandbox-platform-partner", "https://localhost:3000", False),
        ("sandbox-platform-partner", "http://localhost:3000/?next=x", False),
        ("sandbox-platform-partner", "http://evil@localhost:3000", False),
        ("sandbox-platform-partner", "http://localhost:3000@evil.example", False),
        ("dealer-web-1002", "http://localhost:4000/bye", True),  # registered
        ("dealer-web-1002", "http://localhost:4000", False),  # registered ones only
        ("nobody", "http://localhost:3000", False),
    ],
)
def test_logout_return_to(api: Api, client_id: str, return_to: str, allowed: bool) -> None:
    response = api.client.get(
        "/v2/logout", params={"client_id": client_id, "returnTo": return_to}, follow_redirects=False
    )
    if allowed:
        assert response.status_code == 302 and response.headers["location"] == return_to
    else:
        assert response.status_code == 400 and "location" not in response.headers


def test_token_endpoint_preflight_allows_the_auth0_client_header(api: Api) -> None:
    response = api.client.options(
        "/oauth/token",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "auth0-client,content-type",
        },
    )
    assert response.status_code == 204
    listed = response.headers["access-control-allow-headers"].split(",")
    allowed = {header.strip().lower() for header in listed}
    assert {"auth0-client", "content-type"} <= allowed


# ---------------------------------------------------------------- JWKS across rotations


def test_a_key_stays_published_while_a_token_it_signed_lives() -> None:
    clock = VirtualClock(start=1_800_000_000)
    with TestClient(create_app(Settings(token_lifetime=600), clock=clock)) as client:
        api = Api(client)
        token = api.token()
        kid = jwt.get_unverified_header(token)["kid"]

        def published() -> set[str]:
            return {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}

        for _ in range(4):
            clock.advance(100)
            assert client.post("/_sandbox/keys/rotate").status_code == 200
            assert kid in published()
            assert _works(api, token)
        clock.advance(200)  # the token has expired, but the key signed until its demotion
        assert not _works(api, token) and kid in published()
        clock.advance(100)  # every token it can have signed has expired: it leaves the JWKS
        assert kid not in published()
        rotated = client.post("/_sandbox/keys/rotate").json()["keys"]
        assert kid not in published() and kid not in {k["kid"] for k in rotated}
