"""CHeKT's rate limits (CONTRACT §3.2) on the sandbox clock: drain a bucket, see the 429 and
its headers, advance the clock, pass again; each tier's figures checked exactly."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner
from helpers import Settings

from sandbox import Sandbox
from sandbox.api.openapi import document
from sandbox.cli import main
from sandbox.client import public_cas
from sandbox.settings import SettingsError

DEALER = "/partner/v1/dealers/1001"
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


@pytest.fixture(scope="module")
def running() -> Iterator[Sandbox]:
    with Sandbox(Settings(db=":memory:", clock="virtual")) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(running: Sandbox) -> Sandbox:
    running.reset()
    return running


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    with httpx.Client(
        base_url=sandbox.url, headers=headers, timeout=10, verify=public_cas()
    ) as client:
        yield client


def test_off_by_default(sandbox: Sandbox, http: httpx.Client) -> None:
    answer = http.get(DEALER)
    assert answer.status_code == 200
    assert not any(name in answer.headers for name in RATE_HEADERS)
    assert sandbox.rate_limits() == {
        "tier": "off",
        "per_minute": None,
        "burst": None,
        "clients": [],
    }


@pytest.mark.parametrize(
    ("tier", "per_minute", "burst"), [("free", 60, 5), ("pro", 600, 30), ("enterprise", 3000, 200)]
)
def test_each_tier_drains_and_refills_on_the_sandbox_clock(
    sandbox: Sandbox, http: httpx.Client, tier: str, per_minute: int, burst: int
) -> None:
    assert sandbox.rate_limit(tier)["per_minute"] == per_minute
    rate = per_minute / 60
    now = sandbox.clock.now()
    first = http.get(DEALER)
    assert first.headers["x-ratelimit-limit"] == str(per_minute)
    assert first.headers["x-ratelimit-remaining"] == str(burst - 1)
    assert first.headers["x-ratelimit-reset"] == str(math.ceil(now + 1 / rate))
    remaining = [int(http.get(DEALER).headers["x-ratelimit-remaining"]) for _ in range(burst - 1)]
    assert remaining == list(range(burst - 2, -1, -1))  # the whole burst passed
    refused = http.get(DEALER)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["retry-after"] == str(max(1, math.ceil(1 / rate)))
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-reset"] == str(math.ceil(now + burst / rate))
    sandbox.clock.advance(1)  # a second refills per_minute / 60 requests
    statuses = [http.get(DEALER).status_code for _ in range(int(rate) + 1)]
    assert statuses == [200] * int(rate) + [429]
    sandbox.clock.advance(burst / rate)  # the refill time: the bucket is full again
    statuses = [http.get(DEALER).status_code for _ in range(burst + 1)]
    assert statuses == [200] * burst + [429]


def test_errors_carry_the_headers_too(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.rate_limit("free")
    missing = http.get("/partner/v1/dealers/1001/sites/999999")
    assert missing.status_code == 404 and missing.headers["x-ratelimit-remaining"] == "4"
    dealer_api = http.get("/ext/v1/sites")
    assert dealer_api.status_code == 200 and dealer_api.headers["x-ratelimit-remaining"] == "3"
    unauthenticated = httpx.get(sandbox.url + DEALER)  # no client: no bucket
    assert unauthenticated.status_code == 401 and "x-ratelimit-limit" not in unauthenticated.headers


def test_custom_ceilings_per_client(sandbox: Sandbox, http: httpx.Client) -> None:
    http.get(DEALER)
    key_client = sandbox.requests()[-1]["client_id"]
    view = sandbox.rate_limit(per_minute=120, burst=2, client_id=key_client)
    assert view["tier"] == "off" and view["clients"] == [
        {"client_id": key_client, "tier": "custom", "per_minute": 120, "burst": 2}
    ]
    assert [http.get(DEALER).status_code for _ in range(3)] == [200, 200, 429]
    token = sandbox.token()
    partner = http.get(DEALER, headers={"Authorization": f"Bearer {token}"})
    assert partner.status_code == 200 and "x-ratelimit-limit" not in partner.headers
    sandbox.rate_limit("default", client_id=key_client)
    assert http.get(DEALER).status_code == 200


def test_the_setting_and_bad_input(sandbox: Sandbox) -> None:
    with Sandbox(Settings(db=":memory:", rate_limit="pro")) as limited:
        assert limited.rate_limits()["per_minute"] == 600
        limited.rate_limit("off")
        limited.reset()
        assert limited.rate_limits()["tier"] == "pro"  # a reset goes back to the setting
    with pytest.raises(SettingsError, match="rate_limit must be"):
        Settings.load(rate_limit="platinum")
    for body, field in (
        ({"tier": "platinum"}, "tier"),
        ({"per_minute": 0, "burst": 1}, "per_minute"),
        ({"tier": "free", "burst": 3}, "tier"),
        ({}, "tier"),
    ):
        answer = sandbox.request("POST", "/_sandbox/rate-limits", json=body)
        assert answer.status_code == 422 and answer.json()["error"]["field"] == field


def test_the_document_declares_the_429_and_headers() -> None:
    paths = document("http://127.0.0.1:8765")["paths"]
    limited = [
        op
        for path, ops in paths.items()
        if path.startswith(("/partner/v1/", "/v1/", "/ext/v1/"))
        for op in ops.values()
    ]
    assert limited
    for op in limited:
        assert "Retry-After" in op["responses"]["429"]["headers"]
        assert all("X-RateLimit-Reset" in r["headers"] for r in op["responses"].values())


def test_serve_takes_a_rate_limit_tier() -> None:
    refused = CliRunner().invoke(main, ["serve", "--rate-limit", "platinum"])
    assert refused.exit_code == 2 and "free" in refused.output and "enterprise" in refused.output
