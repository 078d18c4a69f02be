"""The report card, over real HTTP: a deliberately naive partner (a new token per call, no
trace id, retries at once and ignores Retry-After, no Idempotency-Key, a webhook receiver
that trusts anything, works before answering and acts on duplicates) is flagged on every
finding; a well-behaved one gets a clean card. Both partners are written here, and drive a
real sandbox server whose inbound faults produce the 429s and 502s."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from helpers import TEST_SETTINGS, live_server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import Sandbox
from sandbox.cli import main
from sandbox.insights.card import report_card
from sandbox.webhooks import InvalidSignature, verify_signature
from sandbox.world import catalog

SECRET = "whsec_report_card_0123456789abcdef"
SITES = "/partner/v1/dealers/1001/sites"
SITE = f"{SITES}/10001"
FINDINGS = (
    "token_reuse",
    "retry_after",
    "backoff",
    "trace_id",
    "idempotency",
    "webhook_deadline",
    "dedupe",
    "signature_checked",
    "ignores_unknown",
)


class NaiveClient:
    """Fetches a token for every call, sends no trace id, retries failures at once (Retry-After
    ignored) and writes without an Idempotency-Key."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.http = httpx.Client(base_url=sandbox.url, timeout=10)
        self.partner = sandbox.partner

    def token(self) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.partner["client_id"],
            "client_secret": self.partner["client_secret"],
        }
        return str(self.http.post("/oauth/token", data=form).json()["access_token"])

    def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        for _ in range(4):
            auth = {"Authorization": f"Bearer {self.token()}"}
            response = self.http.request(method, path, json=body, headers=auth)
            if response.status_code < 500 and response.status_code != 429:
                break
        return response


class PoliteClient:
    """Keeps its token until it expires or is refused, sends a trace id per call, backs off
    exponentially from 0.1 s, honours Retry-After and retries a write with the same key."""

    def __init__(self, sandbox: Sandbox, sleep: Callable[[float], None] = time.sleep) -> None:
        self.http = httpx.Client(base_url=sandbox.url, timeout=10)
        self.partner = sandbox.partner
        self.sleep = sleep
        self._token: tuple[str, float] | None = None

    def token(self, *, fresh: bool = False) -> str:
        if fresh or self._token is None or time.monotonic() > self._token[1]:
            form = {
                "grant_type": "client_credentials",
                "client_id": self.partner["client_id"],
                "client_secret": self.partner["client_secret"],
            }
            answer = self.http.post("/oauth/token", data=form).json()
            self._token = (answer["access_token"], time.monotonic() + answer["expires_in"] - 60)
        return self._token[0]

    def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"x-partner-trace-id": str(uuid.uuid4())}
        if method in ("POST", "PUT", "PATCH"):
            headers["Idempotency-Key"] = str(uuid.uuid4())
        delay, refreshed = 0.1, False
        for _ in range(6):
            headers["Authorization"] = f"Bearer {self.token()}"
            response = self.http.request(method, path, json=body, headers=headers)
            if response.status_code == 401 and not refreshed:
                self.token(fresh=True)
                refreshed = True
                continue
            if response.status_code < 500 and response.status_code != 429:
                break
            asked = response.headers.get("retry-after")
            self.sleep(float(asked) if asked else delay)
            delay *= 2
        return response


def receiver(client: NaiveClient | PoliteClient, *, careful: bool) -> Starlette:
    """A webhook receiver that looks the site up on each event. Careful: verifies the
    signature first, handles each event id once, answers at once, ignores event types it
    does not know. Careless: none of it, refuses a type it does not know with a 422, and
    while ``app.state.slow`` it works for longer than the sandbox waits."""
    seen: set[str] = set()

    async def hook(request: Request) -> Response:
        body = await request.body()
        if careful:
            try:
                verify_signature(SECRET, request.headers, body)
            except InvalidSignature:
                return Response(status_code=401)
            event_id = request.headers["x-chekt-event-id"]
            if event_id in seen:
                return Response(status_code=200)
            seen.add(event_id)
        if json.loads(body)["type"] not in catalog.EVENT_TYPES:
            return Response(status_code=200 if careful else 422)
        await asyncio.to_thread(client.request, "GET", SITE)
        if request.app.state.slow:
            await asyncio.sleep(1.5)
        return Response(status_code=200)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    app.state.slow = False
    return app


def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(TEST_SETTINGS, webhook_timeout=1.0) as running:
        yield running


