"""The dealer API's record routes (CONTRACT §5.2, §5.5), played over HTTP as a dealer's
dashboard plays them: a site's contacts and their SMS validation on the sandbox clock, the
activity log paged to its end by cursor, the media of the events found, and a verification
request that reaches a receiver as ``verification.requested``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from helpers import OTHER_DEALER_KEY, TEST_SETTINGS, Api
from one_hop import TestClient
from receiver import Receiver, wait_for

from sandbox import VirtualClock, create_app
from sandbox.world import activity, events

START = 1_900_000_000.0
SITE, OTHER_SITE = 10001, 10006  # of dealer 1001 (the seeded key's), of dealer 1002
CONTACTS = f"/ext/v1/sites/{SITE}/contacts"
ALL_TIME = {"start_time": "2024-01-01T00:00:00Z", "end_time": "2031-01-01T00:00:00Z"}


@pytest.fixture
def dealer() -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A sandbox on a virtual clock, and the seeded dealer key's headers (dealer 1001)."""
    app = create_app(replace(TEST_SETTINGS, webhook_timeout=1.0), clock=VirtualClock(start=START))
    with TestClient(app) as client:
        yield client, Api.bearer(Api(client).key)
    app.state.services.close()


def _error(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    return error


# ---- contacts --------------------------------------------------------------------------------


def test_contacts_crud_and_an_sms_validation_that_completes_on_the_clock(
    dealer: tuple[TestClient, dict[str, str]],
) -> None:
    client, key = dealer
    seeded = client.get(CONTACTS, headers=key).json()
    assert isinstance(seeded, list) and seeded  # the seeded world has a call list
    assert all(c["sms_validation"].keys() == {"status", "requested_at"} for c in seeded)
    new = {
        "external_contact_id": "crm-42",
        "first_name": "Dana",
        "last_name": "Reyes",
        "title": "Owner",
        "slot_number": 9,
        "email_address": "dana@example.com",
        "phone_number": "+15551230000",
        "sms_alarm_enabled": 1,
        "email_alarm_enabled": 0,
    }
    made = client.post(CONTACTS, json=new, headers=key)
    assert made.status_code == 201, made.text
    contact = made.json()
    assert {k: contact[k] for k in new} == new
    assert contact["sms_validation"] == {"status": 0, "requested_at": None}
    item = f"{CONTACTS}/{contact['contact_id']}"
    assert client.get(CONTACTS, headers=key).json()[-1] == contact  # slot 9: last
    assert _error(client.post(CONTACTS, json=new, headers=key), 409)["code"] == "conflict"

    changed = client.put(
        item, json={"title": "Manager", "external_contact_id": "crm-42"}, headers=key
    )
    assert changed.status_code == 200 and changed.json()["title"] == "Manager"
    moved = client.put(item, json={"external_contact_id": "crm-43"}, headers=key)
    assert _error(moved, 422)["detail"] == "external_contact_id"
    assert client.get(item, headers=key).json()["external_contact_id"] == "crm-42"

    started = client.post(f"{item}/validation", headers=key)
    assert started.status_code == 202, started.text
    pending = started.json()["sms_validation"]
    assert pending["status"] == 0 and pending["requested_at"]
    client.post("/_sandbox/clock/advance", json={"seconds": 10})
    assert client.get(item, headers=key).json()["sms_validation"]["status"] == 0
    client.post("/_sandbox/clock/advance", json={"seconds": 25})
    assert client.get(item, headers=key).json()["sms_validation"] == {**pending, "status": 1}
    renumbered = client.put(item, json={"phone_number": "+15559990000"}, headers=key).json()
    assert renumbered["sms_validation"] == {"status": 0, "requested_at": None}  # a new phone

    assert client.delete(item, headers=key).status_code == 204
    assert _error(client.get(item, headers=key), 404)["code"] == "contact_not_found"
    trail = client.get("/_sandbox/audit", params={"surface": "dealer"}).json()
    assert [t["action"] for t in trail] == [
        "contact.created",
        "contact.updated",
        "contact.validation_requested",
        "contact.updated",
        "contact.deleted",
    ]
    assert {t["dealer_id"] for t in trail} == {1001}


def test_contacts_refuse_bad_input_and_other_dealers(
    dealer: tuple[TestClient, dict[str, str]],
) -> None:
    client, key = dealer
    missing = client.post(CONTACTS, json={"first_name": "A", "last_name": "B"}, headers=key)
    assert _error(missing, 422)["detail"] == "external_contact_id"
    flag = {"external_contact_id": "x", "first_name": "A", "last_name": "B", "sms_alarm_enabled": 2}
    assert (
        _error(client.post(CONTACTS, json=flag, headers=key), 422)["detail"] == "sms_alarm_enabled"
    )
    theirs = f"/ext/v1/sites/{OTHER_SITE}/contacts"
    assert _error(client.get(theirs, headers=key), 404)["code"] == "site_not_found"
    own = client.get(CONTACTS, headers=key).json()[0]["contact_id"]
    as_other = client.get(f"{CONTACTS}/{own}", headers=Api.bearer(OTHER_DEALER_KEY))
    assert _error(as_other, 404)["code"] == "site_not_found"
    no_phone = client.post(
        CONTACTS,
        json={"external_contact_id": "y", "first_name": "A", "last_name": "B"},
        headers=key,
    ).json()
    refused = client.post(f"{CONTACTS}/{no_phone['contact_id']}/validation", headers=key)
    assert _error(refused, 422)["detail"] == "phone_number"


# ---- activity log ----------------------------------------------------------------------------


def _search(client: TestClient, key: dict[str, str], **body: Any) -> Any:
    return client.post("/ext/v1/activity-logs/search", json={**ALL_TIME, **body}, headers=key)


def _page_through(
    client: TestClient, key: dict[str, str], limit: int, **body: Any
) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        answer = _search(client, key, limit=limit, cursor=cursor, **body)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["data"]) <= limit
        entries += page["data"]
        if not page["page"]["has_more"]:
            assert page["page"]["cursor"] is None
            return entries
        cursor = page["page"]["cursor"]
    raise AssertionError("the search never ended")


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_the_activity_log_pages_to_its_end_with_no_duplicate_and_no_gap(
    dealer: tuple[TestClient, dict[str, str]], order: str
) -> None:
    client, key = dealer
    for event_type in ("alarm.created", "site.armed", "alarm.created", "site.disarmed"):
        # at one instant of the stopped clock: only the event id tells them apart
        sent = client.post("/_sandbox/events", json={"type": event_type, "data": {"site_id": SITE}})
        assert sent.status_code == 202, sent.text
    whole = _search(client, key, site_id=SITE, limit=1000, sort_order=order).json()
    assert not whole["page"]["has_more"] and len(whole["data"]) > 15
    assert len({e["event_time"] for e in whole["data"]}) < len(whole["data"])  # ties
    paged = _page_through(client, key, 3, site_id=SITE, sort_order=order)
    assert [e["event_id"] for e in paged] == [e["event_id"] for e in whole["data"]]
    assert paged == whole["data"]
    keys = [(e["event_time"], e["event_id"]) for e in paged]
    assert keys == sorted(keys, reverse=order == "desc")
    assert {e["site_id"] for e in paged} == {SITE}
    categories = {
        c["id"] for c in client.get("/ext/v1/activity-logs/categories", headers=key).json()
    }
    assert {20007, 20003, 20022, 20002} <= categories
    assert {e["category_id"] for e in paged} <= categories
    videos = _page_through(client, key, 2, site_id=SITE, sort_order=order, category_id=20007)
    assert videos == [e for e in paged if e["category_id"] == 20007] and videos
    assert all(e["device_id"] and e["device_name"] and e["zone_number"] for e in videos)


