"""The journal: what partners sent, with who sent it and what they got back; filtered,
bounded, redacted by default, and exact under concurrency."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers import Api, Settings, live_server, public_pem, signed_assertion
from one_hop import TestClient

from sandbox import create_app
from sandbox.auth.assertions import ASSERTION_TYPE
from sandbox.settings import ClientSpec

SITES = "/partner/v1/dealers/1001/sites"
FORM = "application/x-www-form-urlencoded"


def test_entries_say_who_called_what_and_what_they_got(api: Api) -> None:
    trace = str(uuid.uuid4())
    api.client.post(
        SITES,
        json={"external_site_id": "j-1", "name": "Journal", "timezone": "UTC"},
        headers={**api.bearer(api.key), "x-partner-trace-id": trace},
    )
    [entry] = api.client.get("/_sandbox/requests", params={"method": "POST"}).json()
    assert entry["path"] == SITES and entry["status"] == 201
    assert entry["client_id"] == "sandbox-dealer-app-1001" and entry["tier"] == "api_key"
    assert entry["dealer_id"] == 1001 and entry["trace_id"] == trace
    assert entry["body"] == {"external_site_id": "j-1", "name": "Journal", "timezone": "UTC"}
    assert entry["response_body"]["name"] == "Journal"
    assert entry["headers"]["authorization"] == "Bearer [redacted]"
    assert api.key not in str(entry)
    assert entry["duration_ms"] > 0 and entry["request_id"].startswith("req_")
    assert entry["response_headers"]["x-request-id"] == entry["request_id"]


def test_secrets_are_redacted_unless_revealed_on_loopback(api: Api) -> None:
    token = api.token()
    entries = api.client.get("/_sandbox/requests", params={"path": "/oauth/token"}).json()
    [entry] = entries
    assert entry["body"]["client_secret"] == "[redacted]"
    assert entry["response_body"]["access_token"] == "[redacted]"
    assert token not in str(entries) and api.partner["client_secret"] not in str(entries)
    assert entry["client_id"] == api.partner["client_id"]
    [raw] = api.client.get(
        "/_sandbox/requests", params={"path": "/oauth/token", "reveal": "true"}
    ).json()
    assert raw["body"]["client_secret"] == api.partner["client_secret"]
    assert raw["response_body"]["access_token"] == token


def test_filters(api: Api) -> None:
    h = api.bearer(api.key)
    api.client.get(SITES, headers=h)
    api.client.get("/partner/v1/dealers/1003/sites", headers=h)  # 404
    api.client.get("/partner/v1/dealers/1001", headers=h)
    journal = "/_sandbox/requests"

    def paths(**params: str) -> list[str]:
        return [e["path"] for e in api.client.get(journal, params=params).json()]

    assert paths(path="/partner/v1/dealers/*/sites") == [SITES, "/partner/v1/dealers/1003/sites"]
    assert paths(path_regex=r"/dealers/\d+$") == ["/partner/v1/dealers/1001"]
    assert paths(status="4xx") == ["/partner/v1/dealers/1003/sites"]
    assert paths(status="200", method="get") == [SITES, "/partner/v1/dealers/1001"]
    first = api.client.get(journal).json()[0]["seq"]
    assert len(paths(since_seq=str(first))) == 2
    assert paths(client_id="nobody") == []
    bad = api.client.get(journal, params={"path_regex": "("})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "path_regex"
    assert api.client.get(journal, params={"colour": "red"}).status_code == 422
    for digits in ("\u00b2", "\u0661\u0660"):  # ², Arabic-Indic 10: digits to isdigit only
        for path in (journal, "/_sandbox/deliveries"):
            refused = api.client.get(path, params={"since_seq": digits})
            assert refused.status_code == 422, (path, digits, refused.text)


def test_the_journal_is_bounded_and_counts_evictions() -> None:
    with TestClient(create_app(Settings(journal_entries=50))) as client:
        for _ in range(60):
            client.get("/.well-known/jwks.json")
        entries = client.get("/_sandbox/requests").json()
        stats = client.get("/_sandbox/journal").json()
    assert len(entries) == 50
    assert stats["evicted"] == 10 and stats["entries"] == 50
    assert entries[0]["seq"] == 11 and entries[-1]["seq"] == 60


def test_reset_parts(api: Api) -> None:
    h = api.bearer(api.key)
    api.client.post(
        SITES, json={"external_site_id": "r-1", "name": "R", "timezone": "UTC"}, headers=h
    )
    assert api.client.post("/_sandbox/reset", json={"only": ["recorder"]}).status_code == 200
    assert api.client.get("/_sandbox/requests").json() == []
    assert api.client.get(SITES, headers=h).headers["x-total-count"] == "6"  # world kept
    bad = api.client.post("/_sandbox/reset", json={"only": ["everything"]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "only"


def test_concurrent_clients_get_an_exact_ordered_journal() -> None:
    async def hammer(url: str, key: str) -> list[int]:
        statuses: list[int] = []
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def client() -> None:
                for _ in range(50):
                    async with session.get(
                        url + SITES, headers={"Authorization": f"Bearer {key}"}
                    ) as response:
                        await response.read()
                        statuses.append(response.status)

            await asyncio.gather(*(client() for _ in range(200)))
        return statuses

    with live_server(create_app(Settings())) as url:
        key = httpx.get(f"{url}/_sandbox/credentials").json()["api_keys"][0]["key"]
        statuses = asyncio.run(hammer(url, key))
        # 10,000 entries with their bodies: a bound for a slow machine, not a figure
        entries = httpx.get(f"{url}/_sandbox/requests", params={"path": SITES}, timeout=60).json()
    assert len(statuses) == 10_000 and set(statuses) == {200}
    assert len(entries) == 10_000
    seqs = [e["seq"] for e in entries]
    assert all(a < b for a, b in itertools.pairwise(seqs))


def test_spilled_bodies_read_back_exactly_across_files_and_old_files_are_released() -> None:
    from sandbox.recorder import Entry, Recorder, pack

    recorder = Recorder(max_entries=500, max_bytes=1 << 20)
    for n in range(3000):
        body = (f'{{"n": {n}, "pad": "' + "x" * 1000 + '"}').encode()
        recorder.add(
            Entry(
                seq=recorder.next_seq(),
                time=0.0,
                method="POST",
                path=f"/p/{n}",
                query=b"",
                headers=pack([(b"content-type", b"application/json")]),
                body=body,
                status=201,
                response_body=b'{"ok": true}',
            )
        )
    kept = recorder.query({})
    assert len(kept) == 500 and recorder.stats()["evicted"] == 2500
    for entry in kept:
        n = int(entry.path.rsplit("/", 1)[1])
        assert (
            entry.body.startswith(f'{{"n": {n},'.encode())
            and len(entry.body) == len(f'{{"n": {n}, "pad": "'.encode()) + 1002
        )
        assert entry.response_body == b'{"ok": true}'
    assert len(recorder._spill.files) <= 3  # files of evicted entries were closed
    recorder.clear()
    assert recorder._spill.files == {}


def test_a_body_answered_again_and_again_is_held_once_and_counted_each_time() -> None:
    """A replay answers with the same body object every time: the journal holds it once in
    memory for all its entries (not a copy spilled with each), reads it back exactly, counts
    it against the byte bound for each entry, and lets it go with the last."""
    from sandbox.recorder import Entry, Recorder

    body = b'[{"site_id": 1, "name": "' + b"s" * 2000 + b'"}]'
    clean = b'{"ok": true}'

    def recorded(repeats: bool) -> Recorder:
        recorder = Recorder(max_entries=100)
        for n in range(300):
            recorder.add(
                Entry(
                    seq=0,
                    time=0.0,
                    method="GET",
                    path="/p",
                    query=b"",
                    headers=b"host:x",
                    body=b"",
                    status=200,
                    response_headers=b"content-type:application/json",
                    response_body=body if n % 3 else clean,
                    response_repeats=repeats and n % 3 != 0,
                )
            )
        return recorder

    held, spilled = recorded(True), recorded(False)
    assert held.stats() == spilled.stats()  # the same entries, bytes and evictions
    entries = held.query({})
    assert [e.response_body for e in entries] == [e.response_body for e in spilled.query({})]
    assert [e.seq for e in entries] == list(range(201, 301))
    assert held._held == len(body) and len(held._bodies) == 1  # one copy in memory
    assert spilled._held == 0
    held.max_entries = 1
    held.add(Entry(seq=0, time=0.0, method="GET", path="/q", query=b"", headers=b"", body=b""))
    assert held._held == 0 and held._bodies == {}  # gone with its last entry


def _last(client: TestClient, **filters: str) -> dict[str, Any]:
    entries = client.get("/_sandbox/requests", params=filters).json()
    return dict(entries[-1])


def test_tier_tells_the_four_credential_kinds_apart() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings = Settings(
        clients=(ClientSpec(client_id="t-signer", dealer_ids=(1001,), public_key=public_pem(key)),)
    )
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        secret_token = api.token()
        signed = client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": signed_assertion("t-signer", key),
            },
        ).json()["access_token"]
        admin = next(u for u in api.creds["users"] if u["dealer_id"] == 1001)["email"]
        redirect = api.partner["redirect_uris"][0]
        location = client.get(
            "/authorize",
            follow_redirects=False,
            params={
                "response_type": "code",
                "client_id": api.partner["client_id"],
                "redirect_uri": redirect,
                "login_hint": admin,
            },
        ).headers["location"]
        user_token = client.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": parse_qs(urlsplit(location).query)["code"][0],
                "redirect_uri": redirect,
                "client_id": api.partner["client_id"],
                "client_secret": api.partner["client_secret"],
            },
        ).json()["access_token"]
        tiers = [e["tier"] for e in client.get("/_sandbox/requests").json()]
        assert tiers == ["secret", "assertion", None, "user"]  # None: /authorize
        for credential, tier, who in (
            (api.key, "api_key", "sandbox-dealer-app-1001"),
            (secret_token, "secret", api.partner["client_id"]),
            (signed, "assertion", "t-signer"),
            (user_token, "user", api.partner["client_id"]),
        ):
            client.get(SITES, headers=api.bearer(credential))
            entry = _last(client)
            assert (entry["tier"], entry["client_id"]) == (tier, who), credential
            assert [
                e["tier"]
                for e in client.get(
                    "/_sandbox/requests", params={"tier": tier, "path": SITES}
                ).json()
            ] == [tier]


def test_failed_requests_carry_the_client_they_claimed(api: Api) -> None:
    api.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": api.partner["client_id"],
            "client_secret": "not-the-secret",
        },
    )
    refused = _last(api.client)
    assert refused["status"] == 401
    assert (refused["client_id"], refused["tier"]) == (api.partner["client_id"], "secret")
    assert refused["body"]["client_secret"] == "[redacted]"
    assert refused["response_body"]["error"] == "invalid_client"  # not a secret: shown
    token = api.token()
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    api.client.get(SITES, headers=api.bearer(forged))
    entry = _last(api.client)
    assert entry["status"] == 401
    assert (entry["client_id"], entry["tier"]) == (api.partner["client_id"], "secret")
    assert entry["response_body"]["error"]["code"] == "invalid_token"  # an error code is shown


def test_unknown_filter_values_are_refused(api: Api) -> None:
    for name, value in (
        ("tier", "bogus"),
        ("status", "abc"),
        ("status", "4x"),
        ("method", "GET /"),
        ("reveal", "yes"),
    ):
        answer = api.client.get("/_sandbox/requests", params={name: value})
        assert answer.status_code == 422, (name, value)
        assert answer.json()["error"]["field"] == name


def test_emit_refuses_an_unknown_data_field_naming_the_nearest(api: Api) -> None:
    answer = api.client.post(
        "/_sandbox/events", json={"type": "site.armed", "data": {"sight_id": 1001}}
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["field"] == "data.sight_id" and "'site_id'" in error["message"]
    lifecycle = api.client.post(
        "/_sandbox/events", json={"lifecycle": "alarm", "data": {"priorty": "HIGH"}}
    )
    assert lifecycle.status_code == 422 and "'priority'" in lifecycle.json()["error"]["message"]
    assert api.client.get("/_sandbox/deliveries").json() == []  # nothing fired


def test_the_byte_bound_counts_headers() -> None:
    with TestClient(create_app(Settings(journal_bytes=64 * 1024))) as client:
        for _ in range(40):
            client.get("/.well-known/jwks.json", headers={"X-Padding": "p" * 4096})
        stats = client.get("/_sandbox/journal").json()
    assert stats["evicted"] > 0 and stats["bytes"] <= 64 * 1024


@pytest.mark.latency
def test_a_catastrophic_path_regex_answers_fast(api: Api) -> None:
    for n in (200,) * 20 + (5000,) * 5:
        api.client.get("/partner/" + "a" * n + "x")  # nothing below matches: worst backtracking
    journal = "/_sandbox/requests"
    for pattern in ("(a+)+$", "(a|aa)*$", "(.*)*x", ".*.*.*x", "a" * 300):
        started = time.monotonic()
        answer = api.client.get(journal, params={"path_regex": pattern})
        assert answer.status_code == 422, pattern
        assert answer.json()["error"]["field"] == "path_regex"
        assert time.monotonic() - started < 2
    started = time.monotonic()
    slow = api.client.get(journal, params={"path_regex": "a*a*b$"})
    assert slow.status_code in (200, 422) and time.monotonic() - started < 10
    fine = api.client.get(journal, params={"path_regex": "^/partner/a{200}x$"})
    assert fine.status_code == 200 and len(fine.json()) == 20


def test_a_trace_id_that_is_not_a_uuid_is_echoed_and_noted(api: Api) -> None:
    answer = api.client.get(SITES, headers={**api.bearer(api.key), "X-Partner-Trace-Id": "abc-1"})
    assert answer.status_code == 200 and answer.headers["x-partner-trace-id"] == "abc-1"
    entry = _last(api.client)
    assert entry["trace_id"] == "abc-1" and "not a UUID" in entry["note"]
    good = str(uuid.uuid4())
    api.client.get(SITES, headers={**api.bearer(api.key), "X-Partner-Trace-Id": good})
    assert _last(api.client)["note"] is None


def test_only_secret_values_are_hidden() -> None:
    from sandbox.redaction import Scrub

    clean = Scrub()
    answer = {
        "error": {"code": "invalid_token", "message": "expired"},
        "token_type": "Bearer",
        "note": "start_time_seconds_long_value",
        "password": "hunter2",
        "nested": [{"client_secret": "s3cret"}],
    }
    hidden = json.loads(clean.body(json.dumps(answer).encode(), "application/json"))
    assert hidden == {
        **answer,
        "password": "[redacted]",
        "nested": [{"client_secret": "[redacted]"}],
    }
    exchange = b"grant_type=authorization_code&code=abc123&state=xyz"
    assert clean.body(exchange, FORM) == b"grant_type=authorization_code&code=[redacted]&state=xyz"
    assert clean.query(b"code=DEV-17&page=2") == b"code=DEV-17&page=2"  # not an OAuth exchange
    assert clean.body(b"no credentials here", "text/plain") == b"no credentials here"
    assert clean.body(b"password=hunter2; user=me", "text/plain") == b"password=[redacted]; user=me"
    assert not clean.vault  # nothing revealable: nothing kept


@pytest.mark.latency
def test_hostile_bodies_are_recorded_and_exported_in_linear_time(api: Api) -> None:
    hostile = [b"token" * 13000, b"eyJ" * 21000, b"eyJ-" * 16000, b"key " + b"a-" * 32000]
    started = time.monotonic()
    for body in hostile:
        api.client.post(SITES, content=body, headers={"Content-Type": "text/plain"})
    entries = api.client.get("/_sandbox/requests", params={"method": "POST"}).json()
    assert len(entries) == len(hostile)
    assert time.monotonic() - started < 5  # quadratic scans took minutes
