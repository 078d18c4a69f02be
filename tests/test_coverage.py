"""Coverage of the documented surface: the example partner app's own suite, run with the
plugin's ``--chekt-coverage``, is reported to have called exactly the operations its
journal shows; path parameters are matched to their templates, fixed segments first;
control routes are not counted; the CLI and the threshold work."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from helpers import TEST_SETTINGS

from sandbox import Sandbox
from sandbox.cli import main
from sandbox.insights.coverage import Operations, merge

EXAMPLE_SUITE = Path(__file__).parent.parent / "examples" / "partner_app" / "tests"


class JournalKeeper:
    """A plugin for the inner run: each test's journal, read before its sandbox goes."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        sandbox = getattr(item, "funcargs", {}).get("chekt_sandbox")
        if sandbox is not None:
            self.entries += sandbox.requests()
        yield


def _template(paths: dict[str, Any], method: str, path: str) -> str | None:
    """The documented template a journaled call fits: the one with the fewest parameters."""
    fits = [
        template
        for template, item in paths.items()
        if method.lower() in item and re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path)
    ]
    return min(fits, key=lambda t: t.count("{"), default=None)


def test_the_example_suite_is_reported_as_the_journal_shows(pytester: pytest.Pytester) -> None:
    keeper = JournalKeeper()
    report = pytester.path / "coverage.json"
    result = pytester.runpytest(
        str(EXAMPLE_SUITE),
        "-p",
        "no:cacheprovider",
        "--chekt-coverage",
        f"--chekt-coverage-json={report}",
        plugins=[keeper],
    )
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*CHeKT sandbox coverage*", "CHeKT coverage: */* operations*"])
    found = json.loads(report.read_text())
    with Sandbox(TEST_SETTINGS) as sandbox:
        paths = httpx.get(f"{sandbox.url}/openapi.json").json()["paths"]
    called = Counter(
        (e["method"], _template(paths, e["method"], e["path"])) for e in keeper.entries
    )
    assert keeper.entries and None not in {template for _, template in called}
    reported = {
        (op["method"], op["path"]): op["calls"] for op in found["operations"] if op["calls"]
    }
    assert reported == dict(called)
    assert found["covered"] == len(called)
    assert ("GET", "/partner/v1/dealers/{dealer_id}/sites/{site_id}") in reported
    assert {t["tier"] for t in found["tiers"] if t["calls"]} == {
        e["tier"] for e in keeper.entries if e["tier"]
    }
    delivered = {t["type"] for t in found["event_types"] if t["delivered"]}
    assert {"alarm.created", "alarm.resolved", "device.offline"} <= delivered
    assert "site.disarmed" not in delivered  # the suite never emits it


def test_a_threshold_fails_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx

        def test_one_call(chekt_sandbox):
            headers = {"Authorization": f"Bearer {chekt_sandbox.api_key}"}
            url = f"{chekt_sandbox.url}/partner/v1/dealers/1001/sites"
            assert httpx.get(url, headers=headers).status_code == 200
        """
    )
    failed = pytester.runpytest("-p", "no:cacheprovider", "--chekt-coverage-min=50")
    failed.assert_outcomes(passed=1)
    assert failed.ret == pytest.ExitCode.TESTS_FAILED
    failed.stdout.fnmatch_lines(["*1/* operations*", "*FAIL: CHeKT coverage * under*50 %"])
    passed = pytester.runpytest("-p", "no:cacheprovider", "--chekt-coverage-min=1")
    assert passed.ret == pytest.ExitCode.OK


def test_path_parameters_fixed_segments_first_and_control_routes_not_counted() -> None:
    with Sandbox(TEST_SETTINGS) as sandbox:
        headers = {"Authorization": f"Bearer {sandbox.api_key}"}
        for path in ("/dealers/1001/sites/10001", "/dealers/1001/sites/10002", "/dealers/9/x"):
            httpx.get(f"{sandbox.url}/partner/v1{path}", headers=headers)
        httpx.get(f"{sandbox.url}/_sandbox/health")
        found = sandbox.coverage()
        one_client = sandbox.coverage(since_seq=2)
        document = httpx.get(f"{sandbox.url}/openapi.json").json()["paths"]
    calls = {(op["method"], op["path"]): op for op in found["operations"] if op["calls"]}
    site = calls[("GET", "/partner/v1/dealers/{dealer_id}/sites/{site_id}")]
    assert site["calls"] == 2 and site["statuses"] == {"200": 2}
    assert found["unmatched"] == [{"method": "GET", "path": "/partner/v1/dealers/9/x", "calls": 1}]
    assert not any(op["path"].startswith("/_sandbox") for op in found["operations"])
    assert {t["tier"]: t["calls"] for t in found["tiers"]}["api_key"] == 3
    assert {c["code"]: c["received"] for c in found["error_codes"]}["not_found"] == 1
    assert one_client["covered"] == 0  # only the unmatched call comes after seq 2
    ops = Operations(document)
    assert ops.match("GET", "/v1/events/stream")["path"] == "/v1/events/stream"  # type: ignore[index]
    assert ops.match("GET", "/v1/alarms/A-1")["path"] == "/v1/alarms/{alarm_id}"  # type: ignore[index]
    assert ops.match("DELETE", "/v1/events/stream") is None
    assert ops.match("GET", "/_sandbox/health") is None


def test_merging_sums_calls_and_statuses() -> None:
    one = {
        "operations": [{"method": "GET", "path": "/a", "calls": 1, "statuses": {"200": 1}}],
        "tiers": [{"tier": "secret", "calls": 1}],
    }
    two = {
        "operations": [
            {"method": "GET", "path": "/a", "calls": 2, "statuses": {"200": 1, "503": 1}}
        ],
        "tiers": [{"tier": "secret", "calls": 0}],
    }
    merged = merge([one, two, {"operations": [], "tiers": []}])
    assert merged["operations"] == [
        {"method": "GET", "path": "/a", "calls": 3, "statuses": {"200": 2, "503": 1}}
    ]
    assert merged["covered"] == 1 and merged["total"] == 1
    assert one["operations"][0]["calls"] == 1  # the inputs are left alone


def test_the_cli_prints_the_table_and_fails_under_min() -> None:
    with Sandbox(TEST_SETTINGS) as sandbox:
        headers = {"Authorization": f"Bearer {sandbox.api_key}"}
        httpx.get(f"{sandbox.url}/partner/v1/dealers/1001/sites", headers=headers)
        runner = CliRunner()
        table = runner.invoke(main, ["coverage", "--url", sandbox.url, "--touched"])
        as_json = runner.invoke(main, ["coverage", "--url", sandbox.url, "--json"])
        under = runner.invoke(main, ["coverage", "--url", sandbox.url, "--min", "90"])
    assert table.exit_code == 0, table.output
    assert "1/" in table.output and "/partner/v1/dealers/{dealer_id}/sites" in table.output
    assert "—" not in table.output.split("event types")[0]  # --touched: called ones only
    assert json.loads(as_json.output)["covered"] == 1
    assert under.exit_code == 1 and "under 90 %" in under.output