def test_the_activity_log_refuses_bad_searches_and_other_dealers(
    dealer: tuple[TestClient, dict[str, str]],
) -> None:
    client, key = dealer
    assert _error(_search(client, key, site_id=OTHER_SITE), 404)["code"] == "site_not_found"
    assert _error(_search(client, key, start_time="yesterday"), 422)["detail"] == "start_time"
    backwards = _search(client, key, start_time="2031-01-01", end_time="2024-01-01")
    assert _error(backwards, 422)["detail"] == "end_time"
    assert _error(_search(client, key, limit=0), 422)["detail"] == "limit"
    assert _error(_search(client, key, category_id=1), 422)["detail"] == "category_id"
    assert _error(_search(client, key, cursor="not-ours"), 422)["detail"] == "cursor"
    cursor = _search(client, key, limit=1).json()["page"]["cursor"]
    elsewhere = _search(client, key, limit=1, cursor=cursor, sort_order="asc")
    assert _error(elsewhere, 422)["detail"] == "cursor"  # a cursor belongs to its search
    mine = {e["event_id"] for e in _search(client, key, limit=1000).json()["data"]}
    other = _search(client, Api.bearer(OTHER_DEALER_KEY), limit=1000).json()["data"]
    assert other and not mine & {e["event_id"] for e in other}