def _exercise(sandbox: Sandbox, client: NaiveClient | PoliteClient, *, careful: bool) -> None:
    """The same day for either partner: webhooks (one duplicated, one slow for the careless,
    one forged), then API calls through a 429 with Retry-After and two 502s on a write."""
    app = receiver(client, careful=careful)
    with client.http, live_server(app) as url:
        webhook_id = sandbox.subscribe(f"{url}/hook", secret=SECRET)["webhook_id"]
        sandbox.faults(duplicate_rate=1.0)
        [twice] = sandbox.emit("alarm.created", {"site_id": 10001})
        _until(lambda: len(sandbox.deliveries(event_id=twice, outcome="delivered")) == 2)
        sandbox.faults(duplicate_rate=0.0)
        sandbox.webhook_chaos(unknown_types=1.0)  # a type from a future release, too
        [known] = sandbox.emit("site.disarmed", {"site_id": 10001})
        _until(lambda: bool(sandbox.deliveries(event_id=known, outcome="delivered")))
        _until(lambda: any((a["chaos"] or "").startswith("unknown") for a in sandbox.deliveries()))
        sandbox.webhook_chaos(unknown_types=0.0)
        if not careful:
            app.state.slow = True
            [slow] = sandbox.emit("site.armed", {"site_id": 10001})
            sandbox.wait_for_delivery(event_id=slow, outcome="timeout")
            app.state.slow = False
        forged = sandbox.forge_delivery(webhook_id)
        assert forged["verdict"] == ("refused" if careful else "accepted")
        sandbox.unsubscribe(webhook_id)
        sandbox.fault(method="GET", path=SITES, status=429, retry_after=1, count=1)
        assert client.request("GET", SITES).status_code == 200
        sandbox.fault(method="PATCH", path=SITE, status=502, count=2)
        assert client.request("PATCH", SITE, {"name": "Acme HQ East"}).status_code == 200


def test_a_naive_partner_is_flagged_on_every_finding(sandbox: Sandbox) -> None:
    _exercise(sandbox, NaiveClient(sandbox), careful=False)
    card = sandbox.report()
    findings = {f["id"]: f for f in card["findings"]}
    assert list(findings) == list(FINDINGS)
    assert {name: f["ok"] for name, f in findings.items()} == dict.fromkeys(FINDINGS, False)
    assert card["ok"] is False and card["failed"] == len(FINDINGS)
    journal = {e["seq"]: e for e in sandbox.requests()}
    attempts = {a["seq"]: a for a in sandbox.deliveries()}
    for name in ("token_reuse", "retry_after", "backoff", "trace_id", "idempotency", "dedupe"):
        assert findings[name]["evidence"], name
        assert set(findings[name]["evidence"]) <= set(journal), name
    for name in ("webhook_deadline", "dedupe", "signature_checked", "ignores_unknown"):
        assert findings[name]["attempts"] and set(findings[name]["attempts"]) <= set(attempts)
    # what each piece of evidence is, on the wire
    assert all(journal[s]["path"] == "/oauth/token" for s in findings["token_reuse"]["evidence"])
    assert all(journal[s]["trace_id"] is None for s in findings["trace_id"]["evidence"])
    assert {journal[s]["status"] for s in findings["retry_after"]["evidence"]} == {429, 200}
    retried = [journal[s] for s in findings["idempotency"]["evidence"]]
    assert {e["method"] for e in retried} == {"PATCH"}
    assert all("idempotency-key" not in e["headers"] for e in retried)
    assert [journal[s]["status"] for s in findings["backoff"]["evidence"]] == [502, 502, 200]
    assert {journal[s]["path"] for s in findings["dedupe"]["evidence"]} == {SITE}
    [late] = findings["webhook_deadline"]["attempts"]
    assert attempts[late]["outcome"] == "timeout"
    [forged] = findings["signature_checked"]["attempts"]
    assert attempts[forged]["status_code"] == 200
    assert attempts[forged]["delivery_id"].startswith("dlv_forged_")
    [refused] = findings["ignores_unknown"]["attempts"]
    assert attempts[refused]["status_code"] == 422
    assert attempts[refused]["chaos"].startswith("unknown_type ")


def test_a_well_behaved_partner_gets_a_clean_card(sandbox: Sandbox) -> None:
    _exercise(sandbox, PoliteClient(sandbox), careful=True)
    card = sandbox.report()
    verdicts = {f["id"]: (f["ok"], f["detail"]) for f in card["findings"]}
    assert {name: ok for name, (ok, _) in verdicts.items()} == dict.fromkeys(FINDINGS, True), (
        verdicts
    )
    assert card["ok"] is True and card["passed"] == len(FINDINGS)
    # filtered to one client and a later part of the journal, it judges only that
    last = sandbox.requests()[-1]["seq"]
    later = sandbox.report(since_seq=last)
    journal_only = ("token_reuse", "retry_after", "backoff", "trace_id", "idempotency", "dedupe")
    assert all(f["ok"] is None for f in later["findings"] if f["id"] in journal_only)
    assert sandbox.report(client_id="nobody")["findings"][0]["ok"] is None


def test_nothing_to_judge_is_null_not_a_pass(sandbox: Sandbox) -> None:
    card = sandbox.report()
    assert [f["ok"] for f in card["findings"]] == [None] * len(FINDINGS)
    assert all(f["detail"] for f in card["findings"])  # each says what would judge it
    assert card["ok"] is True and card["passed"] == 0


