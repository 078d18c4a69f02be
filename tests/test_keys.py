"""Key rotation: the sandbox's signing keys (JWKS publishes previous, current, next) and
API keys (the old one keeps working for 24 h on the sandbox clock)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import jwt
from helpers import Api, Settings
from one_hop import TestClient

from sandbox import VirtualClock, create_app

SITES = "/partner/v1/dealers/1001/sites"


def test_signing_key_rotation_keeps_old_tokens_valid(api: Api) -> None:
    before = api.client.get("/.well-known/jwks.json").json()["keys"]
    old_token = api.token()
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    rotated = api.client.post("/_sandbox/keys/rotate").json()["keys"]
    statuses = {k["status"] for k in rotated}
    assert statuses == {"previous", "current", "next"}
    published = {k["kid"] for k in api.client.get("/.well-known/jwks.json").json()["keys"]}
    assert published == {k["kid"] for k in rotated}
    assert {k["kid"] for k in before} <= published
    new_token = api.token()
    assert jwt.get_unverified_header(new_token)["kid"] != old_kid
    assert api.client.get(SITES, headers=api.bearer(old_token)).status_code == 200
    assert api.client.get(SITES, headers=api.bearer(new_token)).status_code == 200
    # a second rotation keeps the first key while a token it signed is unexpired
    api.client.post("/_sandbox/keys/rotate")
    published = {k["kid"] for k in api.client.get("/.well-known/jwks.json").json()["keys"]}
    assert old_kid in published and len(published) == 4
    assert api.client.get(SITES, headers=api.bearer(old_token)).status_code == 200
    assert api.client.get(SITES, headers=api.bearer(new_token)).status_code == 200


def test_api_key_rotation_has_a_24_hour_grace() -> None:
    clock = VirtualClock(start=1_800_000_000)
    with TestClient(create_app(Settings(), clock=clock)) as client:
        api = Api(client)
        rotated = client.post("/_sandbox/api-keys/rotate", json={"key": api.key})
        assert rotated.status_code == 201
        new_key = rotated.json()["key"]
        assert new_key != api.key and new_key.startswith("chekt_test_")
        assert rotated.json()["previous_key_expires_at"] == 1_800_000_000 + 86_400
        clock.advance(86_399)
        assert client.get(SITES, headers=api.bearer(api.key)).status_code == 200
        assert client.get(SITES, headers=api.bearer(new_key)).status_code == 200
        clock.advance(1)
        expired = client.get(SITES, headers=api.bearer(api.key))
        assert expired.status_code == 401
        assert expired.json()["error"]["code"] == "invalid_api_key"
        assert client.get(SITES, headers=api.bearer(new_key)).status_code == 200
        listed = [k["key"] for k in client.get("/_sandbox/credentials").json()["api_keys"]]
        assert new_key in listed and api.key not in listed
        again = client.post("/_sandbox/api-keys/rotate", json={"key": api.key})
        assert again.status_code == 404


def test_rotating_a_missing_key_is_a_clear_error(api: Api) -> None:
    response = api.client.post("/_sandbox/api-keys/rotate", json={})
    assert response.status_code == 422 and response.json()["error"]["field"] == "key"


def test_the_signing_key_is_made_on_first_use_and_only_once() -> None:
    """A sandbox that only ever sees API keys never pays for an RSA key; the first callers
    that need one, however many at once, share the one key."""
    app = create_app(Settings())
    store = app.state.services.world.store
    with TestClient(app) as client:
        client.get("/partner/v1/dealers/1001/sites", headers=Api(client).bearer(Api(client).key))
        assert store.scalar("SELECT COUNT(*) FROM signing_keys") == 0
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: client.get("/.well-known/jwks.json"), range(8)))
        kids = {key["kid"] for answer in answers for key in answer.json()["keys"]}
        assert len(kids) == 1
        assert store.scalar("SELECT COUNT(*) FROM signing_keys") == 1
    app.state.services.close()


def test_every_fresh_sandbox_signs_with_a_key_of_its_own() -> None:
    """Keys are made ahead on a thread to save a start its wait, never shared: a token from
    one sandbox is no token for the next one, even on the same issuer."""
    kids = []
    for _ in range(3):
        with TestClient(create_app(Settings())) as client:
            kids.append(client.get("/.well-known/jwks.json").json()["keys"][0]["kid"])
    assert len(set(kids)) == 3
