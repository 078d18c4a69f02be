"""The dashboard's rules, over HTTP: the control API's access rules (open on loopback; off
loopback only after the login form, the admin token kept as an HttpOnly, SameSite=Strict
cookie that is not the token), forms refused without this browser's CSRF token or from
another site, a strict CSP on every page, secrets revealed only on loopback, every value
escaped, and bad input answered on the page, never with a 500."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from helpers import Settings
from one_hop import TestClient
from receiver import Answer, Receiver, wait_for

from sandbox import Sandbox, VirtualClock, create_app
from sandbox.ui.access import CSRF_COOKIE, SESSION_COOKIE

UI = "/_sandbox/ui"
TOKEN = "admin-token-0123456789abcdef"
PAGES = (
    "requests",
    "deliveries",
    "emit",
    "inbound",
    "report",
    "coverage",
    "credentials",
    "world",
)


@pytest.fixture
def ui() -> Iterator[TestClient]:
    app = create_app(Settings())
    with TestClient(app) as client:
        yield client
    app.state.services.close()


@pytest.fixture
def remote() -> Iterator[TestClient]:
    """A sandbox bound off loopback, with an admin token."""
    app = create_app(Settings(host="0.0.0.0", admin_token=TOKEN))  # noqa: S104
    with TestClient(app) as client:
        yield client
    app.state.services.close()


def csrf(client: TestClient) -> str:
    client.get(f"{UI}/requests")
    return str(client.cookies[CSRF_COOKIE])


def test_every_page_answers_html_under_a_strict_policy(ui: TestClient) -> None:
    for name in PAGES:
        page = ui.get(f"{UI}/{name}")
        assert page.status_code == 200, name
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "frame-ancestors 'none'" in policy
        assert "<script>" not in page.text and " style=" not in page.text
    assert ui.get("/", follow_redirects=False).headers["location"] == f"{UI}/requests"


def test_the_csrf_cookie_is_http_only_and_same_site_strict(ui: TestClient) -> None:
    cookie = ui.get(f"{UI}/requests").headers["set-cookie"].lower()
    assert CSRF_COOKIE in cookie and "httponly" in cookie and "samesite=strict" in cookie


def test_a_form_without_the_csrf_token_changes_nothing(ui: TestClient) -> None:
    csrf(ui)
    before = ui.get("/_sandbox/subscriptions").json()
    refused = ui.post(f"{UI}/subscriptions", data={"url": "http://127.0.0.1:9/x"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    wrong = ui.post(f"{UI}/subscriptions", data={"url": "http://127.0.0.1:9/x", "csrf": "x" * 43})
    assert wrong.status_code == 403
    assert ui.get("/_sandbox/subscriptions").json() == before


def test_a_form_from_another_site_is_refused_even_with_the_token(ui: TestClient) -> None:
    token = csrf(ui)
    refused = ui.post(
        f"{UI}/emit",
        data={"mode": "type", "type": "site.armed", "csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "cross_site_request"


def test_emit_and_the_clock_act_with_the_token(ui: TestClient) -> None:
    token = csrf(ui)
    emitted = ui.post(
        f"{UI}/emit", data={"mode": "type", "type": "site.armed"}, headers={"X-CSRF-Token": token}
    )
    assert emitted.status_code == 200 and "site.armed" in emitted.text
    assert emitted.headers["hx-trigger"] == "sandbox-changed"
    # the system clock cannot be moved: said on the page, as htmx swaps it (200)
    moved = ui.post(
        f"{UI}/clock", data={"seconds": "60"}, headers={"X-CSRF-Token": token, "HX-Request": "1"}
    )
    assert moved.status_code == 200 and "--clock virtual" in moved.text


def test_bad_input_is_said_on_the_page_never_a_500(ui: TestClient) -> None:
    token = csrf(ui)
    h = {"X-CSRF-Token": token}
    cases = [
        ("emit", {"mode": "nonsense"}),
        ("emit", {"mode": "type", "type": "no.such.event", "site_id": "1"}),
        ("emit", {"mode": "random", "count": "-1"}),
        ("emit", {"mode": "lifecycle", "variant": "<b>bold</b>"}),
        ("subscriptions", {"url": "not a url"}),
        ("subscriptions/status", {"webhook_id": "wh_nope", "status": "enabled"}),
        ("deliveries/recover", {"hours": "soon"}),
        ("deliveries/resend", {"event_id": "evt_nope"}),
    ]
    for path, data in cases:
        answer = ui.post(f"{UI}/{path}", data=data, headers=h)
        assert 400 <= answer.status_code < 500, (path, data, answer.text)
        assert 'class="flash error"' in answer.text
        assert "<b>bold</b>" not in answer.text
    for path in ("requests?status=abc", "requests?before=x", "requests/999999", "requests/x"):
        answer = ui.get(f"{UI}/{path}")
        assert 400 <= answer.status_code < 500, path


def test_a_request_page_shows_the_exchange_redacted_and_escaped(ui: TestClient) -> None:
    creds = ui.get("/_sandbox/credentials").json()
    key = creds["api_keys"][0]["key"]
    ui.get("/partner/v1/dealers/1001/sites?<i>q</i>=1", headers={"Authorization": f"Bearer {key}"})
    rows = ui.get(f"{UI}/requests", params={"path": "/partner/v1/dealers/1001/sites"})
    assert "&lt;i&gt;" in rows.text or "%3Ci%3E" in rows.text
    seq = ui.get("/_sandbox/journal").json()["last_seq"]
    page = ui.get(f"{UI}/requests/{seq}")
    assert page.status_code == 200
    assert key not in page.text and "[redacted]" in page.text
    assert "<i>" not in page.text


def test_secrets_are_masked_until_revealed(ui: TestClient) -> None:
    creds = ui.get("/_sandbox/credentials").json()
    client = next(c for c in creds["clients"] if c.get("client_secret"))
    page = ui.get(f"{UI}/credentials")
    assert client["client_secret"] not in page.text
    assert all(k["key"] not in page.text for k in creds["api_keys"])
    shown = ui.get(f"{UI}/credentials/reveal", params={"kind": "client", "id": client["client_id"]})
    assert client["client_secret"] in shown.text
    assert ui.get(f"{UI}/credentials/reveal", params={"kind": "x"}).status_code == 404


def test_off_loopback_the_login_form_sets_a_cookie_that_is_not_the_token(
    remote: TestClient,
) -> None:
    first = remote.get(f"{UI}/requests", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == f"{UI}/login"
    assert remote.get(f"{UI}/deliveries/timeline", headers={"HX-Request": "1"}).status_code == 401
    assert remote.get(f"{UI}/stream", headers={"Accept": "text/event-stream"}).status_code == 401
    login = remote.get(f"{UI}/login")
    assert login.status_code == 200 and 'type="password"' in login.text
    token = str(remote.cookies[CSRF_COOKIE])
    wrong = remote.post(f"{UI}/login", data={"token": "nope", "csrf": token})
    assert wrong.status_code == 401
    forged = remote.post(f"{UI}/login", data={"token": TOKEN})
    assert forged.status_code == 403
    signed = remote.post(
        f"{UI}/login", data={"token": TOKEN, "csrf": token}, follow_redirects=False
    )
    assert signed.status_code == 303 and TOKEN not in signed.headers["location"]
    cookie = signed.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and TOKEN not in cookie
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert remote.get(f"{UI}/requests").status_code == 200
    # the control API itself still wants its header: the cookie opens the dashboard only
    assert remote.get("/_sandbox/credentials").status_code == 401
    refused = remote.get(f"{UI}/credentials/reveal", params={"kind": "client", "id": "x"})
    assert refused.status_code == 403 and "loopback" in refused.text
    remote.post(f"{UI}/logout", data={"csrf": token})
    assert remote.get(f"{UI}/requests", follow_redirects=False).status_code == 303


def test_off_loopback_without_a_token_the_dashboard_stays_closed() -> None:
    app = create_app(Settings(host="0.0.0.0"))  # noqa: S104
    with TestClient(app) as client:
        assert client.get(f"{UI}/requests", follow_redirects=False).status_code == 303
        client.get(f"{UI}/login")
        token = str(client.cookies[CSRF_COOKIE])
        assert client.post(f"{UI}/login", data={"token": "", "csrf": token}).status_code == 401
    app.state.services.close()


def test_on_a_virtual_clock_the_header_moves_and_sets_the_time() -> None:
    start = 1_900_000_000.0
    app = create_app(Settings(), clock=VirtualClock(start=start))
    with TestClient(app) as client:
        h = {"X-CSRF-Token": csrf(client)}
        page = client.get(f"{UI}/deliveries")
        assert "virtual clock" in page.text and 'data-seconds="86400"' in page.text
        moved = client.post(f"{UI}/clock", data={"seconds": "3600"}, headers=h)
        assert "2030-03-17 18:46:40.000Z" in moved.text
        assert client.get("/_sandbox/clock").json()["now"] == start + 3600
        client.post(f"{UI}/clock", data={"now": "2030-03-18T00:00:00"}, headers=h)
        assert client.get("/_sandbox/clock").json()["now"] == 1_900_022_400.0
        back = client.post(f"{UI}/clock", data={"now": "2030-01-01T00:00"}, headers=h)
        assert back.status_code == 422 and "backwards" in back.text
        site = client.get(f"{UI}/emit").text.split('<option value="')[2].split('"')[0]
        emitted = client.post(
            f"{UI}/emit",
            data={"mode": "lifecycle", "variant": "handled", "site_id": site},
            headers=h,
        )
        assert emitted.text.count("<li>") == 4
        world = client.get(f"{UI}/world").text
        alarm_id = emitted.text.split("(")[1].split(")")[0]
        assert alarm_id in world
        client.post(f"{UI}/clock", data={"seconds": "3600"}, headers=h)  # the lifecycle plays out
        alarms = client.get(f"{UI}/world/alarms", headers={"HX-Request": "1"}).text
        assert alarms.startswith('<table class="alarms" id="alarms"')
        row = alarms.split(alarm_id)[1].split("</tr>")[0]
        assert 'class="state-resolved"' in row
    app.state.services.close()


def test_the_stream_says_what_changed_and_ends_when_the_server_stops() -> None:
    sandbox = Sandbox(Settings()).start()
    stopping = threading.Thread(target=sandbox.stop)
    try:
        with httpx.stream("GET", sandbox.url + UI + "/stream", timeout=10) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert "script-src 'self'" in stream.headers["content-security-policy"]
            lines = stream.iter_lines()
            assert next(lines) == "retry: 1000"
            httpx.get(sandbox.url + "/partner/v1/dealers/1001/sites")  # refused, and recorded
            assert next(line for line in lines if line.startswith("event:")) == "event: journal"
            stopping.start()
            list(lines)  # ends: the server closed the stream as it stopped
        stopping.join(10)
        assert not stopping.is_alive()
    finally:
        if not stopping.is_alive() and not stopping.ident:
            sandbox.stop()


def test_resend_and_recover_from_the_deliveries_view(receiver: tuple[Receiver, str]) -> None:
    rx, url = receiver
    rx.answers["/down"] = Answer(status=500)
    clock = VirtualClock(start=1_900_000_000.0)
    app = create_app(Settings(), clock=clock)
    with TestClient(app) as client:
        h = {"X-CSRF-Token": csrf(client)}
        client.post("/_sandbox/subscriptions", json={"url": f"{url}/up", "events": ["site.armed"]})
        client.post(
            "/_sandbox/subscriptions", json={"url": f"{url}/down", "events": ["site.armed"]}
        )
        [event_id] = client.post("/_sandbox/events", json={"type": "site.armed"}).json()[
            "event_ids"
        ]
        client.post("/_sandbox/clock/advance", json={"seconds": 86_401})  # all 8 tries, failed
        view = client.get(f"{UI}/deliveries").text.partition('id="timeline"')[2]
        assert f'data-event="{event_id}"' in view
        assert view.count('class="mark fail"') == 8 and view.count('class="mark ok"') == 1
        assert "state-failed" in view and 'class="next"' not in view
        resent = client.post(f"{UI}/deliveries/resend", data={"event_id": event_id}, headers=h)
        assert "2 new" in resent.text
        recovered = client.post(f"{UI}/deliveries/recover", data={"hours": "48"}, headers=h)
        assert "1 new" in recovered.text
        deliveries = app.state.services.world.store.scalar("SELECT COUNT(*) FROM deliveries")
        assert deliveries == 2 + 2 + 1
    app.state.services.close()


def _naive_traffic(client: TestClient) -> list[int]:
    """What a naive partner does: a new token for every call, no trace id. The journal seqs
    of its API calls."""
    partner = next(
        c
        for c in client.get("/_sandbox/credentials").json()["clients"]
        if c["kind"] == "platform_partner" and c.get("client_secret")
    )
    form = {
        "grant_type": "client_credentials",
        "client_id": partner["client_id"],
        "client_secret": partner["client_secret"],
    }
    calls = []
    for _ in range(3):
        token = client.post("/oauth/token", data=form).json()["access_token"]
        sites = client.get(
            "/partner/v1/dealers/1001/sites", headers={"Authorization": f"Bearer {token}"}
        )
        assert sites.status_code == 200
        calls.append(client.get("/_sandbox/journal").json()["last_seq"])
    return calls


def test_the_report_card_shows_each_finding_with_links_to_its_evidence(ui: TestClient) -> None:
    calls = _naive_traffic(ui)
    page = ui.get(f"{UI}/report")
    assert page.status_code == 200
    card = ui.get("/_sandbox/report").json()
    for finding in card["findings"]:  # the same verdicts as the control API, row by row
        row = page.text.split(f'data-finding="{finding["id"]}"')[1].split("</tr>")[0]
        verdict = {True: "PASS", False: "FAIL", None: "—"}[finding["ok"]]
        assert f'<td class="verdict">{verdict}</td>' in row, finding["id"]
        for seq in finding["evidence"]:
            assert f'href="{UI}/requests/{seq}"' in row
    trace = page.text.split('data-finding="trace_id"')[1].split("</tr>")[0]
    assert "FAIL" in trace and all(f"/requests/{seq}" in trace for seq in calls)
    assert "FAIL" in page.text.split('data-finding="token_reuse"')[1].split("</tr>")[0]
    fragment = ui.get(f"{UI}/report/card", headers={"HX-Request": "1"})
    assert fragment.text.startswith('<section id="report-card"')
    assert 'hx-trigger="sse:journal, sse:deliveries' in fragment.text


def test_the_forge_button_sends_the_control_apis_forgery_and_needs_the_csrf_token(
    receiver: tuple[Receiver, str],
) -> None:
    rx, url = receiver
    app = create_app(Settings())
    with TestClient(app) as client:
        made = client.post(
            "/_sandbox/subscriptions",
            json={"url": f"{url}/hook?<b>x</b>", "events": ["site.armed"]},
        ).json()
        webhook_id = made["webhook_id"]
        page = client.get(f"{UI}/report").text
        assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
        h = {"X-CSRF-Token": csrf(client)}
        early = client.post(f"{UI}/report/forged", data={"webhook_id": webhook_id}, headers=h)
        assert early.status_code == 409 and "no delivery yet" in early.text
        missing = client.post(f"{UI}/report/forged", data={"webhook_id": "wh_<i>"}, headers=h)
        assert missing.status_code == 404 and "<i>" not in missing.text
        client.post("/_sandbox/events", json={"type": "site.armed"})
        wait_for(lambda: rx.at("/hook"))
        refused = client.post(f"{UI}/report/forged", data={"webhook_id": webhook_id})
        assert refused.status_code == 403 and len(rx.at("/hook")) == 1
        sent = client.post(f"{UI}/report/forged", data={"webhook_id": webhook_id}, headers=h)
        assert sent.status_code == 200 and "200 (accepted)" in sent.text
        assert sent.headers["hx-trigger"] == "sandbox-changed"
        assert len(rx.at("/hook")) == 2
        card = client.get(f"{UI}/report").text
        row = card.split('data-finding="signature_checked"')[1].split("</tr>")[0]
        assert "FAIL" in row and f"{UI}/deliveries/attempts/" in row
        attempt = row.split("/deliveries/attempts/")[1].split('"')[0]
        detail = client.get(f"{UI}/deliveries/attempts/{attempt}")
        assert detail.status_code == 200 and "dlv_forged_" in detail.text
        assert "[redacted]" in detail.text  # its signature, as the exports hide it
        for wrong in ("999999", "x", "0"):
            assert client.get(f"{UI}/deliveries/attempts/{wrong}").status_code == 404
    app.state.services.close()


def test_coverage_counts_the_called_operation_and_filters_the_untouched(ui: TestClient) -> None:
    _naive_traffic(ui)
    found = ui.get("/_sandbox/coverage").json()
    called = next(op for op in found["operations"] if op["calls"])
    page = ui.get(f"{UI}/coverage")
    assert page.status_code == 200
    assert f"{found['covered']}/{found['total']}" in page.text
    row = page.text.split(f'data-operation="{called["operation_id"]}"')[1].split("</tr>")[0]
    assert 'class="touched"' in row and f'<td class="calls">{called["calls"]}</td>' in row
    assert page.text.count('class="untouched"') >= found["total"] - found["covered"]
    only = ui.get(f"{UI}/coverage", params={"untouched": "1"}).text
    assert f'data-operation="{called["operation_id"]}"' not in only
    assert only.count("<tr data-operation=") == found["total"] - found["covered"]
    assert "platform_partner" in page.text or "secret" in page.text  # a tier exercised


def test_inbound_events_show_with_their_alarm_and_bridge_tokens_are_masked() -> None:
    with Sandbox(Settings(db=":memory:")) as sandbox:
        bridge = next(b for b in sandbox.bridges if b["dealer_id"] == 1001 and 2 in b["channels"])
        assert bridge["url"]
        creds = httpx.get(f"{sandbox.url}{UI}/credentials").text
        assert bridge["api_token"] not in creds and bridge["url"] in creds
        assert f"kind=bridge&amp;id={bridge['bridge_id']}" in creds
        shown = httpx.get(
            f"{sandbox.url}{UI}/credentials/reveal",
            params={"kind": "bridge", "id": str(bridge["bridge_id"])},
        )
        assert bridge["api_token"] in shown.text
        hostile = "<img src=x onerror=alert(1)>"
        posted = httpx.post(
            f"{bridge['url']}/api/v1/events",
            json={"target_channel": 2, "event_description": hostile},
            auth=("apikey", bridge["api_token"]),
        )
        assert posted.status_code == 200, posted.text
        alarm_id = posted.json()["alarm_id"]
        page = httpx.get(f"{sandbox.url}{UI}/inbound")
        assert page.status_code == 200 and hostile not in page.text
        assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
        row = page.text.split("<tr data-inbound=")[1].split("</tr>")[0]
        assert alarm_id in row and "bridge" in row
        rows = httpx.get(f"{sandbox.url}{UI}/inbound/rows", headers={"HX-Request": "1"})
        assert rows.text.startswith('<tbody id="inbound-rows"') and alarm_id in rows.text


def test_off_loopback_no_bridge_token_is_revealed(remote: TestClient) -> None:
    remote.get(f"{UI}/login")
    token = str(remote.cookies[CSRF_COOKIE])
    remote.post(f"{UI}/login", data={"token": TOKEN, "csrf": token})
    page = remote.get(f"{UI}/credentials")
    assert page.status_code == 200 and "kind=bridge" not in page.text
    refused = remote.get(f"{UI}/credentials/reveal", params={"kind": "bridge", "id": "1"})
    assert refused.status_code == 403 and "loopback" in refused.text


def test_emit_shows_who_is_watching_and_deliveries_show_each_profile(
    receiver: tuple[Receiver, str],
) -> None:
    rx, url = receiver
    app = create_app(Settings())
    with TestClient(app) as client:
        for profile in ("chekt-apps", "dealer-v1"):
            made = client.post(
                "/_sandbox/subscriptions", json={"url": f"{url}/{profile}", "profile": profile}
            )
            assert made.status_code == 201, made.text
        emit = client.get(f"{UI}/emit").text.split('id="watching"')[1].split("</table>")[0]
        assert emit.count('<td class="profile">') == 2 and "dealer-v1" in emit
        client.post("/_sandbox/events", json={"type": "site.armed"})
        wait_for(lambda: len(rx.at("/chekt-apps")) + len(rx.at("/dealer-v1")) == 2)
        legend = client.get(f"{UI}/deliveries").text.split('class="legend"')[1].split("</ul>")[0]
        assert '<span class="profile">chekt-apps</span>' in legend
        assert '<span class="profile">dealer-v1</span>' in legend
    app.state.services.close()