def test_every_happening_of_the_record_has_an_activity_category() -> None:
    assert set(events.APPLY) <= set(activity.ACTIVITY)


# ---- media of events -------------------------------------------------------------------------


def _fetch(client: TestClient, url: str) -> Any:
    parts = urlsplit(url)
    return client.get(f"{parts.path}?{parts.query}")


def test_video_urls_of_the_events_found_serve_an_mp4_and_a_jpeg(
    dealer: tuple[TestClient, dict[str, str]],
) -> None:
    client, key = dealer
    found = _search(client, key, site_id=SITE, category_id=20007, limit=1).json()["data"]
    arming = _search(client, key, site_id=SITE, category_id=30001, limit=1).json()["data"]
    asked = [found[0]["event_id"], arming[0]["event_id"], 999_999_999]
    answer = client.post("/ext/v1/events-video-urls", json={"event_ids": asked}, headers=key)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["expires_in"] > 0 and [e["event_id"] for e in body["events"]] == asked
    video, no_media, unknown = body["events"]
    for empty in (no_media, unknown):
        assert empty == {**empty, "mp4": None, "thumbnail": None, "snapshots": []}
    clip = _fetch(client, video["mp4"])
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
    assert clip.content[4:8] == b"ftyp"
    frame = _fetch(client, video["thumbnail"])
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
    assert frame.content[:3] == b"\xff\xd8\xff"
    assert video["snapshots"] and video["snapshots"][0] == video["thumbnail"]
    theirs = client.post(
        "/ext/v1/events-video-urls",
        json={"event_ids": asked[:1]},
        headers=Api.bearer(OTHER_DEALER_KEY),
    ).json()["events"]
    assert theirs == [{"event_id": asked[0], "mp4": None, "thumbnail": None, "snapshots": []}]
    for bad in ({"event_ids": []}, {"event_ids": [0]}, {"event_ids": ["1"]}, {"ids": [1]}):
        refused = client.post("/ext/v1/events-video-urls", json=bad, headers=key)
        assert _error(refused, 422)["detail"] == "event_ids"


# ---- verification requests -------------------------------------------------------------------


