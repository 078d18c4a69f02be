"""A subscription hears only what the credential that wrote it may read (an API key's own
scopes, not its client's), the test endpoint only sends data its caller reaches, a client has
a capped number of subscriptions, and webhook URLs pass the destination policy."""

from __future__ import annotations

import ipaddress
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Settings
from one_hop import TestClient
from receiver import Receiver, wait_for

from sandbox import VirtualClock, create_app
from sandbox.auth.keys import new_api_key
from sandbox.net import DestinationPolicy
from sandbox.settings import ApiKeySpec, ClientSpec
from sandbox.store import Store
from sandbox.world.subscriptions import EVENT_SCOPES, hears

NARROW_KEY = new_api_key()  # dealer 1001, may manage webhooks but not read devices
WIDE_KEY = new_api_key()  # dealer 1001, every scope: the same owner client as NARROW_KEY
NO_SITES_KEY = new_api_key()  # dealer 1001, may manage webhooks, reads devices only
LONELY = ClientSpec(client_id="lonely", client_secret="lonely-secret-0123456789")
SETTINGS = Settings(
    webhook_timeout=1.0,
    max_webhooks_per_client=3,
    clients=(LONELY,),
    api_keys=(
        ApiKeySpec(key=NARROW_KEY, dealer_id=1001, scopes=("read:sites", "update:sites")),
        ApiKeySpec(key=WIDE_KEY, dealer_id=1001),
        ApiKeySpec(key=NO_SITES_KEY, dealer_id=1001, scopes=("read:devices", "update:sites")),
    ),
)
SITE = 10001  # a site of dealer 1001


@pytest.fixture
def sandbox() -> Iterator[TestClient]:
    with TestClient(create_app(SETTINGS, clock=VirtualClock(start=1_900_000_000.0))) as client:
        yield client


