"""Issue #14's acceptance, end to end: a dealer dashboard played over HTTP only, against a
real server on a virtual clock, with a ``dealer-v1`` receiver on another port.

It lists sites, arms and disarms a whole site and one partition (the state reads back and the
``arming_status`` / ``partition_arming_status`` webhooks arrive, signed), keeps a contact and
validates it by SMS once the clock has moved, watches a camera's live view, pages the
activity log to its end and fetches the media of the alarms it found."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from helpers import Settings, live_server
from receiver import Receiver, wait_for
from test_dealer_live import parts

from sandbox import VirtualClock, create_app
from sandbox.server import ThreadedServer
from sandbox.webhooks import verify_signature

START = 1_900_000_000.0
DEALER, SITE = 1002, 10006  # dealer 1002's first site has two partitions
SITE_FIELDS = {
    "site_id": int,
    "site_name": str,
    "address": str,
    "account_number": str,
    "dealer_name": str,
    "is_activated": bool,
    "is_partition_enabled": bool,
    "partitions": list,
}


class Dashboard:
    """What the dashboard holds: its HTTP client (with the dealer's key), the sandbox's
    control client, the receiver of its dealer-v1 webhooks and their secret."""

    def __init__(self, http: httpx.Client, control: httpx.Client, rx: Receiver, secret: str):
        self.http, self.control, self.rx, self.secret = http, control, rx, secret

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        answer = self.http.request(method, path, **kwargs)
        assert answer.status_code == status, f"{method} {path}: {answer.text}"
        return answer.json() if answer.content else None

    def advance(self, seconds: float) -> None:
        answer = self.control.post("/_sandbox/clock/advance", json={"seconds": seconds})
        assert answer.status_code == 200, answer.text

    def webhooks(self, event_type: str) -> list[dict[str, Any]]:
        """The dealer-v1 bodies of ``event_type`` received so far, each signature checked."""
        found = []
        now = float(self.control.get("/_sandbox/clock").json()["now"])
        for got in self.rx.at("/dealer"):
            verify_signature(self.secret, got.headers, got.body, now=now)
            body = json.loads(got.body)
            if body["event_type"] == event_type:
                found.append(body)
        return found


def _local(url: str) -> str:
    split = urlsplit(url)
    return f"{split.path}?{split.query}"


@pytest.fixture
def dashboard() -> Iterator[Dashboard]:
    rx = Receiver()
    app = create_app(Settings(allowed_hosts=("*",)), clock=VirtualClock(start=START))
    with (
        live_server(rx.app) as hooks,
        ThreadedServer(app) as url,
        httpx.Client(base_url=url, timeout=10) as control,
    ):
        made = control.post(
            "/_sandbox/api-keys",
            json={
                "dealer_id": DEALER,
                "scopes": ["sites:read"],
                "name": "dashboard",
                "webhook": {"url": f"{hooks}/dealer", "profile": "dealer-v1"},
            },
        )
        assert made.status_code == 201, made.text
        key = made.json()
        headers = {"Authorization": f"Bearer {key['key']}"}
        with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
            yield Dashboard(http, control, rx, key["webhook"]["secret"])
    assert not app.state.server_errors


def test_a_dealer_dashboard_over_http_only(dashboard: Dashboard) -> None:
    d = dashboard
    sites = d.ok("GET", "/ext/v1/sites", params={"limit": 500})
    assert isinstance(sites, list) and sites  # a bare array
    for site in sites:
        assert {name: type(site[name]) for name in SITE_FIELDS} == SITE_FIELDS
        assert site["dealer_name"] == sites[0]["dealer_name"]
        for partition in site["partitions"]:
            assert isinstance(partition["partition_id"], int)
            assert isinstance(partition["partition_name"], str)
    site = next(s for s in sites if s["site_id"] == SITE)
    assert site["is_partition_enabled"] and len(site["partitions"]) == 2
    arming = f"/ext/v1/sites/{SITE}/arming"

    # the whole site, with the wire's body, then the documented one
    d.ok("POST", f"{arming}/actions/arm", json={"user": "dana@example.com"})
    assert d.ok("GET", arming)["arming_status"] == "armed"
    wait_for(lambda: d.webhooks("arming_status"))
    d.ok("POST", f"{arming}/actions/disarm", json={"mode": "away", "user_code": "1234"})
    assert d.ok("GET", arming)["arming_status"] == "disarmed"
    whole = wait_for(lambda: len(d.webhooks("arming_status")) == 2 and d.webhooks("arming_status"))
    assert [w["status"] for w in whole] == ["armed", "disarmed"]
    for hook in whole:
        data = hook["payload"]["data"]
        assert (data["site_id"], data["site_name"]) == (SITE, site["site_name"])
        assert {p["partition_id"] for p in data["partitions"]} == {1, 2}

    # one partition
    second = site["partitions"][1]["partition_id"]
    partition_arming = f"/ext/v1/sites/{SITE}/partition-arming"
    d.ok("POST", f"{partition_arming}/actions/arm", json={"partition_ids": [second], "user": "d"})
    states = {p["partition_id"]: p["arming_status"] for p in d.ok("GET", partition_arming)}
    assert states == {1: "disarmed", second: "armed"}
    [one] = wait_for(lambda: d.webhooks("partition_arming_status"))
    assert one["status"] == "armed"
    assert [p["partition_id"] for p in one["payload"]["data"]["partitions"]] == [second]

    # a contact, kept and validated by SMS on the sandbox clock
    contacts = f"/ext/v1/sites/{SITE}/contacts"
    contact = d.ok(
        "POST",
        contacts,
        201,
        json={
            "external_contact_id": "crm-7",
            "first_name": "Ari",
            "last_name": "Moss",
            "phone_number": "+15550001111",
            "sms_alarm_enabled": 1,
        },
    )
    item = f"{contacts}/{contact['contact_id']}"
    assert d.ok("PUT", item, json={"title": "Keyholder"})["title"] == "Keyholder"
    d.ok("POST", f"{item}/validation", 202)
    assert d.ok("GET", item)["sms_validation"]["status"] == 0
    d.advance(60)
    assert d.ok("GET", item)["sms_validation"]["status"] == 1
    assert contact["contact_id"] in {c["contact_id"] for c in d.ok("GET", contacts)}
    d.ok("DELETE", item, 204)
    assert d.http.get(item).status_code == 404

    # a camera's live view: at least three JPEG parts
    cameras = d.ok("GET", f"/ext/v1/sites/{SITE}/cameras")
    with d.http.stream("GET", cameras[0]["mjpeg_url"], headers={"Authorization": ""}) as live:
        assert live.status_code == 200
        frames = parts(live, 3)
    assert all(frame.startswith(b"\xff\xd8") for frame in frames)

    # the activity log, paged to its end: every happening once, none skipped
    window = {"start_time": "2020-01-01T00:00:00Z", "end_time": "2035-01-01T00:00:00Z"}
    every = d.ok(
        "POST", "/ext/v1/activity-logs/search", json={**window, "site_id": SITE, "limit": 1000}
    )
    assert not every["page"]["has_more"]
    paged: list[dict[str, Any]] = []
    cursor = None
    while True:
        body = {**window, "site_id": SITE, "limit": 7, **({"cursor": cursor} if cursor else {})}
        page = d.ok("POST", "/ext/v1/activity-logs/search", json=body)
        paged += page["data"]
        cursor = page["page"]["cursor"]
        if not page["page"]["has_more"]:
            break
    assert [e["event_id"] for e in paged] == [e["event_id"] for e in every["data"]]
    assert len({e["event_id"] for e in paged}) == len(paged) > 7
    assert {e["status"] for e in paged if e["category_id"] == 30001} >= {"armed", "disarmed"}

    # the media of the alarms it found (category 20007: video events)
    videos = [e["event_id"] for e in paged if e["category_id"] == 20007][:3]
    assert videos
    found = d.ok("POST", "/ext/v1/events-video-urls", json={"event_ids": videos})
    assert found["expires_in"] > 0
    for event in found["events"]:  # links name the configured origin; this server's port is free
        clip = d.control.get(_local(event["mp4"]))
        assert clip.headers["content-type"] == "video/mp4" and clip.content[4:8] == b"ftyp"
        thumb = d.control.get(_local(event["thumbnail"]))
        assert thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"
