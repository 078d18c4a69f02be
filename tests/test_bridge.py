"""The bridges' local API on its own listener, called as an integrator on a site's LAN calls
a CHeKT bridge: aiohttp, HTTP Basic ``apikey:<token>``, a channel and a description. Its
alarms are the record's (``/v1``, webhooks); its refusals leave the world untouched."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from helpers import Settings
from receiver import Receiver, wait_for

from sandbox import Sandbox
from sandbox.errors import ExpectationFailed
from sandbox.world import inbound


class LanClient:
    """What a LAN integration sends a bridge: one POST, 10 s timeout, no retries."""

    def __init__(self, base_url: str, token: str) -> None:
        self.url = f"{base_url}/api/v1/events"
        pair = base64.b64encode(f"apikey:{token}".encode()).decode()
        self.headers = {"Authorization": f"Basic {pair}"}

    async def _send(self, body: Any, **options: Any) -> tuple[int, dict[str, str], Any]:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(self.url, **{"json": body, "headers": self.headers, **options}) as answer,
        ):
            text = await answer.text()
            return answer.status, dict(answer.headers), json.loads(text) if text else None

    def send(self, body: Any, **options: Any) -> tuple[int, dict[str, str], Any]:
        return asyncio.run(self._send(body, **options))

    def event(self, channel: Any, description: str = "Door opened") -> tuple[int, Any]:
        status, _, body = self.send({"target_channel": channel, "event_description": description})
        return status, body


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(Settings(db=":memory:")) as running:
        yield running


@pytest.fixture(scope="module")
def bridge(sandbox: Sandbox) -> dict[str, Any]:
    return next(b for b in sandbox.bridges if b["dealer_id"] == 1001 and 2 in b["channels"])


def test_a_lan_post_raises_an_alarm_on_the_channel_and_a_webhook_follows(
    sandbox: Sandbox, bridge: dict[str, Any], receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    app = sandbox.create_api_key(1001, ["events:read"], webhook=f"{url}/app")
    assert bridge["url"] == sandbox.bridge_url and bridge["url"].startswith("http://127.0.0.1:")
    client = LanClient(bridge["url"], bridge["api_token"])
    status, answer = client.event("2")
    assert status == 200 and answer["channel"] == 2, answer
    alarm_id = answer["alarm_id"]
    status, second = client.event(2, "Window opened")
    assert status == 200 and second["alarm_id"] != alarm_id

    listed = httpx.get(
        f"{sandbox.url}/v1/alarms",
        params={"site_id": bridge["site_id"]},
        headers={"Authorization": f"Bearer {app['key']}"},
    )
    assert listed.status_code == 200, listed.text
    alarm = next(a for a in listed.json() if a["alarm_id"] == alarm_id)
    assert alarm["site_id"] == bridge["site_id"] and alarm["zone_number"] == "002"
    assert alarm["state"] == "created"
    hooks = wait_for(lambda: len(rx.at("/app")) >= 2 and rx.at("/app"))
    created = [json.loads(h.body) for h in hooks]
    assert [c["data"]["alarm_id"] for c in created] == [alarm_id, second["alarm_id"]]
    assert created[0]["type"] == "alarm.created"

    logged = sandbox.inbound(source="bridge", channel=2)
    assert [e["description"] for e in logged] == ["Door opened", "Window opened"]
    assert len(sandbox.bridge_posts(channel=2)) == 2  # "2" and 2 alike
    sandbox.assert_called("POST", "/api/v1/events", surface="bridge", tier="bridge", times=2)
    journal = sandbox.requests(path="/api/v1/events")
    assert {e["surface"] for e in journal} == {"bridge"}
    assert bridge["api_token"] not in json.dumps(journal)
    trail = sandbox.audit(target=f"alarm {alarm_id}")
    assert trail[0]["actor_kind"] == "device" and trail[0]["surface"] == "bridge"
    event = sandbox.expect_event("bridge", channel=2, state="created", within=2)
    assert event["alarm"]["alarm_id"] == alarm_id


def test_refusals_are_4xx_and_record_nothing(sandbox: Sandbox, bridge: dict[str, Any]) -> None:
    alarms, logged = len(sandbox.alarms(limit=500)), len(sandbox.inbound())
    good = LanClient(bridge["url"], bridge["api_token"])

    token = bridge["api_token"]
    forged = token[:-1] + ("1" if token.endswith("0") else "0")
    status, headers, body = LanClient(bridge["url"], forged).send({"target_channel": "2"})
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    other = next(b for b in sandbox.bridges if b["bridge_id"] != bridge["bridge_id"])
    status, _, _ = LanClient(bridge["url"], other["api_token"]).send({"target_channel": "99"})
    assert status == 422  # another bridge's token speaks for that bridge
    bearer = {"Authorization": f"Bearer {bridge['api_token']}"}
    refused = httpx.post(good.url, json={"target_channel": "2"}, headers=bearer)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
    wrong_user = httpx.post(good.url, json={"target_channel": "2"}, auth=("admin", "x"))
    assert wrong_user.status_code == 401

    unknown = max(bridge["channels"]) + 1
    status, body = good.event(str(unknown))
    assert status == 422 and body["error"]["field"] == "target_channel"
    for junk in ("two", -1, None, True):
        status, body = good.event(junk)
        assert status == 422 and body["error"]["field"] == "target_channel", junk
    status, _, body = good.send({"target_channel": "2", "event_description": "x" * 20_000})
    assert status == 413, body
    malformed = httpx.post(good.url, content=b"{not json", auth=("apikey", bridge["api_token"]))
    assert malformed.status_code == 400

    assert len(sandbox.alarms(limit=500)) == alarms and len(sandbox.inbound()) == logged
    statuses = [e["status"] for e in sandbox.bridge_posts()]
    assert {401, 422, 413, 400} <= set(statuses)


def test_health_needs_no_credential(sandbox: Sandbox) -> None:
    assert sandbox.bridge_url is not None
    answer = httpx.get(f"{sandbox.bridge_url}/api/v1/health")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}
    assert httpx.get(f"{sandbox.bridge_url}/partner/v1/events").status_code == 404
    with pytest.raises(ExpectationFailed, match="own port"):  # a webhook never goes there
        sandbox.subscribe(f"{sandbox.bridge_url}/hooks")


def test_two_sandboxes_get_their_own_bridge_ports_and_stop_cleanly() -> None:
    with Sandbox() as one, Sandbox() as two:
        assert one.bridge_url and two.bridge_url and one.bridge_url != two.bridge_url
        urls = (one.url, one.bridge_url, two.url, two.bridge_url)
        assert len(set(urls)) == 4
        for url in (one.bridge_url, two.bridge_url):
            assert httpx.get(f"{url}/api/v1/health").status_code == 200
    for url in urls:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/api/v1/health", timeout=1)


def test_the_listener_can_be_turned_off() -> None:
    with Sandbox(bridge=False) as sandbox:
        assert sandbox.bridge_url is None
        assert {b["url"] for b in sandbox.bridges} == {None}
        assert all(b["api_token"].startswith("ckb_") for b in sandbox.bridges)


def test_the_plugin_fixture_serves_the_bridges(chekt_sandbox: Sandbox) -> None:
    [first, *_] = chekt_sandbox.bridges
    assert first["url"] == chekt_sandbox.bridge_url is not None
    status, _ = LanClient(first["url"], first["api_token"]).event(first["channels"][0])
    assert status == 200


def test_off_loopback_the_bridges_need_an_admin_token_set() -> None:
    for token, status in ((None, 403), ("admin-secret-0123456789", 200)):
        with Sandbox(host="0.0.0.0", admin_token=token) as sandbox:  # noqa: S104
            assert sandbox.bridge_url is not None
            local = sandbox.bridge_url.replace("0.0.0.0", "127.0.0.1")  # noqa: S104
            assert sandbox.app is not None  # /_sandbox/credentials would need the admin token
            [bridge, *_] = inbound.bridges(sandbox.app.state.services.world, local)
            status_seen, _ = LanClient(local, bridge["api_token"]).event(bridge["channels"][0])
            assert status_seen == status
