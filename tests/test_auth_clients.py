"""Client management over ``/_sandbox/clients``: PATCH (validated as a registration is),
DELETE (revoking what the client was issued), ``reset`` of the clients, and loopback
redirect URIs that match on any port (RFC 8252 §7.3)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import Api, Settings, public_pem, signed_assertion
from one_hop import TestClient

from sandbox import VirtualClock, create_app
from sandbox.settings import ClientSpec

CONFIGURED = ClientSpec(
    client_id="configured-partner",
    client_secret="configured-secret-0123456789",
    kind="platform_partner",
    dealer_ids=(1001,),
    scopes=("read:dealer",),
)
REMOTE = ClientSpec(
    client_id="remote-web",
    client_secret="remote-secret-0123456789",
    redirect_uris=("http://app.example:3000/cb",),
)
ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def settings() -> Settings:
    return Settings(clients=(CONFIGURED, REMOTE))


def _register(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"client_id": "runtime-web", "kind": "platform_partner", "dealer_ids": [1001], **fields}
    response = api.client.post("/_sandbox/clients", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _token(api: Api, client_id: str, secret: str, **form: str) -> Any:
    data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    return api.client.post("/oauth/token", data={**data, **form})


def _authorize(api: Api, client_id: str, redirect_uri: str) -> Any:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "login_hint": api.creds["users"][0]["email"],
        "scope": "read:dealer offline_access",
    }
    return api.client.get("/authorize", params=params, follow_redirects=False)


def _code(response: Any, redirect_uri: str) -> str:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(redirect_uri + "?")
    return parse_qs(urlsplit(location).query)["code"][0]


def _exchange(api: Api, code: str, redirect_uri: str, client_id: str, secret: str) -> Any:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "client_secret": secret,
    }
    return api.client.post("/oauth/token", data=form)


def _patch(api: Api, target: str, **changes: Any) -> Any:
    return api.client.patch(f"/_sandbox/clients/{target}", json=changes)


def _dealer(api: Api, token: str) -> int:
    return api.client.get("/partner/v1/dealers/1001", headers=api.bearer(token)).status_code


# ---------------------------------------------------------------- PATCH


def test_patch_changes_redirect_uris_scopes_and_secret(api: Api) -> None:
    created = _register(
        api, client_secret="first-secret-0123456789", redirect_uris=["https://a.example/cb"]
    )
    patched = _patch(
        api,
        "runtime-web",
        redirect_uris=["https://b.example/cb"],
        scopes=["read:dealer"],
        client_secret="second-secret-0123456789",
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["redirect_uris"] == ["https://b.example/cb"] and body["scopes"] == ["read:dealer"]
    assert body["dealer_ids"] == created["dealer_ids"] == [1001]
    assert _token(api, "runtime-web", "first-secret-0123456789").status_code == 401
    token = _token(api, "runtime-web", "second-secret-0123456789")
    assert token.status_code == 200 and token.json()["scope"] == "read:dealer"
    asked = _token(api, "runtime-web", "second-secret-0123456789", scope="read:sites")
    assert asked.json()["error"] == "invalid_scope"
    assert _authorize(api, "runtime-web", "https://a.example/cb").status_code == 400
    _code(_authorize(api, "runtime-web", "https://b.example/cb"), "https://b.example/cb")


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"scopes": ["delete:everything"]}, "unknown scope"),
        ({"kind": "dealer_app"}, "kind cannot be changed"),
        ({"client_id": "renamed"}, "client_id cannot be changed"),
        ({"redirect_uri": ["x"]}, "did you mean 'redirect_uris'"),
        ({"redirect_uris": "https://a.example/cb"}, "must be a list"),
        ({"dealer_ids": [999_999]}, "not in the world"),
        ({"client_secret": "chekt_live_0123456789abcdef"}, "chekt_live_"),
        ({"client_secret": None}, "client_secret is required"),
    ],
)
def test_patch_is_validated_as_a_registration(api: Api, changes: dict[str, Any], says: str) -> None:
    _register(api, client_secret="first-secret-0123456789")
    response = _patch(api, "runtime-web", **changes)
    assert response.status_code == 422, response.text
    assert says in response.json()["error"]["message"]
    assert _token(api, "runtime-web", "first-secret-0123456789").status_code == 200  # unchanged


def test_patch_and_delete_of_an_unknown_client_are_404(api: Api) -> None:
    assert _patch(api, "nobody", name="x").status_code == 404
    assert api.client.delete("/_sandbox/clients/nobody").status_code == 404
    assert api.client.patch("/_sandbox/clients/nobody", json=[1]).status_code == 422


def _assertion_token(api: Api, key: ec.EllipticCurvePrivateKey, kid: str) -> int:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION,
        "client_assertion": signed_assertion("runtime-web", key, "ES256", {"kid": kid}),
    }
    return api.client.post("/oauth/token", data=form).status_code


def test_patch_replaces_the_assertion_key(api: Api) -> None:
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    _register(api, public_key=public_pem(old), key_id="k1")
    assert _assertion_token(api, old, "k1") == 200
    assert _patch(api, "runtime-web", name="renamed").status_code == 200  # the key stays
    assert _assertion_token(api, old, "k1") == 200
    assert _patch(api, "runtime-web", public_key=public_pem(new), key_id="k2").status_code == 200
    assert _assertion_token(api, old, "k1") == 401
    assert _assertion_token(api, new, "k2") == 200


def test_patching_a_partners_dealers_reconnects_it(api: Api) -> None:
    _register(api, client_secret="first-secret-0123456789", dealer_ids=[1001, 1002])
    token = _token(api, "runtime-web", "first-secret-0123456789").json()["access_token"]
    patched = _patch(api, "runtime-web", dealer_ids=[1003])
    assert patched.status_code == 200 and patched.json()["dealer_ids"] == [1003]
    assert _dealer(api, token) == 404
    reach = api.client.get("/partner/v1/dealers/1003", headers=api.bearer(token))
    assert reach.status_code == 200


def test_a_dealer_reconnected_under_another_id_survives_changes_to_the_clients(api: Api) -> None:
    partner = api.token()
    link = "/partner/v1/dealers/1002/connect"
    assert api.client.delete(link, headers=api.bearer(partner)).status_code == 204
    code = _code(_authorize_as(api, 1002), "http://localhost:3000/callback")
    user = _exchange(
        api,
        code,
        "http://localhost:3000/callback",
        api.partner["client_id"],
        api.partner["client_secret"],
    ).json()["access_token"]
    connected = api.client.put(
        "/partner/v1/dealers/connect",
        json={"external_dealer_id": "adc-2", "company_name": "x"},
        headers=api.bearer(user),
    )
    assert connected.status_code == 200
    assert _patch(api, api.partner["client_id"], name="Renamed").status_code == 200
    assert api.client.post("/_sandbox/reset", json={"only": ["clients"]}).status_code == 200
    dealer = api.client.get("/partner/v1/dealers/1002", headers=api.bearer(partner))
    assert dealer.json()["external_dealer_id"] == "adc-2"


def _authorize_as(api: Api, dealer_id: int) -> Any:
    email = next(u["email"] for u in api.creds["users"] if u["dealer_id"] == dealer_id)
    params = {
        "response_type": "code",
        "client_id": api.partner["client_id"],
        "redirect_uri": "http://localhost:3000/callback",
        "login_hint": email,
    }
    return api.client.get("/authorize", params=params, follow_redirects=False)


# ---------------------------------------------------------------- DELETE


def test_delete_removes_the_client_and_revokes_what_it_issued() -> None:
    clock = VirtualClock(start=1_800_000_000)
    with TestClient(create_app(Settings(), clock=clock)) as client:
        api = Api(client)
        secret = "first-secret-0123456789"
        redirect = "https://a.example/cb"
        _register(api, client_secret=secret, redirect_uris=[redirect])
        m2m = _token(api, "runtime-web", secret).json()["access_token"]
        code = _code(_authorize(api, "runtime-web", redirect), redirect)
        user = _exchange(api, code, redirect, "runtime-web", secret).json()
        pending = _code(_authorize(api, "runtime-web", redirect), redirect)
        assert _dealer(api, m2m) == 200 and _dealer(api, user["access_token"]) == 200

        assert client.delete("/_sandbox/clients/runtime-web").status_code == 204
        assert client.delete("/_sandbox/clients/runtime-web").status_code == 404
        listed = client.get("/_sandbox/credentials").json()["clients"]
        assert "runtime-web" not in {c["client_id"] for c in listed}
        assert _token(api, "runtime-web", secret).status_code == 401
        assert _dealer(api, m2m) == 401

        # registered again under the same id, nothing issued before comes back to life
        clock.advance(1)
        _register(api, client_secret=secret, redirect_uris=[redirect])
        assert _dealer(api, m2m) == 401 and _dealer(api, user["access_token"]) == 401
        refresh = {"grant_type": "refresh_token", "refresh_token": user["refresh_token"]}
        again = client.post(
            "/oauth/token", data={**refresh, "client_id": "runtime-web", "client_secret": secret}
        )
        assert again.json()["error"] == "invalid_grant"
        late = _exchange(api, pending, redirect, "runtime-web", secret)
        assert late.json()["error"] == "invalid_grant"
        fresh = _token(api, "runtime-web", secret).json()["access_token"]  # the same second
        assert _dealer(api, fresh) == 200


# ---------------------------------------------------------------- reset


def test_reset_of_the_clients_returns_them_to_the_settings(api: Api) -> None:
    partner = api.partner
    _register(api, client_secret="first-secret-0123456789")
    assert _patch(api, partner["client_id"], redirect_uris=["https://x.example/cb"]).is_success
    assert _patch(api, "configured-partner", scopes=["read:sites"]).is_success
    assert api.client.delete("/_sandbox/clients/remote-web").status_code == 204

    kept = api.client.post("/_sandbox/reset")  # by default the clients stay as they are
    assert kept.json()["reset"] == ["deliveries", "recorder", "world"]
    assert _token(api, "runtime-web", "first-secret-0123456789").status_code == 200

    reset = api.client.post("/_sandbox/reset", json={"only": ["clients"]})
    assert reset.status_code == 200 and reset.json()["reset"] == ["clients"]
    clients = {c["client_id"]: c for c in api.client.get("/_sandbox/credentials").json()["clients"]}
    assert "runtime-web" not in clients
    assert _token(api, "runtime-web", "first-secret-0123456789").status_code == 401
    assert clients[partner["client_id"]]["redirect_uris"] == partner["redirect_uris"]
    assert clients[partner["client_id"]]["client_secret"] == partner["client_secret"]
    assert clients["configured-partner"]["scopes"] == ["read:dealer"]
    assert clients["remote-web"]["client_secret"] == REMOTE.client_secret
    assert _token(api, "remote-web", "remote-secret-0123456789").status_code == 200


def test_reset_refuses_unknown_parts(api: Api) -> None:
    response = api.client.post("/_sandbox/reset", json={"only": ["client"]})
    assert response.status_code == 422 and "clients" in response.json()["error"]["message"]


# ---------------------------------------------------------------- loopback redirect URIs


@pytest.mark.parametrize(
    ("client_id", "redirect_uri", "allowed"),
    [
        ("sandbox-platform-partner", "http://127.0.0.1:54321/callback", True),
        ("sandbox-platform-partner", "http://localhost:54321/callback", True),
        ("sandbox-platform-partner", "http://localhost/callback", True),
        ("sandbox-platform-partner", "http://127.0.0.1:54321/callback/", False),  # the path
        ("sandbox-platform-partner", "http://127.0.0.1:54321/callback?x=1", False),  # the query
        ("sandbox-platform-partner", "https://127.0.0.1:54321/callback", False),  # only http
        ("sandbox-platform-partner", "http://127.0.0.2:3000/callback", False),  # another host
        ("sandbox-platform-partner", "http://localhost:3000@evil.example/callback", False),
        ("sandbox-platform-partner", "http://x@localhost:54321/callback", False),
        ("sandbox-platform-partner", "http://localhost:99999/callback", False),
        ("remote-web", "http://app.example:3000/cb", True),
        ("remote-web", "http://app.example:4000/cb", False),  # not loopback: exact only
    ],
)
def test_loopback_redirect_uris_match_any_port(
    api: Api, client_id: str, redirect_uri: str, allowed: bool
) -> None:
    response = _authorize(api, client_id, redirect_uri)
    if not allowed:
        assert response.status_code == 400 and "location" not in response.headers
        return
    code = _code(response, redirect_uri)
    secret = next(c for c in api.creds["clients"] if c["client_id"] == client_id)["client_secret"]
    tokens = _exchange(api, code, redirect_uri, client_id, secret)
    assert tokens.status_code == 200, tokens.text
    other_port = _code(_authorize(api, client_id, redirect_uri), redirect_uri)
    swapped = _exchange(api, other_port, "http://127.0.0.1:1/callback", client_id, secret)
    assert swapped.json()["error"] == "invalid_grant"  # bound to the URI it was issued for


def test_a_registered_port_less_loopback_uri_matches_any_port(api: Api) -> None:
    _register(api, client_secret="first-secret-0123456789", redirect_uris=["http://127.0.0.1/cb"])
    _code(_authorize(api, "runtime-web", "http://127.0.0.1:61234/cb"), "http://127.0.0.1:61234/cb")
    assert _authorize(api, "runtime-web", "http://[::1]:61234/cb").status_code == 400
