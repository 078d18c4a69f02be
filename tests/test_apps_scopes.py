"""The seven Apps API scopes, each both ways (CONTRACT §2.6, §5.1): a key with only the scope
may call its endpoints and its app hears the webhooks it gates; a key with every other scope
gets 403 ``insufficient_scope`` naming it, and its app never hears those webhooks. Around
them: another dealer's resources answer exactly as absent ones, and only an app's own API
key opens ``/v1`` (a token is 401, a Partner API key 403)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import Api, Settings, live_server
from one_hop import TestClient
from receiver import Receiver, wait_for

from sandbox import VirtualClock, create_app
from sandbox.webhooks import verify_signature

START = 1_900_000_000.0
SITE, OTHER_SITE = 10001, 10006  # of dealer 1001 (the apps'), of dealer 1002
ALARM_TYPES = ("alarm.created", "alarm.acknowledged", "alarm.dispatched", "alarm.resolved")
# scope -> (its endpoints: method, path, body, status), the webhook types it gates. Paths
# name {alarm} (a new alarm), {acked} (an acknowledged one), {camera} (the alarm's), {site}
# and {snapshot} (the alarm's); write calls run in order, each legal after the one before.
SCOPES: dict[str, tuple[list[tuple[str, str, Any, int]], set[str]]] = {
    "devices:read": (
        [
            ("GET", "/v1/devices", None, 200),
            ("GET", "/v1/devices?ids={camera}", None, 200),
            ("GET", "/v1/devices/{camera}", None, 200),
            ("GET", "/v1/devices/{camera}/snapshots", None, 200),
        ],
        {"device.online", "device.offline", "device.firmware_updated"},
    ),
    "devices:write": (
        [
            ("PATCH", "/v1/devices/{camera}", {"name": "Lobby", "labels": ["front"]}, 200),
            ("POST", "/v1/devices/{camera}/snapshot", None, 201),
        ],
        set(),
    ),
    "events:read": (
        [
            ("GET", "/v1/events", None, 200),
            ("GET", "/v1/alarms", None, 200),
            ("GET", "/v1/alarms/{alarm}", None, 200),
        ],
        {*ALARM_TYPES, "verification.requested"},
    ),
    "events:write": (
        [
            ("POST", "/v1/alarms/{alarm}/acknowledge", {"reason": "on video"}, 200),
            ("POST", "/v1/alarms/{alarm}/escalate", {"reason": "no answer"}, 200),
            ("POST", "/v1/alarms/{alarm}/annotate", {"source": "ai", "verdict": "intruder"}, 200),
            ("POST", "/v1/alarms/{alarm}/resolve", {"resolution": "handled"}, 200),
            ("POST", "/v1/sites/{site}/arming-state", {"state": "armed_away"}, 200),
        ],
        set(),
    ),
    "alarms:write": (
        [("POST", "/v1/alarms/{acked}/dispatch", {"responder_type": "guard"}, 200)],
        set(),
    ),
    "snapshots:read": ([("GET", "/v1/snapshots/{snapshot}", None, 200)], {"snapshot.created"}),
    "sites:read": ([("GET", "/v1/sites", None, 200)], {"site.armed", "site.disarmed"}),
}
APPS = list(SCOPES)
# every webhook type, in an order the record accepts at one site
EMITTED = (
    "alarm.created",
    "verification.requested",
    "alarm.acknowledged",
    "alarm.dispatched",
    "alarm.resolved",
    "device.offline",
    "device.online",
    "device.firmware_updated",
    "snapshot.created",
    "site.armed",
    "site.disarmed",
)
assert set(EMITTED) == set().union(*(types for _, types in SCOPES.values()))


def _sandbox() -> TestClient:
    return TestClient(create_app(Settings(webhook_timeout=1.0), clock=VirtualClock(start=START)))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[TestClient]:
    with _sandbox() as client:
        yield client


def app_key(
    client: TestClient, scopes: list[str], url: str | None = None, dealer_id: int = 1001
) -> dict[str, Any]:
    body: dict[str, Any] = {"dealer_id": dealer_id, "scopes": scopes}
    if url is not None:
        body["webhook"] = {"url": url}
    made = client.post("/_sandbox/api-keys", json=body)
    assert made.status_code == 201, made.text
    return dict(made.json())


def bearer(key: dict[str, Any] | str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key if isinstance(key, str) else key['key']}"}


def emit(client: TestClient, event_type: str, **data: Any) -> str:
    sent = client.post("/_sandbox/events", json={"type": event_type, "data": data})
    assert sent.status_code == 202, sent.text
    return str(sent.json()["event_ids"][0])


def new_alarm(client: TestClient, site_id: int = SITE) -> dict[str, Any]:
    emit(client, "alarm.created", site_id=site_id)
    [alarm] = client.get("/_sandbox/alarms", params={"site_id": site_id, "limit": 1}).json()
    return dict(alarm)


@pytest.fixture
def names(sandbox: TestClient) -> dict[str, Any]:
    """Fresh things of dealer 1001 for the endpoints to act on."""
    alarm, acked = new_alarm(sandbox), new_alarm(sandbox)
    emit(sandbox, "alarm.acknowledged", alarm_id=acked["alarm_id"])
    assert alarm["device_id"] and alarm["snapshot_id"]
    return {
        "alarm": alarm["alarm_id"],
        "acked": acked["alarm_id"],
        "camera": alarm["device_id"],
        "site": SITE,
        "snapshot": alarm["snapshot_id"],
    }


def call(client: TestClient, key: dict[str, Any], endpoint: tuple[Any, ...], names: Any) -> Any:
    method, path, body, _ = endpoint
    return client.request(method, path.format(**names), json=body, headers=bearer(key))


# ---- endpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", APPS)
def test_a_key_with_only_the_scope_may_call_its_endpoints(
    sandbox: TestClient, names: dict[str, Any], scope: str
) -> None:
    key = app_key(sandbox, [scope])
    for endpoint in SCOPES[scope][0]:
        answer = call(sandbox, key, endpoint, names)
        assert answer.status_code == endpoint[3], (endpoint, answer.text)
    trail = sandbox.get("/_sandbox/audit", params={"actor_id": key["client_id"]}).json()
    writes = [e for e in SCOPES[scope][0] if e[0] != "GET"]
    assert len(trail) >= len(writes)  # each write is in the record, under the app's name
    assert {t["surface"] for t in trail} <= {"v1"} and {t["dealer_id"] for t in trail} <= {1001}


@pytest.mark.parametrize("scope", APPS)
def test_a_key_without_the_scope_is_refused_and_changes_nothing(
    sandbox: TestClient, names: dict[str, Any], scope: str
) -> None:
    key = app_key(sandbox, [s for s in APPS if s != scope])  # every other Apps scope
    for endpoint in SCOPES[scope][0]:
        answer = call(sandbox, key, endpoint, names)
        assert answer.status_code == 403, (endpoint, answer.text)
        assert answer.json()["error"]["code"] == "permission_denied"
        challenge = answer.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and 'error="insufficient_scope"' in challenge
        assert re.search(rf'\bscope="{re.escape(scope)}"', challenge), challenge
    assert sandbox.get("/_sandbox/audit", params={"actor_id": key["client_id"]}).json() == []
    states = [
        sandbox.get(f"/_sandbox/alarms/{names[a]}").json()["state"] for a in ("alarm", "acked")
    ]
    assert states == ["created", "acknowledged"]


# ---- webhooks ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def heard() -> Iterator[dict[str, Any]]:
    """Every webhook type emitted once at a site of dealer 1001 (and two at dealer 1002's),
    heard by a sandbox-wide control subscription and, per scope, by an app with only that
    scope and one with all the others; returned once every app has what its scopes allow."""
    rx = Receiver()
    with live_server(rx.app) as url, _sandbox() as client:
        control = client.post("/_sandbox/subscriptions", json={"url": f"{url}/control"})
        assert control.status_code == 201, control.text
        apps = {
            (scope, side): app_key(client, scopes, f"{url}/{side}/{scope}")
            for scope in APPS
            for side, scopes in (("with", [scope]), ("without", [s for s in APPS if s != scope]))
        }
        emitted = {emit(client, t, site_id=SITE): t for t in EMITTED}
        elsewhere = {
            emit(client, t, site_id=OTHER_SITE): t for t in ("alarm.created", "device.offline")
        }

        def hears(scopes: list[str]) -> set[str]:
            types = set().union(*(SCOPES[s][1] for s in scopes))
            return {event_id for event_id, t in emitted.items() if t in types}

        expected = {
            (scope, side): hears([scope] if side == "with" else [s for s in APPS if s != scope])
            for scope, side in apps
        }

        def ids(path: str) -> set[str]:
            return {r.headers["x-chekt-event-id"] for r in rx.at(path)}

        wait_for(lambda: ids("/control") == set(emitted) | set(elsewhere))
        wait_for(lambda: all(len(rx.at(f"/{s}/{a}")) >= len(w) for (a, s), w in expected.items()))
        yield {
            "client": client,
            "rx": rx,
            "apps": apps,
            "emitted": emitted,
            "expected": expected,
            "ids": ids,
        }


@pytest.mark.parametrize("scope", APPS)
def test_an_app_hears_the_webhooks_its_scope_gates_and_no_other_app_does(
    heard: dict[str, Any], scope: str
) -> None:
    client, rx, apps, emitted = heard["client"], heard["rx"], heard["apps"], heard["emitted"]
    gated = {event_id for event_id, t in emitted.items() if t in SCOPES[scope][1]}
    assert gated <= heard["ids"]("/control")  # the control subscription got them all
    with_app, without_app = apps[(scope, "with")], apps[(scope, "without")]
    journal = {
        side: {
            a["event_id"]
            for a in client.get(
                "/_sandbox/deliveries", params={"webhook_id": app["webhook"]["webhook_id"]}
            ).json()
        }
        for side, app in (("with", with_app), ("without", without_app))
    }
    assert heard["ids"](f"/with/{scope}") == journal["with"] == gated
    assert not gated & (heard["ids"](f"/without/{scope}") | journal["without"])
    assert heard["ids"](f"/without/{scope}") == journal["without"]
    assert journal["without"] == heard["expected"][(scope, "without")]  # all the others' types
    for received in rx.at(f"/with/{scope}"):
        body = json.loads(received.body)
        assert body["type"] in SCOPES[scope][1] and body["data"]["site_id"] == SITE
        verify_signature(with_app["webhook"]["secret"], received.headers, received.body, now=START)


def test_an_app_never_hears_another_dealer(heard: dict[str, Any]) -> None:
    mine = set(heard["emitted"])
    for scope, side in heard["apps"]:
        assert heard["ids"](f"/{side}/{scope}") <= mine, (scope, side)


# ---- reach and credentials ---------------------------------------------------------------------

REACH = [
    ("GET", "/v1/alarms/{alarm}", None),
    ("POST", "/v1/alarms/{alarm}/acknowledge", {}),
    ("POST", "/v1/alarms/{alarm}/escalate", {}),
    ("POST", "/v1/alarms/{alarm}/annotate", {"source": "ai", "verdict": "uncertain"}),
    ("POST", "/v1/alarms/{alarm}/dispatch", {"responder_type": "police"}),
    ("POST", "/v1/alarms/{alarm}/resolve", {"resolution": "handled"}),
    ("GET", "/v1/devices/{device}", None),
    ("GET", "/v1/devices/{device}/snapshots", None),
    ("PATCH", "/v1/devices/{device}", {"name": "Mine now"}),
    ("POST", "/v1/devices/{device}/snapshot", None),
    ("POST", "/v1/sites/{site}/arming-state", {"state": "disarmed"}),
    ("GET", "/v1/snapshots/{snapshot}", None),
]
ABSENT = {"alarm": "A-1", "device": 999_999, "site": 999_999, "snapshot": "snap_absent"}


@pytest.mark.parametrize(("method", "path", "body"), REACH)
def test_another_dealers_resource_answers_as_an_absent_one(
    sandbox: TestClient, method: str, path: str, body: Any
) -> None:
    theirs = new_alarm(sandbox, OTHER_SITE)
    other = {
        "alarm": theirs["alarm_id"],
        "device": theirs["device_id"],
        "site": OTHER_SITE,
        "snapshot": theirs["snapshot_id"],
    }
    [kind] = re.findall(r"\{(\w+)\}", path)
    key = app_key(sandbox, APPS)
    answers = []
    for ids in (other, ABSENT):
        answer = sandbox.request(method, path.format(**ids), json=body, headers=bearer(key))
        error = answer.json()["error"]
        answers.append(
            (answer.status_code, error["code"], error["message"].replace(str(ids[kind]), "<id>"))
        )
    assert answers[0] == answers[1] and answers[0][0] == 404, answers
    after = sandbox.get(f"/_sandbox/alarms/{theirs['alarm_id']}").json()
    assert after["state"] == "created" and after["annotations"] == []


def test_lists_and_batches_leave_another_dealer_out(sandbox: TestClient) -> None:
    theirs = new_alarm(sandbox, OTHER_SITE)
    key = app_key(sandbox, APPS)
    batch = sandbox.get("/v1/devices", params={"ids": theirs["device_id"]}, headers=bearer(key))
    absent = sandbox.get("/v1/devices", params={"ids": 999_999}, headers=bearer(key))
    assert batch.status_code == absent.status_code == 200 and batch.json() == absent.json() == []
    for path in ("/v1/alarms", "/v1/sites", "/v1/devices"):
        items = sandbox.get(path, params={"limit": 1000}, headers=bearer(key)).json()
        assert items and {i["dealer_id"] for i in items} == {1001}, path
    events = sandbox.get("/v1/events", params={"limit": 1000}, headers=bearer(key)).json()
    assert theirs["alarm_id"] not in {e["data"].get("alarm_id") for e in events["data"]}


def test_a_token_is_not_an_api_key(sandbox: TestClient) -> None:
    token = Api(sandbox).token()
    refused = sandbox.get("/v1/sites", headers=bearer(token))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


@pytest.mark.parametrize("seeded", [False, True])
def test_a_partner_api_key_is_refused(sandbox: TestClient, seeded: bool) -> None:
    """A key with Partner API scopes (the seeded one has them all) holds none of /v1's."""
    key = Api(sandbox).key if seeded else app_key(sandbox, ["read:sites", "read:devices"])["key"]
    refused = sandbox.get("/v1/sites", headers=bearer(key))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert 'error="insufficient_scope", scope="sites:read"' in refused.headers["www-authenticate"]
