"""Auth chaos, each one call: a client's tokens expire now, an API key is revoked, the signing
key rotates, new tokens are signed with a kid the JWKS does not list yet, and the times the
sandbox stamps run off its clock. A small partner client (written here) meets each."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers import Settings, public_pem
from receiver import Receiver, wait_for

from sandbox import Sandbox
from sandbox.errors import ExpectationFailed

DEALER = "/partner/v1/dealers/1001"


@pytest.fixture(scope="module")
def running() -> Iterator[Sandbox]:
    with Sandbox(Settings(db=":memory:", clock="virtual")) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(running: Sandbox) -> Iterator[Sandbox]:
    running.reset()
    yield running
    running.reset()  # the skew and the rest back to the settings


class Partner:
    """A partner's API client: one cached token, fetched again once when a call says 401."""

    def __init__(self, sandbox: Sandbox, fetch: Callable[[], str]) -> None:
        self.http = httpx.Client(base_url=sandbox.url, timeout=10)
        self.fetch = fetch
        self.token = fetch()
        self.seen: list[int] = []

    def get(self, path: str) -> httpx.Response:
        for _ in range(2):
            answer = self.http.get(path, headers={"Authorization": f"Bearer {self.token}"})
            self.seen.append(answer.status_code)
            if answer.status_code != 401:
                break
            self.token = self.fetch()
        return answer


@pytest.fixture
def partner(sandbox: Sandbox) -> Iterator[Partner]:
    made = Partner(sandbox, sandbox.token)
    with made.http:
        yield made


def test_expired_tokens_are_fetched_again(sandbox: Sandbox, partner: Partner) -> None:
    assert partner.get(DEALER).status_code == 200
    old = partner.token
    cutoff = sandbox.expire_tokens()
    refused = partner.http.get(DEALER, headers={"Authorization": f"Bearer {old}"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    assert "expired" in refused.json()["error"]["message"]
    assert partner.get(DEALER).status_code == 200
    assert partner.seen == [200, 401, 200]  # in the very same second of the virtual clock
    assert jwt.decode(partner.token, options={"verify_signature": False})["iat"] == cutoff


def test_a_revoked_api_key_is_refused(sandbox: Sandbox) -> None:
    key = sandbox.api_key
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(sandbox.url + DEALER, headers=headers).status_code == 200
    assert sandbox.revoke_api_key(key)["dealer_id"] == 1001
    refused = httpx.get(sandbox.url + DEALER, headers=headers)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(ExpectationFailed, match="404"):
        sandbox.revoke_api_key(key)


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def _published(sandbox: Sandbox) -> set[str]:
    keys = httpx.get(sandbox.url + "/.well-known/jwks.json").json()["keys"]
    return {key["kid"] for key in keys}


def test_rotation_keeps_old_tokens_valid(sandbox: Sandbox, partner: Partner) -> None:
    before = _kid(partner.token)
    statuses = {k["status"] for k in sandbox.rotate_signing_key()}
    assert {"current", "previous", "next"} <= statuses
    assert partner.get(DEALER).status_code == 200  # the old token still verifies
    fresh = sandbox.token()
    assert _kid(fresh) != before and {before, _kid(fresh)} <= _published(sandbox)


def test_a_kid_not_yet_published(sandbox: Sandbox) -> None:
    kid = sandbox.sign_with_unpublished_key()
    token = sandbox.token()
    assert _kid(token) == kid and kid not in _published(sandbox)
    jwks_url = sandbox.url + "/.well-known/jwks.json"
    with pytest.raises(jwt.PyJWKClientError):  # a partner verifying tokens cannot, yet
        jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(sandbox.url + DEALER, headers=headers).status_code == 200
    sandbox.publish_signing_key()
    assert kid in _published(sandbox)
    assert jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token).key_id == kid


def test_a_skewed_clock_stamps_tokens_signatures_and_judges_assertions(
    sandbox: Sandbox, receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sandbox.register_client(client_id="skewed", public_key=public_pem(key), dealer_ids=[1001])
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    sandbox.assertion_token("skewed", pem)  # works while the clocks agree
    state = sandbox.skew_clock(600)
    assert state["stamped_now"] - state["now"] == 600
    now = sandbox.clock.now()
    token = sandbox.token()
    assert jwt.decode(token, options={"verify_signature": False})["iat"] == int(now + 600)
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(sandbox.url + DEALER, headers=headers).status_code == 200
    with pytest.raises(ExpectationFailed, match="expired"):  # our 300 s assertion, its clock
        sandbox.assertion_token("skewed", pem)
    sandbox.subscribe(f"{url}/hooks")
    sandbox.emit("device.online")
    received = wait_for(lambda: rx.at("/hooks"))
    assert int(received[0].headers["x-chekt-timestamp"]) == int(now + 600)
    sandbox.skew_clock(0)
    sandbox.assertion_token("skewed", pem)