def test_a_verification_request_reaches_a_receiver_as_verification_requested(
    dealer: tuple[TestClient, dict[str, str]], receiver: tuple[Receiver, str]
) -> None:
    client, key = dealer
    rx, url = receiver
    app = client.post(
        "/_sandbox/api-keys",
        json={"dealer_id": 1001, "scopes": ["events:read"], "webhook": {"url": f"{url}/app"}},
    )
    assert app.status_code == 201, app.text
    sent = client.post(
        "/_sandbox/events", json={"type": "alarm.created", "data": {"site_id": SITE}}
    )
    assert sent.status_code == 202, sent.text
    [alarm] = client.get("/_sandbox/alarms", params={"site_id": SITE, "limit": 1}).json()
    newest = _search(client, key, site_id=SITE, category_id=20007, limit=1).json()["data"][0]
    site_contacts = client.get(CONTACTS, headers=key).json()
    chosen = [c["contact_id"] for c in site_contacts[:2]]
    asked = {"contacts": chosen, "method": "sms", "message": "Is this you?", "timeout_seconds": 120}
    answer = client.post(
        f"/ext/v1/events/{newest['event_id']}/verifications", json=asked, headers=key
    )
    assert answer.status_code == 201, answer.text
    verification = answer.json()["data"]
    assert verification["event_id"] == newest["event_id"]
    assert verification["alarm_id"] == alarm["alarm_id"]
    assert verification["status"] == "sent" and verification["method"] == "sms"
    assert [s["contact_id"] for s in verification["sent_to"]] == chosen
    assert [s["phone"] for s in verification["sent_to"]] == [
        c["phone_number"] for c in site_contacts[:2]
    ]

    def heard() -> list[dict[str, Any]]:
        bodies = [json.loads(r.body) for r in rx.at("/app")]
        return [b for b in bodies if b["type"] == "verification.requested"]

    [hook] = wait_for(heard)
    data = hook["data"]
    assert data["verification_id"] == verification["verification_id"]
    assert data["alarm_id"] == alarm["alarm_id"] and data["site_id"] == SITE
    assert data["method"] == "sms" and data["timeout_seconds"] == 120
    assert [c["contact_id"] for c in data["contacts"]] == chosen
    logged = _search(client, key, site_id=SITE, category_id=10002, limit=1).json()["data"]
    assert logged and logged[0]["status"] == "sent"

    by_alarm = {"alarm_id": alarm["alarm_id"], "contacts": chosen[:1], "method": "email"}
    second = client.post("/ext/v1/verifications", json=by_alarm, headers=key)
    assert second.status_code == 201, second.text
    assert second.json()["data"]["event_id"] == newest["event_id"]
    wait_for(lambda: len(heard()) == 2)


def test_verification_requests_refuse_what_the_record_cannot_take(
    dealer: tuple[TestClient, dict[str, str]],
) -> None:
    client, key = dealer
    contact = client.get(CONTACTS, headers=key).json()[0]["contact_id"]
    past = _search(client, key, site_id=SITE, category_id=20007, limit=1).json()["data"][0]
    resolved = client.post(
        f"/ext/v1/events/{past['event_id']}/verifications",
        json={"contacts": [contact]},
        headers=key,
    )
    assert _error(resolved, 409)["code"] == "invalid_transition"  # seeded alarms are history
    client.post("/_sandbox/events", json={"type": "alarm.created", "data": {"site_id": SITE}})
    open_alarm = _search(client, key, site_id=SITE, category_id=20007, limit=1).json()["data"][0]
    path = f"/ext/v1/events/{open_alarm['event_id']}/verifications"
    stranger = client.post(path, json={"contacts": [contact, 1]}, headers=key)
    assert _error(stranger, 422)["detail"] == "contacts"
    arming = _search(client, key, site_id=SITE, category_id=30001, limit=1).json()["data"][0]
    not_alarm = client.post(
        f"/ext/v1/events/{arming['event_id']}/verifications",
        json={"contacts": [contact]},
        headers=key,
    )
    assert _error(not_alarm, 422)["detail"] == "event_id"
    both = {"contacts": [contact], "event_id": open_alarm["event_id"], "alarm_id": "A-1"}
    assert _error(client.post("/ext/v1/verifications", json=both, headers=key), 422)["detail"]
    theirs = client.post(path, json={"contacts": [contact]}, headers=Api.bearer(OTHER_DEALER_KEY))
    assert _error(theirs, 404)["code"] == "event_not_found"
    assert client.get("/_sandbox/audit", params={"action": "verification.requested"}).json() == []
