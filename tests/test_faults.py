"""Inbound faults, over real HTTP: a small retrying client (written here, as a partner would)
meets each fault, and the tests assert what it saw on the wire and what the journal marked."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import Settings

from sandbox import Sandbox
from sandbox.client import public_cas
from sandbox.errors import ExpectationFailed
from sandbox.scenario import play
from sandbox.settings import SettingsError

SITES = "/partner/v1/dealers/1001/sites"


@dataclass
class Seen:
    """What the retrying client saw: each attempt's status (or error) and the waits."""

    attempts: list[str] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)


def retrying(
    http: httpx.Client,
    method: str,
    path: str,
    *,
    tries: int = 5,
    seen: Seen,
    wait: Callable[[float], None] | None = None,
    **kwargs: Any,
) -> httpx.Response | None:
    """A partner's client: retries 429 and 5xx honouring Retry-After (else backing off 0.1 s
    doubling), and transport errors and unreadable JSON; the wait is recorded, not slept."""
    delay = 0.1
    for _ in range(tries):
        try:
            response = http.request(method, path, **kwargs)
            if 200 <= response.status_code < 300 and response.status_code != 204:
                response.json()  # a body that is not JSON is as broken as a dropped one
        except (httpx.TransportError, json.JSONDecodeError) as exc:
            seen.attempts.append(type(exc).__name__)
        else:
            seen.attempts.append(str(response.status_code))
            if response.status_code != 429 and response.status_code < 500:
                return response
            if "retry-after" in response.headers:
                seen.waits.append(float(response.headers["retry-after"]))
                (wait or (lambda s: None))(seen.waits[-1])
                continue
        seen.waits.append(delay)
        delay *= 2
    return None


@pytest.fixture(scope="module")
def running() -> Iterator[Sandbox]:
    with Sandbox(Settings(db=":memory:")) as sandbox:
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


def faulted(sandbox: Sandbox) -> list[str | None]:
    return [e["fault"] for e in sandbox.requests()]


def test_503_with_retry_after_then_through(sandbox: Sandbox, http: httpx.Client) -> None:
    rule = sandbox.fault(path="/partner/v1/dealers/*/sites", status=503, retry_after=2, count=2)
    seen = Seen()
    answer = retrying(http, "GET", SITES, seen=seen)
    assert answer is not None and answer.status_code == 200 and answer.json()
    assert seen.attempts == ["503", "503", "200"]
    assert seen.waits == [2.0, 2.0]
    first = sandbox.requests()[0]
    assert first["status"] == 503 and first["response_headers"]["retry-after"] == "2"
    error = first["response_body"]["error"]
    assert error["code"] == "service_unavailable" and error["request_id"] == first["request_id"]
    assert faulted(sandbox) == [f"{rule['id']}: status 503"] * 2 + [None]
    listed = sandbox.inbound_faults()
    assert listed[0]["fired"] == 2 and listed[0]["remaining"] == 0


