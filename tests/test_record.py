"""The operational record: a webhook's alarm reads back over ``/v1``, moves through its state
machine by API calls and emitted events alike, and every move is an event, an audit entry and
a signed webhook to the apps whose scopes allow it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import Settings, live_server
from one_hop import TestClient
from PIL import Image
from receiver import Receiver, wait_for

from sandbox import VirtualClock, create_app
from sandbox.auth.clients import APPS_SCOPES
from sandbox.webhooks import verify_signature
from sandbox.world import media

START = 1_900_000_000.0
APPS = list(APPS_SCOPES)


@pytest.fixture(scope="module")
def hooks() -> Iterator[tuple[Receiver, str]]:
    rx = Receiver()
    with live_server(rx.app) as url:
        yield rx, url


@pytest.fixture
def sandbox() -> Iterator[TestClient]:
    app = create_app(Settings(webhook_timeout=1.0), clock=VirtualClock(start=START))
    with TestClient(app) as client:
        yield client


def app_key(
    client: TestClient, scopes: list[str], url: str | None = None, dealer_id: int = 1001
) -> dict[str, Any]:
    body: dict[str, Any] = {"dealer_id": dealer_id, "scopes": scopes, "name": "test app"}
    if url is not None:
        body["webhook"] = {"url": url}
    made = client.post("/_sandbox/api-keys", json=body)
    assert made.status_code == 201, made.text
    return dict(made.json())


def bearer(key: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


def arrived(rx: Receiver, path: str, count: int) -> list[dict[str, Any]]:
    got = wait_for(lambda: len(rx.at(path)) >= count and rx.at(path))
    return [json.loads(r.body) for r in got]


def test_webhook_to_record_to_webhook(sandbox: TestClient, hooks: tuple[Receiver, str]) -> None:
    rx, url = hooks
    key = app_key(sandbox, APPS, f"{url}/walk")
    secret = key["webhook"]["secret"]
    emitted = sandbox.post(
        "/_sandbox/events", json={"type": "alarm.created", "data": {"site_id": 10001}}
    )
    assert emitted.status_code == 202, emitted.text
    [created] = arrived(rx, "/walk", 1)
    alarm_id = created["data"]["alarm_id"]

    alarm = sandbox.get(f"/v1/alarms/{alarm_id}", headers=bearer(key))
    assert alarm.status_code == 200, alarm.text
    record = alarm.json()
    for name in ("alarm_id", "site_id", "dealer_id", "device_id", "zone_number", "priority"):
        assert record[name] == created["data"][name], name
    assert record["trigger"] == created["data"]["trigger"] and record["state"] == "created"
    assert record["snapshot_url"] == created["data"]["snapshot_url"]

    picture = sandbox.get(record["snapshot_url"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(picture.content)).size == media.SNAPSHOT_SIZE

    acked = sandbox.post(
        f"/v1/alarms/{alarm_id}/acknowledge", headers=bearer(key), json={"reason": "on video"}
    )
    assert acked.status_code == 200 and acked.json()["state"] == "acknowledged", acked.text
    got = wait_for(lambda: len(rx.at("/walk")) >= 2 and rx.at("/walk"))
    ack = got[1]
    verify_signature(secret, ack.headers, ack.body, now=START)  # raises unless genuine
    body = json.loads(ack.body)
    assert body["type"] == "alarm.acknowledged" and body["data"]["alarm_id"] == alarm_id
    assert body["data"]["reason"] == "on video"

    dispatched = sandbox.post(
        f"/v1/alarms/{alarm_id}/dispatch", headers=bearer(key), json={"responder_type": "guard"}
    )
    assert dispatched.json()["state"] == "dispatched", dispatched.text
    resolved = sandbox.post(
        f"/v1/alarms/{alarm_id}/resolve", headers=bearer(key), json={"resolution": "handled"}
    )
    assert resolved.json()["state"] == "resolved", resolved.text

    listed = sandbox.get(
        "/v1/events",
        headers=bearer(key),
        params={"type": "alarm.created,alarm.acknowledged,alarm.dispatched,alarm.resolved"},
    ).json()["data"]
    mine = [e for e in listed if e["data"].get("alarm_id") == alarm_id]
    assert [e["type"] for e in mine] == [
        "alarm.created",
        "alarm.acknowledged",
        "alarm.dispatched",
        "alarm.resolved",
    ]
    assert mine[0]["id"] == created["id"]
    assert [e["event_id"] for e in mine] == sorted(e["event_id"] for e in mine)
    sent = [
        json.loads(r.body) for r in wait_for(lambda: len(rx.at("/walk")) >= 4 and rx.at("/walk"))
    ]
    assert [e["id"] for e in mine] == [e["id"] for e in sent]

    again = sandbox.post(f"/v1/alarms/{alarm_id}/acknowledge", headers=bearer(key))
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "invalid_transition" and "resolved" in error["message"]

    trail = sandbox.get("/_sandbox/audit", params={"target": f"alarm {alarm_id}"}).json()
    assert [t["action"] for t in trail] == [e["type"] for e in mine]
    assert {t["actor_id"] for t in trail[1:]} == {key["client_id"]}
    assert all(t["request_id"].startswith("req_") for t in trail)


def test_an_emitted_move_needs_an_alarm_that_can_take_it(sandbox: TestClient) -> None:
    unknown = sandbox.post(
        "/_sandbox/events", json={"type": "alarm.acknowledged", "data": {"alarm_id": "A-1"}}
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "alarm_not_found"
    resolved = sandbox.get("/_sandbox/alarms", params={"state": "resolved", "limit": 1}).json()
    closed = resolved[0]["alarm_id"]
    refused = sandbox.post(
        "/_sandbox/events", json={"type": "alarm.acknowledged", "data": {"alarm_id": closed}}
    )
    assert refused.status_code == 409 and "is resolved" in refused.json()["error"]["message"]
    on_purpose = sandbox.post(
        "/_sandbox/events",
        json={"type": "alarm.acknowledged", "data": {"alarm_id": closed}, "adversarial": True},
    )
    assert on_purpose.status_code == 202
    assert sandbox.get(f"/_sandbox/alarms/{closed}").json()["state"] == "resolved"
    # with no alarm named, one that can take the move is picked
    sandbox.post("/_sandbox/events", json={"type": "alarm.created", "data": {"site_id": 10001}})
    picked = sandbox.post(
        "/_sandbox/events", json={"type": "alarm.acknowledged", "data": {"site_id": 10001}}
    )
    assert picked.status_code == 202, picked.text
    assert sandbox.get("/_sandbox/alarms", params={"state": "acknowledged"}).json()


def test_a_lifecycle_step_the_record_no_longer_allows_is_void(sandbox: TestClient) -> None:
    key = app_key(sandbox, APPS)
    ids = sandbox.post("/_sandbox/events", json={"lifecycle": "alarm"}).json()["event_ids"]
    alarm = sandbox.get("/_sandbox/alarms", params={"limit": 1}).json()[0]
    if alarm["dealer_id"] != 1001:
        key = app_key(sandbox, APPS, dealer_id=alarm["dealer_id"])
    sandbox.post(f"/v1/alarms/{alarm['alarm_id']}/escalate", headers=bearer(key), json={})
    sandbox.post("/_sandbox/clock/advance", json={"seconds": 400})
    after = sandbox.get(f"/_sandbox/alarms/{alarm['alarm_id']}").json()
    # the scheduled acknowledgement found it escalated: void; dispatch and resolve went on
    assert after["state"] == "resolved" and after["acknowledged_at"] is None
    assert after["escalated_at"] and after["dispatched_at"]
    trail = sandbox.get("/_sandbox/audit", params={"target": f"alarm {alarm['alarm_id']}"}).json()
    assert any(t["action"].startswith("alarm.acknowledged (void") for t in trail)
    assert len(ids) == 4


def test_the_seeded_world_has_a_past(sandbox: TestClient) -> None:
    key = app_key(sandbox, APPS)
    alarms = sandbox.get("/v1/alarms", headers=bearer(key))
    assert alarms.status_code == 200 and int(alarms.headers["x-total-count"]) >= 1
    events = sandbox.get("/v1/events", headers=bearer(key), params={"limit": 5}).json()
    assert len(events["data"]) == 5 and events["page"]["has_more"]
    nxt = sandbox.get(
        "/v1/events", headers=bearer(key), params={"cursor": events["page"]["cursor"]}
    ).json()
    first_ids = {e["id"] for e in events["data"]}
    assert nxt["data"] and not first_ids & {e["id"] for e in nxt["data"]}
    created = next(e for e in events["data"] + nxt["data"] if e["type"] == "alarm.created")
    shown = sandbox.get(created["data"]["snapshot_url"])
    assert shown.status_code == 200 and shown.content[:2] == b"\xff\xd8"
    sites = sandbox.get("/v1/sites", headers=bearer(key)).json()
    assert sites and all(s["dealer_id"] == 1001 for s in sites)
    assert all(s["arming"]["partitions"] for s in sites)


def test_a_reset_keeps_the_seeded_past_and_forgets_what_was_to_come(
    sandbox: TestClient,
) -> None:
    before = sandbox.get("/_sandbox/alarms").json()
    sandbox.post("/_sandbox/events", json={"lifecycle": "alarm"})
    assert sandbox.post("/_sandbox/reset").status_code == 200
    after = sandbox.get("/_sandbox/alarms").json()
    assert [a["alarm_id"] for a in after] == [a["alarm_id"] for a in before]
    key = app_key(sandbox, APPS)
    assert sandbox.get("/v1/events", headers=bearer(key)).json()["data"]
    sandbox.post("/_sandbox/clock/advance", json={"seconds": 600})
    assert sandbox.get("/_sandbox/deliveries").json() == []


def test_partner_api_writes_are_audited_with_their_request_id(sandbox: TestClient) -> None:
    key = next(
        k["key"]
        for k in sandbox.get("/_sandbox/credentials").json()["api_keys"]
        if "create:sites" in k["scopes"]
    )
    made = sandbox.post(
        "/partner/v1/dealers/1001/sites",
        headers={"Authorization": f"Bearer {key}"},
        json={"external_site_id": "audited-1", "name": "Audited", "timezone": "Europe/Berlin"},
    )
    assert made.status_code == 201, made.text
    [entry] = sandbox.get("/_sandbox/audit", params={"surface": "partner"}).json()
    assert entry["action"] == "POST /partner/v1/dealers/{dealer_id}/sites"
    assert entry["target"] == "/partner/v1/dealers/1001/sites"
    assert entry["request_id"] == made.headers["x-request-id"]
    assert entry["actor_kind"] == "app"


def test_a_random_batch_takes_consecutive_seqs_and_audits_each_happening(
    sandbox: TestClient,
) -> None:
    """A random emit writes its happenings together (one statement for their events, one
    for their audit rows, seqs reserved at once): the record reads as if each was logged
    alone, and the next happening carries on from the batch's last seq."""
    store = sandbox.app.state.services.world.store  # type: ignore[attr-defined]
    batch = sandbox.post("/_sandbox/events", json={"random": 40, "seed": 3})
    assert batch.status_code == 202, batch.text
    ids = batch.json()["event_ids"]
    marks = ",".join("?" * len(ids))
    rows = store.all(f"SELECT event_id, seq FROM events WHERE event_id IN ({marks})", ids)
    seqs = {row["event_id"]: row["seq"] for row in rows}
    first = seqs[ids[0]]
    assert [seqs[event_id] for event_id in ids] == list(range(first, first + len(ids)))
    audited = store.all(f"SELECT event_id, request_id FROM audit WHERE event_id IN ({marks})", ids)
    assert sorted(row["event_id"] for row in audited) == sorted(ids)
    assert {row["request_id"] for row in audited} == {batch.headers["x-request-id"]}
    [after] = sandbox.post("/_sandbox/events", json={"type": "site.armed"}).json()["event_ids"]
    assert store.scalar("SELECT seq FROM events WHERE event_id = ?", (after,)) == first + len(ids)
