"""``replay --url`` drives a sandbox someone is developing against: it keeps their dealers,
sites and subscriptions, counts only its own events, and looks only at what happened after it
started; its errors are one line, never a traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from helpers import live_server
from receiver import Answer, Receiver

from sandbox import Sandbox
from sandbox.cli import main
from sandbox.scenario import Runner, parse

SECRET = "whsec_replay_safety_0123456789"
DEV = "dev-partner"
DEV_SECRET = "dev-partner-secret-0123456789"

# what the developer did before the replay: connect dealer 1002 as their own "D-2" and add a site
DEVELOPERS_DAY = """
name: the developer's own data
steps:
  - call: {method: PUT, path: /partner/v1/dealers/connect, as: dealer_admin, user: "1002",
           json: {external_dealer_id: D-2, company_name: Dev Co}}
  - call: {method: POST, path: /partner/v1/dealers/1002/sites,
           json: {external_site_id: dev-site, name: Dev Site, timezone: UTC}}
"""

SCENARIO = """
name: one alarm
seed: 42
steps:
  - emit: {type: alarm.created, data: {site_id: 10001}}
  - expect_delivery: {status: 200, within: 3s}
  - call: {method: GET, path: /partner/v1/dealers/1001/sites}
  - expect_request: {method: GET, path: /partner/v1/dealers/1001/sites, within: 1s}
  - check:
      deliveries: {outcome: delivered, count: 1, every_event: true}
      requests: {method: GET, path: /partner/v1/dealers/1001/sites, count: 1}
