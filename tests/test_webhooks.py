"""Webhook delivery end to end: a real receiver on a free port, real signatures, CHeKT's
status table and retry schedule on a clock the test drives."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import Api, Settings
from one_hop import TestClient
from receiver import Answer, Hanging, Receiver, wait_for

from sandbox import VirtualClock, create_app
from sandbox.webhooks import verify_signature

START = 1_900_000_000.0


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=START)


@pytest.fixture
def sandbox(clock: VirtualClock) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(webhook_timeout=1.0), clock=clock)) as client:
        yield client


def subscribe(client: TestClient, url: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/_sandbox/subscriptions", json={"url": url, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


def emit(client: TestClient, **body: Any) -> list[str]:
    response = client.post("/_sandbox/events", json=body)
    assert response.status_code == 202, response.text
    return list(response.json()["event_ids"])


def attempts(client: TestClient, **filters: str) -> list[dict[str, Any]]:
    return list(client.get("/_sandbox/deliveries", params=filters).json())


def test_signed_delivery_with_the_five_headers(
    sandbox: TestClient, receiver: tuple[Receiver, str], clock: VirtualClock
) -> None:
    rx, url = receiver
    sub = subscribe(sandbox, f"{url}/hook")
    [event_id] = emit(sandbox, type="alarm.created", data={"priority": "HIGH"})
    [got] = wait_for(lambda: rx.at("/hook"))
    headers = got.headers
    assert headers["x-chekt-event-id"] == event_id
    assert headers["x-chekt-delivery-id"].startswith("dlv_")
    assert headers["x-chekt-attempt"] == "1"
    assert headers["x-chekt-timestamp"] == str(int(START))
    verify_signature(sub["secret"], headers, got.body, now=clock.now())
    envelope = json.loads(got.body)
    assert envelope["id"] == event_id and envelope["type"] == "alarm.created"
    assert envelope["created_at"].endswith("Z")
    data = envelope["data"]
    assert data["priority"] == "HIGH"
    api = Api(sandbox)
    site = sandbox.get(
        f"/partner/v1/dealers/{data['dealer_id']}/sites/{data['site_id']}",
        headers=api.bearer(api.token()),
    )
    if data["dealer_id"] != 1003:  # the seeded partner reaches all dealers but the last
        assert site.json()["external_site_id"] == data["external_site_id"]
    [journal] = wait_for(lambda: attempts(sandbox, event_id=event_id))
    assert journal["outcome"] == "delivered" and journal["status_code"] == 200
    assert journal["request"]["headers"]["X-CHeKT-Signature"] == "[redacted]"
    [revealed] = attempts(sandbox, event_id=event_id, reveal="true")
    assert revealed["request"]["headers"]["X-CHeKT-Signature"] == headers["x-chekt-signature"]
    assert journal["response"]["body"] == "ok"


@pytest.mark.latency
def test_always_failing_receiver_gets_exactly_eight_attempts_over_24_hours(
    sandbox: TestClient, receiver: tuple[Receiver, str], clock: VirtualClock
) -> None:
    rx, url = receiver
    rx.answers["/down"] = Answer(status=500)
    sub = subscribe(sandbox, f"{url}/down")
    [event_id] = emit(sandbox, type="device.offline")
    started = time.monotonic()
    for _ in range(25):  # an hour at a time past the whole window, from this thread
        clock.advance(3600)
    journal = attempts(sandbox, event_id=event_id)  # no waiting: each advance settled
    assert time.monotonic() - started < 5
    assert [a["attempt"] for a in journal] == list(range(1, 9))
    scheduled = [a["scheduled_at"] for a in journal]
    assert scheduled[0] == START
    assert scheduled[-1] == START + 86400
    gaps = [b - a for a, b in itertools.pairwise(scheduled[:-1])]
    for gap, nominal in zip(gaps, (5, 300, 1800, 7200, 18000, 36000), strict=True):
        assert nominal * 0.9 <= gap <= nominal * 1.1
    assert all(a["sent_at"] == a["scheduled_at"] for a in journal)  # the clock stood there
    assert [a["outcome"] for a in journal] == ["failed"] * 8
    assert journal[-1]["next_at"] is None
    assert len(rx.at("/down")) == 8
    for got, attempt in zip(rx.at("/down"), journal, strict=True):
        assert float(got.headers["x-sandbox-time"]) == pytest.approx(attempt["sent_at"], abs=1e-6)
        verify_signature(sub["secret"], got.headers, got.body, now=attempt["sent_at"])
    bodies = {got.body for got in rx.at("/down")}
    assert len(bodies) == 1  # byte-identical across attempts
    listed = sandbox.get("/_sandbox/subscriptions").json()
    assert next(s for s in listed if s["webhook_id"] == sub["webhook_id"])["status"] == "disabled"


@pytest.mark.parametrize(
    ("status", "retried"),
    [(400, True), (404, True), (500, True), (502, True), (201, False), (204, False)],
)
def test_status_table(
    sandbox: TestClient,
    receiver: tuple[Receiver, str],
    clock: VirtualClock,
    status: int,
    retried: bool,
) -> None:
    rx, url = receiver
    rx.answers["/s"] = Answer(status=status)
    subscribe(sandbox, f"{url}/s")
    [event_id] = emit(sandbox, type="site.armed")
    [first] = wait_for(lambda: attempts(sandbox, event_id=event_id))
    clock.advance(10)
    if retried:
        wait_for(lambda: len(attempts(sandbox, event_id=event_id)) == 2)
        assert first["outcome"] == "failed" and first["next_at"] is not None
    else:
        time.sleep(0.2)
        assert len(attempts(sandbox, event_id=event_id)) == 1
        assert first["outcome"] == "delivered"


def test_redirects_are_failures_and_never_followed(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    rx.answers["/moved"] = Answer(status=302, headers={"Location": f"{url}/target"})
    subscribe(sandbox, f"{url}/moved")
    [event_id] = emit(sandbox, type="site.disarmed")
    [first] = wait_for(lambda: attempts(sandbox, event_id=event_id))
    assert first["outcome"] == "failed" and first["status_code"] == 302
    time.sleep(0.1)
    assert rx.at("/target") == []


def test_410_disables_the_subscription(
    sandbox: TestClient, receiver: tuple[Receiver, str], clock: VirtualClock
) -> None:
    rx, url = receiver
    rx.answers["/gone"] = Answer(status=410)
    sub = subscribe(sandbox, f"{url}/gone")
    [event_id] = emit(sandbox, type="site.armed")
    [first] = wait_for(lambda: attempts(sandbox, event_id=event_id))
    assert first["outcome"] == "disabled"
    statuses = {s["webhook_id"]: s["status"] for s in sandbox.get("/_sandbox/subscriptions").json()}
    assert statuses[sub["webhook_id"]] == "disabled"
    emit(sandbox, type="site.armed")
    clock.advance(86400)
    time.sleep(0.2)
    assert len(rx.at("/gone")) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_delays_the_next_attempt(
    sandbox: TestClient, receiver: tuple[Receiver, str], clock: VirtualClock, status: int
) -> None:
    rx, url = receiver
    rx.answers["/busy"] = Answer(status=status, headers={"Retry-After": "900"})
    subscribe(sandbox, f"{url}/busy")
    [event_id] = emit(sandbox, type="site.armed")
    [first] = wait_for(lambda: attempts(sandbox, event_id=event_id))
    assert first["next_at"] >= first["sent_at"] + 900
    clock.advance(600)
    time.sleep(0.2)
    assert len(attempts(sandbox, event_id=event_id)) == 1
    clock.advance(301)
    wait_for(lambda: len(attempts(sandbox, event_id=event_id)) == 2)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_connection_and_timeout_are_retried(sandbox: TestClient) -> None:
    # a receiver that holds the request past the 1 s timeout, and lets go when the test ends
    with Hanging() as url:
        subscribe(sandbox, f"http://127.0.0.1:{_closed_port()}/nobody", events=["site.armed"])
        subscribe(sandbox, f"{url}/slow", events=["site.armed"])
        [event_id] = emit(sandbox, type="site.armed")
        journal = wait_for(
            lambda: (a := attempts(sandbox, event_id=event_id)) and len(a) == 2 and a
        )
    outcomes = sorted(a["outcome"] for a in journal)
    assert outcomes == ["failed", "timeout"]
    assert all(a["next_at"] is not None for a in journal)
    refused = next(a for a in journal if a["outcome"] == "failed")
    assert "Connect" in refused["error"] or "refused" in refused["error"].lower()


def test_destination_policy_at_registration_and_send_time(
    sandbox: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    own_port = sandbox.post("/_sandbox/subscriptions", json={"url": "http://localhost:8765/x"})
    assert own_port.status_code == 422 and "own port" in own_port.json()["error"]["message"]
    # DNS rebinding: the name looks harmless when registered and resolves to the cloud
    # metadata address when the attempt is made (simulated at the system resolver)
    real = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.partner.test":
            return real("169.254.169.254", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    sub = subscribe(sandbox, "http://rebind.partner.test:8080/hook")
    [event_id] = emit(sandbox, type="site.armed")
    [first] = wait_for(lambda: attempts(sandbox, event_id=event_id))
    assert first["outcome"] == "blocked_destination" and first["webhook_id"] == sub["webhook_id"]
    assert "metadata" in first["error"]
    refused = sandbox.post(
        "/_sandbox/subscriptions", json={"url": "http://169.254.169.254/latest/meta-data"}
    )
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "url"
    with_credentials = sandbox.post(
        "/_sandbox/subscriptions", json={"url": "http://user:pw@127.0.0.1:9/x"}
    )
    assert with_credentials.status_code == 422


def test_resend_keeps_the_event_id_with_a_new_delivery_id(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    subscribe(sandbox, f"{url}/r")
    [event_id] = emit(sandbox, type="snapshot.created")
    wait_for(lambda: rx.at("/r"))
    resent = sandbox.post(f"/_sandbox/events/{event_id}/resend")
    assert resent.status_code == 202
    first, second = wait_for(lambda: len(rx.at("/r")) == 2 and rx.at("/r"))
    assert first.headers["x-chekt-event-id"] == second.headers["x-chekt-event-id"] == event_id
    assert first.headers["x-chekt-delivery-id"] != second.headers["x-chekt-delivery-id"]
    assert first.body == second.body
    assert sandbox.post("/_sandbox/events/evt_nope/resend").status_code == 404


def test_alarm_lifecycle_follows_the_clock(
    sandbox: TestClient, receiver: tuple[Receiver, str], clock: VirtualClock
) -> None:
    rx, url = receiver
    subscribe(sandbox, f"{url}/life")
    ids = emit(sandbox, lifecycle="alarm")
    assert len(ids) == 4
    wait_for(lambda: rx.at("/life"))
    clock.advance(39)
    time.sleep(0.1)
    assert len(rx.at("/life")) == 1
    clock.advance(1)
    wait_for(lambda: len(rx.at("/life")) == 2)
    clock.advance(320)
    received = wait_for(lambda: len(rx.at("/life")) == 4 and rx.at("/life"))
    envelopes = [json.loads(r.body) for r in received]
    assert [e["type"] for e in envelopes] == [
        "alarm.created",
        "alarm.acknowledged",
        "alarm.dispatched",
        "alarm.resolved",
    ]
    assert len({e["data"]["alarm_id"] for e in envelopes}) == 1
    assert [e["id"] for e in envelopes] == ids


def test_false_positive_lifecycle_skips_dispatch(
    sandbox: TestClient, receiver: tuple[Receiver, str], clock: VirtualClock
) -> None:
    rx, url = receiver
    subscribe(sandbox, f"{url}/fp")
    emit(sandbox, lifecycle="alarm", variant="false-positive")
    clock.advance(400)
    received = wait_for(lambda: len(rx.at("/fp")) == 3 and rx.at("/fp"))
    types = [json.loads(r.body)["type"] for r in received]
    assert "alarm.dispatched" not in types
    assert json.loads(received[-1].body)["data"]["resolution"] == "false-positive"


def test_event_filters_and_profiles(sandbox: TestClient, receiver: tuple[Receiver, str]) -> None:
    rx, url = receiver
    subscribe(sandbox, f"{url}/only-armed", events=["site.armed"])
    legacy = subscribe(sandbox, f"{url}/legacy", profile="legacy-guide")
    subscribe(sandbox, f"{url}/dealer", profile="dealer-v1")
    emit(sandbox, type="alarm.created")
    emit(sandbox, type="device.firmware_updated")
    [armed] = emit(sandbox, type="site.armed")
    wait_for(
        lambda: rx.at("/only-armed") and len(rx.at("/legacy")) == 2 and len(rx.at("/dealer")) == 2
    )
    time.sleep(0.1)
    assert [r.headers["x-chekt-event-id"] for r in rx.at("/only-armed")] == [armed]
    legacy_types = [json.loads(r.body)["type"] for r in rx.at("/legacy")]
    assert legacy_types == ["alarm.triggered", "site.armed"]  # no legacy name for firmware
    for got in rx.at("/legacy"):
        verify_signature(legacy["secret"], got.headers, got.body, variant="legacy")
        assert got.headers["x-webhook-signature"].startswith("sha256=")
    dealer = [json.loads(r.body) for r in rx.at("/dealer")]
    # one partition of a site with several: partition_arming_status (see test_webhook_formats)
    assert dealer[0]["event_type"] == "alarm_event"
    assert dealer[1]["event_type"] in ("arming_status", "partition_arming_status")
    assert all(d["api_version"] == "v1" and isinstance(d["event_id"], int) for d in dealer)
    assert dealer[1]["payload"]["data"]["arming_status"] == "armed"


def test_partner_subscriptions_respect_reach_and_scope(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    api = Api(sandbox)
    token = api.bearer(api.token())
    created = sandbox.post("/partner/v1/webhooks", json={"url": f"{url}/partner"}, headers=token)
    assert created.status_code == 201
    emit(sandbox, type="site.armed", data={"site_id": 10011})  # dealer 1003: out of reach
    [reached] = emit(sandbox, type="site.armed", data={"site_id": 10001})
    got = wait_for(lambda: rx.at("/partner"))
    time.sleep(0.2)
    assert [r.headers["x-chekt-event-id"] for r in rx.at("/partner")] == [reached]
    assert json.loads(got[0].body)["data"]["external_dealer_id"] == "ext-1001"
    test = sandbox.post(f"/partner/v1/webhooks/{created.json()['webhook_id']}/test", headers=token)
    assert test.status_code == 202
    wait_for(lambda: len(rx.at("/partner")) == 2)


def test_emit_errors_are_clear(sandbox: TestClient) -> None:
    cases = [
        ({"type": "alarm.exploded"}, "type"),
        ({"type": "alarm.created", "data": {"site_id": 1}}, "site_id"),
        ({"lifecycle": "door"}, "lifecycle"),
        ({"random": 0}, "random"),
        ({"random": 5, "rate": -1}, "rate"),
        ({"type": "alarm.created", "lifecycle": "alarm"}, "type"),
        ({"typo": 1, "type": "site.armed"}, "typo"),
    ]
    for body, field in cases:
        response = sandbox.post("/_sandbox/events", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"] == field


def test_random_events_at_a_rate(
    sandbox: TestClient, receiver: tuple[Receiver, str], clock: VirtualClock
) -> None:
    rx, url = receiver
    subscribe(sandbox, f"{url}/rnd")
    ids = emit(sandbox, random=20, rate=10, seed=3)
    assert len(set(ids)) == 20
    clock.advance(2)
    wait_for(lambda: len(rx.at("/rnd")) == 20)
    assert {r.headers["x-chekt-event-id"] for r in rx.at("/rnd")} == set(ids)


def test_clock_control(sandbox: TestClient) -> None:
    assert sandbox.get("/_sandbox/clock").json() == {"now": START, "virtual": True}
    moved = sandbox.post("/_sandbox/clock/advance", json={"seconds": 90}).json()
    assert moved["now"] == START + 90
    assert sandbox.post("/_sandbox/clock/advance", json={"seconds": -1}).status_code == 422
    back = sandbox.post("/_sandbox/clock/set", json={"now": START})
    assert back.status_code == 422
    with TestClient(create_app(Settings())) as system:
        assert system.get("/_sandbox/clock").json()["virtual"] is False
        assert system.post("/_sandbox/clock/advance", json={"seconds": 1}).status_code == 400


@pytest.mark.parametrize(
    ("concurrency", "backlog"),
    [(150, 150), (10, 300)],
    ids=["more-in-flight-than-a-shared-pool", "a-backlog-longer-than-a-batch"],
)
def test_a_hanging_receiver_does_not_hold_up_another_subscription(
    receiver: tuple[Receiver, str], concurrency: int, backlog: int
) -> None:
    rx, url = receiver
    hanging = Hanging()
    settings = Settings(webhook_timeout=30, webhook_concurrency=concurrency)
    with hanging as slow_url, TestClient(create_app(settings)) as client:
        subscribe(client, f"{slow_url}/hang", events=["device.offline"])
        subscribe(client, f"{url}/fine", events=["site.armed"])
        emit(client, type="device.offline", repeat=backlog)
        wait_for(lambda: hanging.held >= min(concurrency, 100))
        [event_id] = emit(client, type="site.armed")
        wait_for(lambda: rx.at("/fine"), timeout=5)
        [delivered] = wait_for(lambda: attempts(client, event_id=event_id))
        assert delivered["outcome"] == "delivered"
        assert hanging.held == concurrency  # each subscription its own budget


def test_partner_api_writes_emit_what_chekt_would(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    subscribe(sandbox, f"{url}/devices", events=["device.online"])
    api = Api(sandbox)
    created = sandbox.post(
        "/partner/v1/dealers/1001/sites/10001/devices",
        json=[{"external_device_id": "new-cam", "device_type": "camera", "zone_number": "009"}],
        headers=api.bearer(api.key),
    ).json()
    [got] = wait_for(lambda: rx.at("/devices"))
    data = json.loads(got.body)["data"]
    assert data["device_id"] == created["results"][0]["device_id"]
    assert data["external_device_id"] == "new-cam" and data["site_id"] == 10001


def test_fault_knobs_duplicate_and_reorder(
    sandbox: TestClient, receiver: tuple[Receiver, str], clock: VirtualClock
) -> None:
    rx, url = receiver
    subscribe(sandbox, f"{url}/faulty")
    knobs = sandbox.post("/_sandbox/faults", json={"duplicate_rate": 1.0, "reorder_window": 30})
    assert knobs.json() == {
        "duplicate_rate": 1.0,
        "reorder_window": 30.0,
        **dict.fromkeys(("burst", "slow_send_ms", "oversize", "unknown_types", "extra_fields"), 0),
        "inbound": [],
    }
    ids = emit(sandbox, random=12, seed=5)
    clock.advance(31)
    received = wait_for(lambda: len(rx.at("/faulty")) == 24 and rx.at("/faulty"))
    seen = [r.headers["x-chekt-event-id"] for r in received]
    assert sorted(set(seen)) == sorted(ids)
    assert all(seen.count(event_id) == 2 for event_id in ids)  # every one sent twice
    first_seen = list(dict.fromkeys(seen))
    assert first_seen != ids  # held back at random: not in emission order
    pairs = {}
    for r in received:
        pairs.setdefault(r.headers["x-chekt-event-id"], set()).add(
            (r.headers["x-chekt-delivery-id"], r.headers["x-chekt-attempt"])
        )
    assert all(len(p) == 1 for p in pairs.values())  # a duplicate is the very same attempt
    bad = sandbox.post("/_sandbox/faults", json={"duplicate_rate": 2})
    assert bad.status_code == 422


def test_event_types_need_the_matching_scope(
    receiver: tuple[Receiver, str], clock: VirtualClock
) -> None:
    from sandbox.settings import ClientSpec

    rx, url = receiver
    narrow = ClientSpec(
        client_id="sites-only",
        client_secret="sites-only-secret-012345",
        dealer_ids=(1001,),
        scopes=("read:sites", "update:sites"),
    )
    with TestClient(create_app(Settings(clients=(narrow,)), clock=clock)) as client:
        token = client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "sites-only",
                "client_secret": "sites-only-secret-012345",
            },
        ).json()["access_token"]
        created = client.post(
            "/partner/v1/webhooks",
            json={"url": f"{url}/narrow"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201
        emit(client, type="device.offline", data={"site_id": 10001})
        [armed] = emit(client, type="site.armed", data={"site_id": 10001})
        wait_for(lambda: rx.at("/narrow"))
        time.sleep(0.2)
    assert [r.headers["x-chekt-event-id"] for r in rx.at("/narrow")] == [armed]


def test_recover_resends_what_failed_for_good(
    sandbox: TestClient, receiver: tuple[Receiver, str], clock: VirtualClock
) -> None:
    rx, url = receiver
    rx.answers["/flaky"] = Answer(status=500)
    sub = subscribe(sandbox, f"{url}/flaky")
    [event_id] = emit(sandbox, type="site.armed")
    clock.advance(86_400)
    wait_for(lambda: len(attempts(sandbox, event_id=event_id)) == 8)
    assert (
        sandbox.patch(
            f"/_sandbox/subscriptions/{sub['webhook_id']}", json={"status": "enabled"}
        ).json()["status"]
        == "enabled"
    )
    rx.answers["/flaky"] = Answer(status=200)
    recovered = sandbox.post("/_sandbox/deliveries/recover", json={"since": START})
    assert recovered.status_code == 202 and len(recovered.json()["delivery_ids"]) == 1
    delivered = wait_for(lambda: attempts(sandbox, event_id=event_id, outcome="delivered"))
    assert delivered[0]["delivery_id"] == recovered.json()["delivery_ids"][0]
    assert rx.at("/flaky")[-1].headers["x-chekt-event-id"] == event_id


def test_random_site_can_carry_the_event(api: Api) -> None:
    """A developer's own sites start without devices: an event that needs a device picks a
    site that has one instead of failing with 'site N has no devices'."""
    for n in range(30):
        body = {"external_site_id": f"bare-{n}", "name": f"Bare {n}", "timezone": "UTC"}
        created = api.client.post(
            "/partner/v1/dealers/1001/sites", json=body, headers=api.bearer(api.key)
        )
        assert created.status_code == 201, created.text
    for event_type in ("alarm.created", "device.offline", "snapshot.created") * 5:
        response = api.client.post("/_sandbox/events", json={"type": event_type})
        assert response.status_code == 202, response.text


def test_an_attempt_in_flight_across_a_reset_leaves_no_trace(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    """Outcomes are written in batches: one that ends after a reset of the deliveries must
    not turn up in the fresh delivery journal (the next test's, under the plugin)."""
    rx, url = receiver
    rx.answers["/slow"] = Answer(delay=0.5)
    subscribe(sandbox, f"{url}/slow")
    emit(sandbox, type="alarm.created")
    wait_for(lambda: rx.at("/slow"))  # arrived; its answer is held for 0.5 s
    reset = sandbox.post("/_sandbox/reset", json={"only": ["deliveries"]})
    assert reset.status_code == 200, reset.text
    dispatcher = sandbox.app.state.services.dispatcher  # type: ignore[attr-defined]
    wait_for(lambda: not any(dispatcher._in_flight.values()) and not dispatcher._outcomes)
    assert attempts(sandbox) == []


def test_a_seed_used_again_is_a_conflict_not_a_server_error(sandbox: TestClient) -> None:
    """The same seed draws the same snapshot id: the second emit is refused with a 409."""
    body = {"type": "snapshot.created", "seed": 5}
    assert sandbox.post("/_sandbox/events", json=body).status_code == 202
    again = sandbox.post("/_sandbox/events", json=body)
    assert again.status_code == 409, again.text
    assert "seed" in again.json()["error"]["message"]


def test_attempts_claimed_ahead_follow_a_subscription_change(
    receiver: tuple[Receiver, str],
) -> None:
    """On the system clock the dispatcher claims attempts ahead of a subscription's room;
    a change to the subscription (here its URL) makes it read them again, so none goes out
    with what the subscription said before."""
    rx, url = receiver
    rx.answers["/slow"] = Answer(delay=0.5)
    with TestClient(create_app(Settings(webhook_concurrency=2))) as client:
        sub = subscribe(client, f"{url}/slow", events=["device.offline"])
        ids = emit(client, type="device.offline", repeat=12)
        wait_for(lambda: len(rx.at("/slow")) == 2)  # the two in flight; ten wait, claimed
        changed = client.patch(
            f"/_sandbox/subscriptions/{sub['webhook_id']}", json={"url": f"{url}/fast"}
        )
        assert changed.status_code == 200, changed.text
        wait_for(lambda: len(attempts(client, outcome="delivered")) == 12, timeout=10)
        assert len(rx.at("/slow")) == 2 and len(rx.at("/fast")) == 10
        fast = {json.loads(r.body)["id"] for r in rx.at("/fast")}
        assert fast | {json.loads(r.body)["id"] for r in rx.at("/slow")} == set(ids)