def test_a_forged_delivery_needs_a_delivery_to_copy(sandbox: Sandbox) -> None:
    made = sandbox.subscribe("http://127.0.0.1:9/hook", secret=SECRET)
    response = httpx.post(f"{sandbox.url}/_sandbox/subscriptions/{made['webhook_id']}/forged")
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"
    response = httpx.post(f"{sandbox.url}/_sandbox/subscriptions/wh_nope/forged")
    assert response.status_code == 404
    response = httpx.get(f"{sandbox.url}/_sandbox/report", params={"since_seq": "-1"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "since_seq"


def _entry(seq: int, at: float, method: str, path: str, status: int, **more: Any) -> Any:
    return {
        "seq": seq,
        "time": at,
        "method": method,
        "path": path,
        "status": status,
        "client_id": "c",
        "tier": "secret",
        "headers": {},
        "response_headers": {},
        "body": None,
        **more,
    }


def test_backoff_needs_growing_waits_and_retry_after_is_judged_apart() -> None:
    steady = [_entry(i, i * 0.5, "GET", SITE, 503 if i < 3 else 200) for i in range(4)]
    growing = [_entry(i, t, "GET", SITE, 503 if i < 3 else 200) for i, t in enumerate((0, 1, 3, 7))]
    asked = {"retry-after": "2"}
    told = [_entry(i, i * 2.0, "GET", SITE, 503, response_headers=asked) for i in range(3)]
    by_id = {f["id"]: f for f in report_card(steady, [], deadline=30)}
    assert by_id["backoff"]["ok"] is False
    assert {f["id"]: f["ok"] for f in report_card(growing, [], deadline=30)}["backoff"] is True
    judged = {f["id"]: f["ok"] for f in report_card(told, [], deadline=30)}
    assert judged["backoff"] is None and judged["retry_after"] is True


def test_the_cli_prints_the_card_forges_and_exits_1_on_a_failure(sandbox: Sandbox) -> None:
    """``chekt-sandbox report``: PASS/FAIL/— per finding, ``--forge`` first sends every
    subscription with a delivery a forged one, ``--json`` the whole answer; exit 1 on FAIL."""
    client = PoliteClient(sandbox)
    app = receiver(client, careful=False)
    runner = CliRunner()
    with client.http, live_server(app) as url:
        sandbox.subscribe(f"{url}/hook", secret=SECRET)
        quiet = "http://127.0.0.1:9/never"
        sandbox.subscribe(quiet, events=["device.online"], secret=SECRET)  # nothing to copy
        [event_id] = sandbox.emit("site.armed", {"site_id": 10001})
        _until(lambda: bool(sandbox.deliveries(event_id=event_id, outcome="delivered")))
        printed = runner.invoke(main, ["report", "--url", sandbox.url, "--forge"])
    assert printed.exit_code == 1, printed.output
    rows = {
        row.split()[0]: row.split()[1] for row in printed.output.splitlines() if row[:2] == "  "
    }
    assert rows["signature_checked"] == "FAIL" and rows["trace_id"] == "PASS"
    assert rows["retry_after"] == "—"
    assert "forged to" in printed.output and "not forged to" in printed.output
    as_json = runner.invoke(main, ["report", "--url", sandbox.url, "--json"])
    card = json.loads(as_json.output)
    verdicts = {f["id"]: f["ok"] for f in card["findings"]}
    assert verdicts["signature_checked"] is False and verdicts["trace_id"] is True
    assert verdicts["retry_after"] is None and as_json.exit_code == 1


def test_a_virtual_clock_that_stood_still_judges_no_wait() -> None:
    """Retries at one instant of a stopped virtual clock may have waited in real time: not
    judged, and the detail says why."""
    asked = {"retry-after": "1"}
    still = [
        _entry(1, 50.0, "GET", SITES, 429, response_headers=asked),
        _entry(2, 50.0, "GET", SITES, 502),
        _entry(3, 50.0, "GET", SITES, 502),
        _entry(4, 50.0, "GET", SITES, 200),
    ]
    by_id = {f["id"]: f for f in report_card(still, [], deadline=30)}
    assert by_id["retry_after"]["ok"] is None and by_id["backoff"]["ok"] is None
    assert "stood still" in by_id["retry_after"]["detail"]
    assert "stood still" in by_id["backoff"]["detail"]


def test_a_client_that_waits_on_the_virtual_clock_is_judged_by_it() -> None:
    """Retry-After and backoff are read on the sandbox clock: a client that waits by
    advancing a virtual clock honours them, to the second."""
    with Sandbox(TEST_SETTINGS, clock="virtual") as sandbox:
        client = PoliteClient(sandbox, sleep=sandbox.clock.advance)
        with client.http:
            sandbox.fault(method="GET", path=SITES, status=429, retry_after=30, count=1)
            assert client.request("GET", SITES).status_code == 200
            sandbox.fault(method="PATCH", path=SITE, status=502, count=2)
            assert client.request("PATCH", SITE, {"name": "Acme HQ East"}).status_code == 200
        verdicts = {f["id"]: f["ok"] for f in sandbox.report()["findings"]}
        times = [e["time"] for e in sandbox.requests(path="/partner/v1/*")]
    assert verdicts["retry_after"] is True and verdicts["backoff"] is True
    assert verdicts["idempotency"] is True and verdicts["token_reuse"] is True
    assert [round(b - a, 3) for a, b in itertools.pairwise(times)][:4] == [
        30.0,
        0.0,
        0.1,
        0.2,
    ]