"""


@dataclass
class Dev:
    """A developer's running sandbox with their own subscription, and the partner's receiver
    the replay sends webhooks to."""

    sandbox: Sandbox
    own_hook: Receiver
    partner: Receiver
    partner_url: str


@pytest.fixture
def dev() -> Iterator[Dev]:
    own_hook, partner = Receiver(), Receiver()
    with (
        Sandbox(clock="virtual") as sandbox,
        live_server(own_hook.app) as own_url,
        live_server(partner.app) as partner_url,
    ):
        sandbox.register_client(
            client_id=DEV,
            client_secret=DEV_SECRET,
            kind="platform_partner",
            redirect_uris=["http://localhost:3000/callback"],
        )
        report = Runner(sandbox, client_id=DEV, client_secret=DEV_SECRET).run(parse(DEVELOPERS_DAY))
        assert report.passed, [r.detail for r in report.results]
        sandbox.subscribe(f"{own_url}/mine", secret="whsec_developer_own_0123456789")
        sandbox.emit("alarm.created", {"site_id": 10001})  # their own traffic before the replay
        sandbox.wait_for_delivery(outcome="delivered")
        yield Dev(sandbox, own_hook, partner, f"{partner_url}/hook")


def replay(tmp_path: Path, dev: Dev, text: str, *extra: str) -> Result:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    args = ["replay", str(path), "--url", dev.sandbox.url, "--callback", dev.partner_url]
    return CliRunner().invoke(main, [*args, "--secret", SECRET, *extra])


def _dev_state(sandbox: Sandbox) -> tuple[list[int], list[str], list[str]]:
    [client] = [c for c in sandbox.credentials["clients"] if c["client_id"] == DEV]
    token = sandbox.token(DEV, DEV_SECRET)
    answer = httpx.get(
        f"{sandbox.url}/partner/v1/dealers/1002/sites",
        headers={"Authorization": f"Bearer {token}"},
    )
    sites = answer.json() if answer.status_code == 200 else []  # 404: no longer connected
    hooks = [s["url"] for s in sandbox.call("GET", "/_sandbox/subscriptions")]
    return client["dealer_ids"], [s["name"] for s in sites], hooks


def test_replay_with_url_keeps_the_developers_data_and_leaves_no_subscription(
    tmp_path: Path, dev: Dev
) -> None:
    before = _dev_state(dev.sandbox)
    assert before[0] == [1002] and "Dev Site" in before[1] and len(before[2]) == 1
    result = replay(tmp_path, dev, SCENARIO)
    assert result.exit_code == 0, result.output
    assert f"replaying against the sandbox at {dev.sandbox.url} (its world as it is)" in (
        result.output
    )
    assert _dev_state(dev.sandbox) == before  # dealer, site, and only the developer's hook
    assert len(dev.partner.at("/hook")) == 1  # its own event, once


def test_replay_passes_only_on_its_own_deliveries(tmp_path: Path, dev: Dev) -> None:
    dev.partner.answers["/hook"] = Answer(status=500, body=b'{"error": "db down"}')
    result = replay(tmp_path, dev, SCENARIO)
    # the developer's own subscription answered 200 for the same event: that is not the partner
    assert result.exit_code == 1
    assert "not answered as expected" in result.output
    assert '#1 failed: 500 {"error": "db down"}' in result.output


def test_replay_ignores_requests_made_before_it_started(tmp_path: Path, dev: Dev) -> None:
    token = dev.sandbox.token(DEV, DEV_SECRET)
    httpx.get(
        f"{dev.sandbox.url}/partner/v1/dealers/1002/sites",
        headers={"Authorization": f"Bearer {token}"},
    )
    result = replay(
        tmp_path,
        dev,
        "name: stale\nsteps:\n"
        "  - expect_request: {method: GET, path: /partner/v1/dealers/1002/sites, within: 0.3}\n",
    )
    assert result.exit_code == 1 and "saw 0" in result.output


def test_reset_only_when_asked(tmp_path: Path, dev: Dev) -> None:
    result = replay(tmp_path, dev, SCENARIO, "--reset")
    assert result.exit_code == 0, result.output
    assert "reset to seed 42" in result.output
    assert _dev_state(dev.sandbox) == ([], [], [])  # what --reset is for


def test_replay_restores_the_fault_knobs_it_changed(tmp_path: Path, dev: Dev) -> None:
    text = "name: faults\nsteps:\n  - fault: {duplicate_rate: 1}\n"
    assert replay(tmp_path, dev, text).exit_code == 0
    assert dev.sandbox.faults() == {"duplicate_rate": 0.0, "reorder_window": 0.0}


def test_plain_replay_says_which_sandbox_it_started(tmp_path: Path) -> None:
    path = tmp_path / "wait.yaml"
    path.write_text("name: w\nsteps:\n  - advance: 1s\n")
    result = CliRunner().invoke(main, ["replay", str(path)])
    assert result.exit_code == 0, result.output
    assert "started a sandbox at http://127.0.0.1:" in result.output


def _one_line_error(result: Result) -> str:
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    [line] = result.output.strip().splitlines()[-1:]
    assert line.startswith("Error: ")
    return line


def test_junit_into_a_missing_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "wait.yaml"
    path.write_text("name: w\nsteps:\n  - advance: 1s\n")
    target = tmp_path / "reports" / "deep" / "x.xml"
    result = CliRunner().invoke(main, ["replay", str(path), "--junit", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("<?xml")
    blocked = tmp_path / "file"
    blocked.write_text("")
    failed = CliRunner().invoke(main, ["replay", str(path), "--junit", str(blocked / "x.xml")])
    assert "cannot write the JUnit report" in _one_line_error(failed)


def test_short_secret_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "wait.yaml"
    path.write_text("name: w\nsteps:\n  - advance: 1s\n")
    result = CliRunner().invoke(
        main, ["replay", str(path), "--callback", "http://127.0.0.1:9/x", "--secret", "x"]
    )
    assert "at least 16" in _one_line_error(result)


def test_unreachable_receiver_says_connection_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(
        "name: one\nsteps:\n  - emit: {type: alarm.created}\n  - expect_delivery: {within: 1s}\n"
    )
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    result = CliRunner().invoke(
        main, ["replay", str(path), "--callback", f"{url}/hook", "--secret", SECRET]
    )
    assert result.exit_code == 1
    assert f"connection refused by {url}/hook" in result.output


def test_adversarial_failures_show_the_answer_or_the_refusal(tmp_path: Path, dev: Dev) -> None:
    text = "name: forged\nsteps:\n  - adversarial: {kind: tampered_signature}\n"
    result = replay(tmp_path, dev, text)  # the test receiver accepts anything
    assert result.exit_code == 1
    assert "expected it to reject; first wrong answer: 200 ok" in result.output
    path = tmp_path / "forged.yaml"
    path.write_text(text)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
    refused = CliRunner().invoke(main, ["replay", str(path), "--callback", url, "--secret", SECRET])
    assert f"tampered_signature: connection refused by {url}" in refused.output
