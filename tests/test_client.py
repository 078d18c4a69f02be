"""The Python API: a real server in a thread, driven only through /_sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from helpers import live_server
from receiver import Receiver

from sandbox import Sandbox, SandboxError, SandboxServerError, Settings
from sandbox.errors import ExpectationFailed
from sandbox.scenario.loader import parse
from sandbox.webhooks import verify_signature


def test_context_manager_serves_and_stops() -> None:
    with Sandbox() as sandbox:
        url = sandbox.url
        assert httpx.get(f"{url}/.well-known/jwks.json").status_code == 200
        assert sandbox.api_key.startswith("chekt_test_")
        assert sandbox.partner["kind"] == "platform_partner"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/.well-known/jwks.json", timeout=1)


def test_emit_subscribe_and_wait_for_delivery() -> None:
    rx = Receiver()
    with live_server(rx.app) as hook, Sandbox(clock="virtual") as sandbox:
        sub = sandbox.subscribe(f"{hook}/in", events=["alarm.created"])
        [event_id] = sandbox.emit("alarm.created", {"priority": "LOW"})
        attempt = sandbox.wait_for_delivery(event_id=event_id, outcome="delivered")
        assert attempt["status_code"] == 200
        [got] = rx.at("/in")
        verify_signature(sub["secret"], got.headers, got.body, now=sandbox.clock.now())
        assert json.loads(got.body)["data"]["priority"] == "LOW"
        before = sandbox.clock.now()
        assert sandbox.clock.advance(60) == before + 60


def test_assert_called_and_its_failure_message() -> None:
    with Sandbox() as sandbox:
        client = httpx.Client(base_url=sandbox.url)
        token = sandbox.token()
        client.post(
            "/partner/v1/dealers/1001/sites",
            json={"external_site_id": "c-1", "name": "Client", "timezone": "UTC"},
            headers={
                "Authorization": f"Bearer {token}",
                "x-partner-trace-id": "6f1c1d2e-8a0b-4c7e-9b51-0d2c7e5f4a11",
            },
        )
        hits = sandbox.assert_called(
            "POST",
            "/partner/v1/dealers/*/sites",
            json={"name": "Client"},
            status=201,
            trace_id="6f1c1d2e-8a0b-4c7e-9b51-0d2c7e5f4a11",
        )
        assert len(hits) == 1
        sandbox.assert_called("POST", "/partner/v1/dealers/*/sites", times=1)
        sandbox.assert_not_called("DELETE")
        with pytest.raises(SandboxError) as failure:
            sandbox.assert_called("POST", "/partner/v1/dealers/*/sites", json={"name": "Other"})
        message = str(failure.value)
        assert "nearest recorded requests" in message
        assert "name is 'Client', expected 'Other'" in message
        with pytest.raises(SandboxError, match="expected no POST"):
            sandbox.assert_not_called("POST")
        found = sandbox.wait_for_request("POST", "/partner/v1/dealers/1001/sites", timeout=1)
        assert found["client_id"] == sandbox.partner["client_id"]
        with pytest.raises(SandboxError, match=r"within 0\.2 s"):
            sandbox.wait_for_request("PATCH", timeout=0.2)
        client.close()


def test_reset_isolates_state() -> None:
    with Sandbox() as sandbox:
        headers = {"Authorization": f"Bearer {sandbox.api_key}"}
        httpx.post(
            f"{sandbox.url}/partner/v1/dealers/1001/sites",
            headers=headers,
            json={"external_site_id": "gone", "name": "Gone", "timezone": "UTC"},
        )
        sandbox.reset()
        sites = httpx.get(f"{sandbox.url}/partner/v1/dealers/1001/sites", headers=headers)
        assert "gone" not in sites.text
        assert sandbox.requests(path="/partner/v1/dealers/1001/sites") == [sandbox.requests()[-1]]


def test_server_side_failures_are_raised_on_the_owning_thread() -> None:
    sandbox = Sandbox(clock="virtual").start()
    try:
        assert sandbox.app is not None
        store = sandbox.app.state.services.world.store
        # a subscription the dispatcher cannot render: a bug inside the server
        store.execute(
            "INSERT INTO webhooks (webhook_id, client_id, url, events, secret, status, profile, "
            "created_at) VALUES ('wh_broken', NULL, 'http://127.0.0.1:9/x', '[\"site.armed\"]', "
            "'whsec_0123456789abcdef', 'enabled', 'no-such-profile', 0)"
        )
        sandbox.emit("site.armed")
        import time

        deadline = time.monotonic() + 5
        while not sandbox.server_errors() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        with pytest.raises(SandboxServerError, match="no-such-profile"):
            sandbox.stop()


def test_control_errors_are_readable() -> None:
    with Sandbox() as sandbox, pytest.raises(SandboxError, match="422"):
        sandbox.emit("alarm.exploded")
    with pytest.raises(SandboxError, match="not running"):
        Sandbox().requests()


def test_partner_is_the_seeded_one_whatever_else_is_registered() -> None:
    with Sandbox(clock="virtual") as sandbox:  # same created_at: the id order would decide
        seeded = sandbox.partner["client_id"]
        sandbox.register_client(
            client_id="a-partner",
            client_secret="a-partner-secret-0123456789",
            kind="platform_partner",
            dealer_ids=[1002],
        )
        assert sandbox.partner["client_id"] == seeded != "a-partner"


def test_every_library_error_shares_one_root(tmp_path: Path) -> None:
    """``except SandboxError`` catches whatever the library raises on purpose."""
    failures: list[Callable[[], object]] = [
        lambda: Settings(port=-1).validate(),
        lambda: parse("name: x\nsteps: [{explode: 1}]\n"),
        lambda: verify_signature("s" * 16, {}, b"{}"),
        lambda: Settings.load(tmp_path / "missing.yaml"),
    ]
    for fail in failures:
        with pytest.raises(SandboxError):
            fail()
    with Sandbox() as sandbox, pytest.raises(ExpectationFailed) as refused:
        sandbox.call("POST", "/_sandbox/clock/advance", {"seconds": -1})
    assert isinstance(refused.value, AssertionError)  # test runners show it as a failed check
