"""The example partner service, tested only through the sandbox's pytest plugin."""

from __future__ import annotations

import time

import pytest
from support import Partner

from sandbox import Sandbox

pytestmark = pytest.mark.chekt_sandbox(clock="virtual")


def _wait(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)
    assert condition(), "timed out"  # type: ignore[operator]


def test_a_signed_alarm_lifecycle_is_accepted_and_enriched(
    chekt_sandbox: Sandbox, partner: Partner
) -> None:
    ids = chekt_sandbox.emit(lifecycle="alarm", data={"site_id": 10001})
    chekt_sandbox.wait_for_delivery(event_id=ids[0], outcome="delivered")
    chekt_sandbox.clock.advance(360)
    for event_id in ids:
        attempt = chekt_sandbox.wait_for_delivery(event_id=event_id)
        assert attempt["outcome"] == "delivered" and attempt["status_code"] == 200
    assert [e["type"] for e in partner.state.processed] == [
        "alarm.created",
        "alarm.acknowledged",
        "alarm.dispatched",
        "alarm.resolved",
    ]
    [alarm] = partner.state.alarms.values()
    assert alarm["site_name"]  # enriched from the Partner API


def test_the_service_fetched_the_site_with_a_trace_id(
    chekt_sandbox: Sandbox, partner: Partner
) -> None:
    [event_id] = chekt_sandbox.emit("alarm.created", {"site_id": 10002})
    chekt_sandbox.wait_for_delivery(event_id=event_id, outcome="delivered")
    [call] = chekt_sandbox.assert_called(
        "GET",
        "/partner/v1/dealers/1001/sites/10002",
        status=200,
        client_id="example-partner",
        tier="assertion",
        times=1,
    )
    assert call["trace_id"]  # the service sent x-partner-trace-id
    chekt_sandbox.assert_called("POST", "/oauth/token", client_id="example-partner")


def test_a_bad_signature_is_rejected_and_the_journal_shows_it(
    chekt_sandbox: Sandbox, partner: Partner
) -> None:
    chekt_sandbox.subscribe(f"{partner.url}/chekt/webhooks", secret="whsec_not_the_right_one_0000")
    [event_id] = chekt_sandbox.emit("site.armed", {"site_id": 10001})
    _wait(lambda: len(chekt_sandbox.deliveries(event_id=event_id)) == 2)
    outcomes = sorted(
        (a["status_code"], a["outcome"]) for a in chekt_sandbox.deliveries(event_id=event_id)
    )
    assert outcomes == [(200, "delivered"), (401, "failed")]
    assert partner.state.rejected == 1


def test_a_duplicate_delivery_is_deduped(chekt_sandbox: Sandbox, partner: Partner) -> None:
    chekt_sandbox.faults(duplicate_rate=1.0)
    [event_id] = chekt_sandbox.emit("device.offline", {"site_id": 10001})
    _wait(lambda: len(chekt_sandbox.deliveries(event_id=event_id)) == 2)
    assert all(a["status_code"] == 200 for a in chekt_sandbox.deliveries(event_id=event_id))
    assert [e["id"] for e in partner.state.processed] == [event_id]


def test_retries_succeed_after_two_hours_down(chekt_sandbox: Sandbox, partner: Partner) -> None:
    partner.switches.down = True
    [event_id] = chekt_sandbox.emit("alarm.created", {"site_id": 10001})
    chekt_sandbox.wait_for_delivery(event_id=event_id, outcome="failed")
    for _ in range(4):  # two hours of outage, half an hour at a time
        chekt_sandbox.clock.advance(1800)
    _wait(lambda: len(chekt_sandbox.deliveries(event_id=event_id)) >= 4)
    assert all(a["status_code"] == 503 for a in chekt_sandbox.deliveries(event_id=event_id))
    partner.switches.down = False
    chekt_sandbox.clock.advance(3 * 3600)  # the 5th attempt is due about 2 h after the 4th
    delivered = chekt_sandbox.wait_for_delivery(event_id=event_id, outcome="delivered")
    assert delivered["attempt"] == 5
    assert [e["id"] for e in partner.state.processed] == [event_id]