def _auth(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def _subscribe(client: TestClient, credential: str, url: str, **extra: Any) -> Any:
    return client.post(
        "/partner/v1/webhooks", json={"url": url, **extra}, headers=_auth(credential)
    )


def _emit(client: TestClient, event_type: str) -> str:
    response = client.post("/_sandbox/events", json={"type": event_type, "data": {"site_id": SITE}})
    assert response.status_code == 202, response.text
    return str(response.json()["event_ids"][0])


def _delivered_events(client: TestClient, webhook_id: str) -> list[str]:
    """What the outbox fanned out to a subscription (all due events fan out together)."""
    store = client.app.state.services.world.store  # type: ignore[attr-defined]
    rows = store.all("SELECT event_id FROM deliveries WHERE webhook_id = ?", (webhook_id,))
    return [row["event_id"] for row in rows]


def test_a_narrow_keys_subscription_hears_only_its_scopes(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    created = _subscribe(sandbox, NARROW_KEY, f"{url}/narrow")
    assert created.status_code == 201, created.text
    offline = _emit(sandbox, "device.offline")  # needs read:devices, which the key lacks
    armed = _emit(sandbox, "site.armed")
    [got] = wait_for(lambda: rx.at("/narrow"))
    assert got.headers["x-chekt-event-id"] == armed
    assert _delivered_events(sandbox, created.json()["webhook_id"]) == [armed]
    assert offline not in [r.headers["x-chekt-event-id"] for r in rx.received]


def test_a_narrower_key_cannot_redirect_a_wider_keys_subscription_to_itself(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    wide = _subscribe(sandbox, WIDE_KEY, f"{url}/wide").json()
    moved = sandbox.patch(
        f"/partner/v1/webhooks/{wide['webhook_id']}",
        json={"url": f"{url}/stolen"},
        headers=_auth(NARROW_KEY),
    )
    assert moved.status_code == 200, moved.text
    _emit(sandbox, "device.firmware_updated")
    armed = _emit(sandbox, "site.armed")
    wait_for(lambda: rx.at("/stolen"))
    assert _delivered_events(sandbox, wide["webhook_id"]) == [armed]


def test_subscribing_to_an_event_out_of_scope_names_the_scope(sandbox: TestClient) -> None:
    refused = _subscribe(
        sandbox, NARROW_KEY, "http://127.0.0.1:9/hook", events=["site.armed", "device.online"]
    )
    assert refused.status_code == 403
    assert "read:devices or devices:read" in refused.json()["error"]["message"]
    assert 'scope="read:devices"' in refused.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("scope", "hears_these"),
    [
        ("read:devices", {"device.online", "device.offline", "device.firmware_updated"}),
        ("devices:read", {"device.online", "device.offline", "device.firmware_updated"}),
        ("read:sites", set(EVENT_SCOPES) - {t for t in EVENT_SCOPES if t.startswith("device.")}),
        (
            "events:read",
            {t for t in EVENT_SCOPES if t.startswith("alarm.")} | {"verification.requested"},
        ),
        ("snapshots:read", {"snapshot.created"}),
        ("sites:read", {"site.armed", "site.disarmed"}),
        ("read:dealer", set()),
    ],
)
def test_the_scope_table_maps_partner_and_apps_scopes(scope: str, hears_these: set[str]) -> None:
    assert {t for t in EVENT_SCOPES if hears({scope}, t)} == hears_these


def test_the_test_endpoint_sends_only_the_callers_own_data(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    mine = _subscribe(sandbox, NARROW_KEY, f"{url}/mine").json()
    sent = sandbox.post(
        f"/partner/v1/webhooks/{mine['webhook_id']}/test", headers=_auth(NARROW_KEY)
    )
    assert sent.status_code == 202, sent.text
    [got] = wait_for(lambda: rx.at("/mine"))
    data = json.loads(got.body)["data"]
    assert data["test"] is True and data["dealer_id"] == 1001


def test_the_test_endpoint_refuses_a_caller_that_reaches_no_site(
    sandbox: TestClient, receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    token = sandbox.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": LONELY.client_id,
            "client_secret": LONELY.client_secret,
        },
    ).json()["access_token"]
    hook = _subscribe(sandbox, token, f"{url}/lonely").json()
    refused = sandbox.post(f"/partner/v1/webhooks/{hook['webhook_id']}/test", headers=_auth(token))
    assert refused.status_code == 409
    assert "reaches no site" in refused.json()["error"]["message"]
    blind = _subscribe(sandbox, NO_SITES_KEY, f"{url}/blind").json()
    refused = sandbox.post(
        f"/partner/v1/webhooks/{blind['webhook_id']}/test", headers=_auth(NO_SITES_KEY)
    )
    assert refused.status_code == 403
    assert 'scope="read:sites"' in refused.headers["www-authenticate"]
    # a wider key of the same client may not send site data to that subscription either
    refused = sandbox.post(
        f"/partner/v1/webhooks/{blind['webhook_id']}/test", headers=_auth(WIDE_KEY)
    )
    assert refused.status_code == 403 and "the subscription lacks" in refused.text
    store = sandbox.app.state.services.world.store  # type: ignore[attr-defined]
    assert store.scalar("SELECT COUNT(*) FROM events WHERE emitted = 0") == 0
    assert rx.received == []


def test_subscriptions_per_client_are_capped(sandbox: TestClient) -> None:
    for n in range(3):
        assert _subscribe(sandbox, WIDE_KEY, f"http://127.0.0.1:9/{n}").status_code == 201
    refused = _subscribe(sandbox, NARROW_KEY, "http://127.0.0.1:9/more")  # the same client
    assert refused.status_code == 409
    assert "max_webhooks_per_client = 3" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("100.100.100.200", "cloud metadata"),  # Alibaba Cloud
        ("2002:a9fe:a9fe::1", "cloud metadata"),  # 6to4 for 169.254.169.254
        ("2002:a00:1::1", "private"),  # 6to4 for 10.0.0.1
        ("2002:6464:64c8::", "cloud metadata"),  # 6to4 for 100.100.100.200
        ("fec0::1", "site-local"),
        ("2002:808:808::1", None),  # 6to4 for 8.8.8.8, a public address
    ],
)
def test_destination_policy_cases(address: str, refused: str | None) -> None:
    problem = DestinationPolicy().address_problem(ipaddress.ip_address(address), 443)
    assert (problem is None) if refused is None else (refused in (problem or ""))
    host = f"[{address}]" if ":" in address else address
    url_problem = DestinationPolicy().url_problem(f"https://{host}/hook")
    assert (url_problem is None) == (refused is None)


def test_private_ranges_allowed_but_site_local_and_metadata_never() -> None:
    lax = DestinationPolicy(allow_private=True)
    assert lax.address_problem(ipaddress.ip_address("2002:a00:1::1"), 443) is None
    assert lax.address_problem(ipaddress.ip_address("fec0::1"), 443) is not None
    assert lax.address_problem(ipaddress.ip_address("100.100.100.200"), 443) is not None


def test_a_webhook_to_a_refused_destination_is_a_422(sandbox: TestClient) -> None:
    refused = _subscribe(sandbox, WIDE_KEY, "http://[fec0::1]/hook")
    assert refused.status_code == 422 and "site-local" in refused.json()["error"]["message"]


def test_an_older_database_file_gains_the_scopes_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE webhooks (webhook_id TEXT PRIMARY KEY, client_id TEXT, url TEXT NOT "
            "NULL, events TEXT NOT NULL, secret TEXT NOT NULL, status TEXT NOT NULL, profile "
            "TEXT NOT NULL, created_at REAL NOT NULL, failing_since REAL)"
        )
    old.close()
    store = Store(path)
    try:
        columns = {row["name"] for row in store.all("PRAGMA table_info(webhooks)")}
    finally:
        store.close()
    assert "scopes" in columns
