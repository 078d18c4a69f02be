"""The whole 24 h retry schedule of many failing events in one virtual-clock advance: the
clock moves on while attempts are in flight, yet every attempt is sent at its due time,
stamped and signed with it, and no retry is missed or sent early."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import Settings
from one_hop import TestClient
from receiver import Answer, Receiver

from sandbox import VirtualClock, create_app
from sandbox.webhooks import verify_signature

START = 1_900_000_000.0
EVENTS = 40
NOMINAL = (5, 300, 1800, 7200, 18000, 36000)


@pytest.fixture
def sandbox() -> Iterator[TestClient]:
    app = create_app(Settings(webhook_timeout=2.0), clock=VirtualClock(start=START))
    with TestClient(app) as client:
        yield client


def _journal(client: TestClient) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = client.get("/_sandbox/deliveries").json()
    return rows


def test_one_advance_runs_every_events_whole_schedule_on_time(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    rx.answers["/down"] = Answer(status=500)
    created = sandbox.post("/_sandbox/subscriptions", json={"url": f"{url}/down"})
    secret = created.json()["secret"]
    emitted = sandbox.post("/_sandbox/events", json={"random": EVENTS, "seed": 5})
    ids = emitted.json()["event_ids"]
    moved = sandbox.post("/_sandbox/clock/advance", json={"seconds": 86_400 + 60})
    assert moved.status_code == 200
    by_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _journal(sandbox):
        by_event[row["event_id"]].append(row)
    assert set(by_event) == set(ids)
    for journal in by_event.values():
        assert [a["attempt"] for a in journal] == list(range(1, 9))
        scheduled = [a["scheduled_at"] for a in journal]
        assert scheduled[-1] == scheduled[0] + 86_400  # pinned: exactly 24 h after the first
        for gap, nominal in zip(itertools.pairwise(scheduled[:-1]), NOMINAL, strict=True):
            assert nominal * 0.9 <= gap[1] - gap[0] <= nominal * 1.1
        assert all(a["sent_at"] == a["scheduled_at"] for a in journal)  # never early or late
        assert [a["outcome"] for a in journal[:-1]] == ["failed"] * 7
        # the first final attempt ends 24 h of failure and disables the subscription: the
        # others are given up unsent
        assert journal[-1]["outcome"] in ("failed", "disabled")
        assert journal[-1]["next_at"] is None
    sent = {(a["delivery_id"], a["attempt"]): a for rows in by_event.values() for a in rows}
    received = rx.at("/down")
    assert len(received) == sum(1 for a in sent.values() if a["outcome"] == "failed")
    for got in received:
        attempt = sent[(got.headers["x-chekt-delivery-id"], int(got.headers["x-chekt-attempt"]))]
        # stamped and signed at its own due time, even when the clock had moved on
        assert float(got.headers["x-sandbox-time"]) == pytest.approx(attempt["sent_at"], abs=1e-6)
        verify_signature(secret, got.headers, got.body, now=attempt["sent_at"])
