"""A polled list is answered again from the answer its handler gave (``sandbox.api.replay``)
only while that answer still holds: the same bytes and headers as the handler would send,
and never once a write, a revoked key, an expired token, a rate limit, a fault rule or
another credential says otherwise. Each test runs with the suite's self-check and without
it (what ``serve`` runs)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import OTHER_DEALER_KEY, TEST_SETTINGS, Api
from one_hop import TestClient

from sandbox import create_app
from sandbox.api.common import Services

SITES = "/partner/v1/dealers/1001/sites"
DEALER_SITES = "/ext/v1/sites"
ALARMS = "/v1/alarms"
PER_REQUEST = {"x-request-id", "x-sandbox-time"}


@pytest.fixture(params=[True, False], ids=["checked", "as-served"])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    settings = dataclasses.replace(TEST_SETTINGS, check_responses=request.param, clock="virtual")
    with TestClient(create_app(settings)) as client:
        yield Api(client)


def _services(api: Api) -> Services:
    found: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return found


def _apps_key(api: Api) -> str:
    made = api.client.post(
        "/_sandbox/api-keys", json={"dealer_id": 1001, "scopes": ["events:read"], "name": "poll"}
    )
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def _same_answer(first: Any, second: Any) -> None:
    assert second.status_code == first.status_code == 200
    assert second.content == first.content
    kept = [(k, v) for k, v in first.headers.multi_items() if k not in PER_REQUEST]
    assert [(k, v) for k, v in second.headers.multi_items() if k not in PER_REQUEST] == kept
    assert second.headers["x-request-id"] != first.headers["x-request-id"]


@pytest.mark.parametrize("path", [SITES, DEALER_SITES, ALARMS])
def test_a_polled_list_is_replayed_as_its_handler_answered(api: Api, path: str) -> None:
    key = _apps_key(api) if path == ALARMS else api.key
    first = api.client.get(path, headers=api.bearer(key))
    assert len(_services(api).replays) == 1  # kept: the next one is a replay
    _same_answer(first, api.client.get(path, headers=api.bearer(key)))
    if path == SITES:  # a token: its own answer, the same list
        token = api.token()
        _same_answer(first, api.client.get(path, headers=api.bearer(token)))
        _same_answer(first, api.client.get(path, headers=api.bearer(token)))
        assert len(_services(api).replays) == 2


def test_a_write_is_seen_at_once(api: Api) -> None:
    headers = api.bearer(api.key)
    before = api.client.get(SITES, headers=headers)
    api.client.get(SITES, headers=headers)
    site = {"name": "Polled", "external_site_id": "polled-1", "timezone": "UTC"}
    made = api.client.post(SITES, json=site, headers=headers)
    assert made.status_code == 201, made.text
    after = api.client.get(SITES, headers=headers)
    assert int(after.headers["x-total-count"]) == int(before.headers["x-total-count"]) + 1
    assert made.json()["site_id"] in [site["site_id"] for site in after.json()]


def test_a_revoked_key_is_refused_at_once(api: Api) -> None:
    headers = api.bearer(api.key)
    assert api.client.get(SITES, headers=headers).status_code == 200
    assert api.client.get(SITES, headers=headers).status_code == 200
    revoked = api.client.post("/_sandbox/api-keys/revoke", json={"key": api.key})
    assert revoked.status_code == 200, revoked.text
    refused = api.client.get(SITES, headers=headers)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


def test_a_token_expired_on_the_virtual_clock_is_refused(api: Api) -> None:
    headers = api.bearer(api.token())
    assert api.client.get(SITES, headers=headers).status_code == 200
    assert api.client.get(SITES, headers=headers).status_code == 200
    services = _services(api)
    version = services.world.store.data_version()
    services.world.clock.advance(services.settings.token_lifetime + 1)  # type: ignore[attr-defined]
    assert services.world.store.data_version() == version  # only the clock moved
    refused = api.client.get(SITES, headers=headers)
    assert refused.status_code == 401 and "expired" in refused.json()["error"]["message"]


def test_another_credential_gets_its_own_answer(api: Api) -> None:
    assert api.client.get(SITES, headers=api.bearer(api.key)).status_code == 200
    api.client.get(SITES, headers=api.bearer(api.key))
    other = api.client.get(SITES, headers=api.bearer(OTHER_DEALER_KEY))  # dealer 1003's key
    assert other.status_code == 404


def test_every_replay_takes_a_token_from_the_bucket(api: Api) -> None:
    headers = api.bearer(api.key)
    unlimited = api.client.get(SITES, headers=headers)  # kept, limits off
    limits = api.client.post("/_sandbox/rate-limits", json={"per_minute": 60, "burst": 3})
    assert limits.status_code == 200, limits.text
    answers = [api.client.get(SITES, headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["x-ratelimit-limit"] == "60" for a in answers)
    assert answers[3].headers["retry-after"] == "1"
    api.client.post("/_sandbox/rate-limits", json={"tier": "off"})
    _same_answer(unlimited, api.client.get(SITES, headers=headers))


def test_a_fault_rule_strikes_a_polled_list(api: Api) -> None:
    headers = api.bearer(api.key)
    first = api.client.get(SITES, headers=headers)
    api.client.get(SITES, headers=headers)
    rule = {"path": SITES, "status": 503, "count": 1}
    assert api.client.post("/_sandbox/faults", json={"inbound": [rule]}).status_code == 200
    assert api.client.get(SITES, headers=headers).status_code == 503
    _same_answer(first, api.client.get(SITES, headers=headers))  # the rule is used up


def test_the_journal_keeps_a_replay_as_any_request(api: Api) -> None:
    trace = "6f1d5a38-9c1e-4a8e-9d0e-5b7c2f7a1e42"
    headers = {**api.bearer(api.key), "X-Partner-Trace-Id": trace}
    answers = [api.client.get(SITES, headers=headers) for _ in range(2)]
    assert answers[1].headers["x-partner-trace-id"] == trace
    entries = api.client.get("/_sandbox/requests", params={"path": SITES}).json()[-2:]
    for entry, answer in zip(entries, answers, strict=True):
        assert entry["status"] == 200 and entry["tier"] == "api_key"
        assert entry["trace_id"] == trace
        assert entry["headers"]["authorization"] == "Bearer [redacted]"
        assert entry["response_body"] == answer.json()
        assert entry["response_headers"]["x-request-id"] == answer.headers["x-request-id"]
    revealed = api.client.get("/_sandbox/requests", params={"path": SITES, "reveal": "true"})
    assert revealed.json()[-1]["headers"]["authorization"] == f"Bearer {api.key}"


def test_a_credential_echoed_by_a_replay_is_hidden_in_the_journal(api: Api) -> None:
    # a replay's own headers are checked once; what it adds per request (here the echoed
    # trace id, holding a key) is scrubbed as in any other answer
    leaked = "chekt_test_" + "k" * 24
    headers = {**api.bearer(api.key), "X-Partner-Trace-Id": leaked}
    answers = [api.client.get(SITES, headers=headers) for _ in range(2)]
    assert answers[1].headers["x-partner-trace-id"] == leaked
    entries = api.client.get("/_sandbox/requests", params={"path": SITES}).json()[-2:]
    for entry in entries:
        assert leaked not in str(entry)
        assert entry["response_headers"]["x-partner-trace-id"] == "chekt_test_[redacted]"
        assert entry["response_headers"]["x-total-count"] == answers[0].headers["x-total-count"]


def test_links_in_a_replayed_alarm_list_are_made_for_the_moment(api: Api) -> None:
    key = _apps_key(api)
    polled = {**api.bearer(key), "Host": "localhost"}
    first = api.client.get(ALARMS, headers=polled)
    api.client.get(ALARMS, headers=polled)
    _services(api).world.clock.advance(2 * 3600)  # type: ignore[attr-defined]
    replayed = api.client.get(ALARMS, headers=polled)
    made = api.client.get(ALARMS, headers=api.bearer(key))  # another Host: the handler's
    assert replayed.content != first.content  # links made anew, for the new moment
    assert replayed.content == made.content
    assert replayed.headers["content-length"] == made.headers["content-length"]


def test_head_goes_the_normal_way(api: Api) -> None:
    headers = api.bearer(api.key)
    got = api.client.get(SITES, headers=headers)
    head = api.client.head(SITES, headers=headers)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]


def test_a_token_replayed_under_another_scheme_is_judged_as_the_normal_way_would(
    api: Api,
) -> None:
    """The issuer a token is checked against follows the scheme (``X-Forwarded-Proto``
    behind a proxy): a token issued over http is not one for https, replay or not."""
    headers = api.bearer(api.token())
    assert api.client.get(SITES, headers=headers).status_code == 200
    assert len(_services(api).replays) == 1
    https = f"https://testserver{SITES}"
    replayed = api.client.get(https, headers=headers)
    _services(api).replays.clear()
    normal = api.client.get(https, headers=headers)
    assert normal.status_code == 401 and "issued" in normal.json()["error"]["message"]
    assert (replayed.status_code, replayed.json()["error"]) == (
        normal.status_code,
        {**normal.json()["error"], "request_id": replayed.json()["error"]["request_id"]},
    )


def test_a_replay_is_journaled_with_the_headers_it_was_sent(api: Api) -> None:
    # the journal takes a replay's headers as known plain (the answer's, checked once, and
    # those the sandbox makes per request): they must be what the client got, unchanged
    api.client.post("/_sandbox/rate-limits", json={"per_minute": 600, "burst": 30})
    headers = api.bearer(api.key)
    answers = [api.client.get(SITES, headers=headers) for _ in range(3)]
    entries = api.client.get("/_sandbox/requests", params={"path": SITES}).json()[-3:]
    for entry, answer in zip(entries, answers, strict=True):
        assert entry["response_headers"] == dict(answer.headers.items())
        assert entry["response_body"] == answer.json()
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["29", "28", "27"]