def test_each_surface_answers_in_its_own_envelope(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.fault(surface="dealer", status=429)
    sandbox.fault(surface="auth", status=503, retry_after=5)
    dealer = http.get("/ext/v1/sites")
    assert dealer.status_code == 429 and dealer.headers["retry-after"] == "1"
    assert dealer.json()["error"]["code"] == "rate_limited"
    assert dealer.json()["error"]["detail"] is None  # the dealer API's envelope
    token = http.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert token.status_code == 503 and token.headers["retry-after"] == "5"
    assert token.json()["error"] == "temporarily_unavailable"
    assert "error_description" in token.json()
    assert http.get("/_sandbox/health").status_code == 200  # control is never faulted


def test_a_dropped_connection_is_retried(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.fault(method="GET", path=SITES, drop=True, count=1)
    seen = Seen()
    answer = retrying(http, "GET", SITES, seen=seen)
    assert answer is not None and answer.status_code == 200
    assert seen.attempts == ["RemoteProtocolError", "200"]
    dropped = sandbox.requests()[0]
    assert dropped["status"] == 0 and dropped["fault"].endswith("drop")


def test_a_write_handled_then_dropped_needs_an_idempotency_key(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    drop_once = {"method": "POST", "path": SITES, "drop": True, "processed": True, "count": 1}
    sandbox.fault(**drop_once)
    site = {"external_site_id": "drop-1", "name": "Dropped", "timezone": "UTC"}
    naive = Seen()
    retrying(http, "POST", SITES, seen=naive, json=site)
    assert naive.attempts == ["RemoteProtocolError", "409"]  # the first one was created
    sandbox.fault(**drop_once)
    keyed = Seen()
    again = {**site, "external_site_id": "drop-2"}
    answer = retrying(
        http, "POST", SITES, seen=keyed, json=again, headers={"Idempotency-Key": "k-drop-2"}
    )
    assert keyed.attempts == ["RemoteProtocolError", "201"]
    assert answer is not None and answer.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(
    ("rule", "first"),
    [
        ({"truncate": True}, "RemoteProtocolError"),
        ({"empty": True}, "JSONDecodeError"),
        ({"malformed_json": True}, "JSONDecodeError"),
    ],
)
def test_broken_bodies(
    sandbox: Sandbox, http: httpx.Client, rule: dict[str, Any], first: str
) -> None:
    sandbox.fault(path=SITES, count=1, **rule)
    seen = Seen()
    answer = retrying(http, "GET", SITES, seen=seen)
    assert seen.attempts == [first, "200"] and answer is not None
    broken, whole = sandbox.requests(path=SITES)
    assert broken["fault"] is not None and broken["status"] == 200 and whole["fault"] is None
    if "malformed_json" in rule:  # the journal keeps what the client got: JSON cut in half
        assert broken["response_body"] == answer.text[: len(answer.text) // 2]
    if "empty" in rule:
        assert broken["response_body"] is None


def test_latency_is_real_time_and_seeded(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.fault(path=SITES, latency_ms=150, count=1)
    started = time.perf_counter()
    assert http.get(SITES).status_code == 200
    assert time.perf_counter() - started >= 0.15
    sandbox.clear_faults()

    def pattern() -> list[int]:
        sandbox.clear_faults()  # the numbering restarts: the same rule draws the same way
        sandbox.fault(path=SITES, status=500, probability=0.5, latency_ms={"min": 0, "max": 2})
        return [http.get(SITES).status_code for _ in range(16)]

    first, second = pattern(), pattern()
    assert first == second and {200, 500} <= set(first)
    assert sandbox.inbound_faults()[0]["matched"] == 16


def test_rules_match_method_client_tier_and_surface(sandbox: Sandbox, http: httpx.Client) -> None:
    partner = sandbox.partner["client_id"]
    sandbox.fault(client_id=partner, status=500)
    sandbox.fault(tier="api_key", method="DELETE", status=418)
    sandbox.fault(surface="apps", status=502)
    assert http.get(SITES).status_code == 200  # the API key is another client
    assert http.delete(f"{SITES}/1").status_code == 418
    token = sandbox.token()
    bearer = {"Authorization": f"Bearer {token}"}
    assert http.get(SITES, headers=bearer).status_code == 500
    assert http.get("/v1/sites").status_code == 502
    assert [r["fired"] for r in sandbox.inbound_faults()] == [1, 1, 1]


def test_bad_rules_are_refused_with_the_field(sandbox: Sandbox) -> None:
    for rule, field_name in (
        ({"status": 200}, "status"),
        ({"status": 500, "retry_after": 3}, "retry_after"),
        ({"path": "/x", "latency_ms": {"min": 5}}, "latency_ms"),
        ({"drop": True, "status": 503}, "drop"),
        ({"path": "/x"}, "inbound"),
        ({"tier": "apikey", "drop": True}, "tier"),
        ({"stauts": 500}, "stauts"),
    ):
        answer = sandbox.request("POST", "/_sandbox/faults", json={"inbound": [rule]})
        assert answer.status_code == 422, rule
        assert answer.json()["error"]["field"] == f"inbound[0].{field_name}"
    with pytest.raises(ExpectationFailed, match="422"):
        sandbox.fault(count=0, drop=True)
    assert sandbox.inbound_faults() == []


def test_settings_file_rules_are_in_force_and_come_back_on_reset(tmp_path: Path) -> None:
    config = tmp_path / "sandbox.yaml"
    config.write_text("faults:\n  - {path: /partner/v1/*, status: 503, count: 1}\n")
    settings = Settings.load(config, db=":memory:")
    with Sandbox(settings) as sandbox:
        headers = {"Authorization": f"Bearer {sandbox.api_key}"}
        statuses = [httpx.get(sandbox.url + SITES, headers=headers).status_code for _ in "ab"]
        assert statuses == [503, 200]
        sandbox.reset()
        assert sandbox.inbound_faults()[0]["fired"] == 0
    config.write_text("faults:\n  - {path: /x, status: 200}\n")
    with pytest.raises(SettingsError, match=r"faults\[0\]\.status"):
        Settings.load(config)


@pytest.mark.chekt_fault(path=SITES, status=503, count=1)
@pytest.mark.chekt_fault(method="DELETE", status=500)
def test_the_marker_puts_rules_in_force(chekt_sandbox: Sandbox) -> None:
    rules = chekt_sandbox.inbound_faults()
    assert [(r["path"] if "path" in r else r["method"]) for r in rules] == [SITES, "DELETE"]
    headers = {"Authorization": f"Bearer {chekt_sandbox.api_key}"}
    assert httpx.get(chekt_sandbox.url + SITES, headers=headers).status_code == 503


def test_a_scenario_fault_step_adds_a_rule_and_removes_it(sandbox: Sandbox, tmp_path: Path) -> None:
    scenario = tmp_path / "faults.yaml"
    scenario.write_text(
        "name: faults\nsteps:\n"
        f"  - fault: {{path: {SITES}, status: 503, count: 1}}\n"
        f"  - call: {{method: GET, path: {SITES}, as: api_key, expect_status: 503}}\n"
        f"  - call: {{method: GET, path: {SITES}, as: api_key, expect_status: 200}}\n"
    )
    report = play(scenario, sandbox=sandbox)
    assert report.passed, [r.detail for r in report.results]
    assert sandbox.inbound_faults() == []  # the run cleaned up after itself
