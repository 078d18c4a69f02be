"""Scenario files: the shipped ones pass against the example partner service and fail,
readably, when the service is broken in the way each one guards; bad files get precise
errors; the JUnit report names every step."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET  # our own report files, not untrusted input
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import live_server, rsa_key
from partner_app.app import Switches, create_partner_app
from partner_app.testing import register

from sandbox.cli import main
from sandbox.scenario import (
    Report,
    Runner,
    ScenarioError,
    junit,
    load,
    parse,
    sandbox_for,
    summary,
)
from sandbox.scenario.spec import json_schema

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
KEY = rsa_key()
SECRET = "whsec_example_partner_0123456789"
CLIENT_SECRET = "example-partner-secret-0123456789"


# scenarios in which the service holds a CHeKT Apps API key, for these dealers
APPS_DEALERS = {"alarm-handling": (1001,)}


@contextmanager
def example_service(
    scenario_path: Path, switches: Switches, outage: float = 0.0
) -> Iterator[tuple[Runner, object]]:
    """The scenario's own sandbox, with the example service registered and listening."""
    scenario = load(scenario_path)
    with sandbox_for(scenario) as sandbox:
        config = register(
            sandbox,
            "example-partner",
            KEY,
            SECRET,
            apps_dealers=APPS_DEALERS.get(scenario_path.stem, ()),
            dealer_ids=[1001, 1002],
            client_secret=CLIENT_SECRET,
            redirect_uris=["http://localhost:3000/callback"],
        )
        if outage:
            switches.outage_until = sandbox.clock.now() + outage
        with live_server(create_partner_app(config, switches)) as url:
            runner = Runner(
                sandbox,
                callback=f"{url}/chekt/webhooks",
                secret=SECRET,
                client_id="example-partner",
                client_secret=CLIENT_SECRET,
            )
            yield runner, scenario


def run(name: str, switches: Switches | None = None, outage: float = 0.0) -> Report:
    path = SCENARIOS / f"{name}.yaml"
    with example_service(path, switches or Switches(), outage) as (runner, scenario):
        return runner.run(scenario)  # type: ignore[arg-type]


# each shipped scenario, the outage it needs, and the way of breaking the service it guards
CASES = {
    "alarm-lifecycle": (0.0, Switches(enrich=False), "GET /partner/v1/dealers/1001/sites/10001"),
    "device-flapping": (0.0, Switches(down=True), "not answered as expected"),
    "signature-hardening": (0.0, Switches(check_signatures=False), "expected it to reject"),
    "outage-recovery": (7260.0, None, "not answered as expected"),
    "dealer-onboarding": (0.0, Switches(enrich=False), "/partner/v1/dealers/1003/sites/"),
    "alarm-handling": (
        0.0,
        Switches(handle_alarms=False),
        "was not acknowledged and annotated (uncertain) by app within 3 s: it is created",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_shipped_scenario_passes_and_catches_its_bug(name: str) -> None:
    outage, broken, message = CASES[name]
    report = run(name, outage=outage)
    assert report.passed, "\n".join(f"{r.step.label}: {r.detail}" for r in report.results)
    # broken: the way of breaking it, or (None) an outage that never ends
    report = run(name, outage=math.inf) if broken is None else run(name, broken, outage=outage)
    assert not report.passed
    failure = next(r for r in report.results if not r.passed)
    assert message in failure.detail, failure.detail


def test_signature_hardening_also_catches_a_service_that_does_not_dedupe() -> None:
    report = run("signature-hardening", Switches(dedupe=False))
    failure = next(r for r in report.results if not r.passed)
    assert "did it dedupe?" in failure.detail


def _storm(slow: float, enrich: bool = True) -> dict[str, Any]:
    """The storm's report, from a process of its own (``tests/storm_process.py``)."""
    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(ROOT / "examples")])}
    done = subprocess.run(
        [sys.executable, str(here / "storm_process.py"), str(slow), "enrich" if enrich else "-"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return report


@pytest.mark.latency
def test_alarm_storm_reports_latency() -> None:
    report = _storm(0.0)
    assert report["passed"], report["details"]
    assert {"delivery_p50_ms", "delivery_p99_ms", "delivery_max_ms"} <= set(report["metrics"])


def test_alarm_storm_catches_a_slow_service() -> None:
    # no latency mark: a loaded machine only makes a slow service slower. The service does
    # not enrich (a Partner API call per alarm, the storm's largest CPU cost): its slowness
    # alone is what the latency check must catch
    report = _storm(0.3, enrich=False)
    assert not report["passed"]
    assert "delivery latency p99_ms is" in report["details"][-1], report["details"]


def test_junit_report_names_every_step(tmp_path: Path) -> None:
    report = run("alarm-lifecycle", Switches(enrich=False))
    path = tmp_path / "junit.xml"
    junit([report], path)
    suites = ET.parse(path).getroot()  # noqa: S314
    assert suites.tag == "testsuites"
    [suite] = suites.findall("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(report.scenario.steps) == int(suite.get("tests", "0"))
    assert cases[0].get("name") == "01 an alarm is created at site 10001"
    assert suite.get("failures") == "1"
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == 1 and failed[0].get("line")
    assert all(c.find("skipped") is not None for c in cases[cases.index(failed[0]) + 1 :])
    # the report card of the partner's traffic rides along as suite properties, not cases
    verdicts = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert [f["id"] for f in report.findings] == [
        name.removeprefix("chekt.report.") for name in verdicts
    ]
    assert verdicts["chekt.report.webhook_deadline"] == "pass"  # it answered in time
    assert set(verdicts.values()) <= {"pass", "fail", "unknown"}
    assert "report card" in summary(report)


def test_shipped_json_schema_is_current() -> None:
    shipped = json.loads((ROOT / "sandbox" / "scenario" / "scenario.schema.json").read_text())
    assert shipped == json_schema()
    for path in SCENARIOS.glob("*.yaml"):
        load(path)  # every shipped scenario is valid


MISTAKES = [
    ("name: x\nsteps: [\n", ":3", "not valid YAML"),
    ("- a\n- b\n", ":1", "top level must be a mapping"),
    ("name: x\nstep:\n  - wait: 1\n", ":2", "did you mean 'steps'"),
    ("steps:\n  - wait: 1\n", ":1", "needs 'name'"),
    ("name: x\nsteps: []\n", ":2", "non-empty list"),
    ("name: x\nsteps:\n  - just text\n", ":3", "each step is a mapping"),
    ("name: x\nsteps:\n  - emitt: {type: alarm.created}\n", ":3", "did you mean 'emit'"),
    ("name: x\nsteps:\n  - {wait: 1, advance: 2}\n", ":3", "split wait and advance"),
    ("name: x\nsteps:\n  - emit: {tpye: alarm.created}\n", ":3", "did you mean 'type'"),
    ("name: x\nsteps:\n  - random: {count: ten}\n", ":3", "count must be a whole number"),
    ("name: x\nsteps:\n  - emit: {type: alarm.creatd}\n", ":3", "did you mean 'alarm.created'"),
    ("name: x\nsteps:\n  - advance: 2 hours\n", ":3", "must be a duration"),
    ("name: x\nsteps:\n  - call: {method: GET}\n", ":3", "call needs 'path'"),
    ("name: x\nprofile: legacy\nsteps:\n  - wait: 1\n", ":2", "did you mean 'legacy-guide'"),
    ("name: x\nsettings: {sead: 1}\nsteps:\n  - wait: 1\n", ":2", "did you mean 'seed'"),
    ("name: x\nsteps:\n  - expect_delivery: {outcome: ok}\n", ":3", "not one of delivered"),
    ("name: x\nsteps:\n  - adversarial: {kind: forged}\n", ":3", "tampered_signature"),
    ("name: x\nsteps:\n  - emit: {data: {}}\n", ":3", "exactly one of 'type' or 'lifecycle'"),
    ("name: x\nsteps:\n  - check: {requests: {cuont: 1}}\n", ":3", "did you mean 'count'"),
    ("name: x\nsteps:\n  - name: first\n    wait: -3\n", ":4", "step 1 (first)"),
    ("name: x\nsteps:\n  - call: {method: GET, path: sites}\n", ":3", "must be a path"),
    # scenario files are data: no paths, binds or keys, no tags beyond plain YAML
    ("name: x\nsettings:\n  db: /tmp/x.db\nsteps: [wait: 1]\n", ":3", "'db' cannot be set"),
    ("name: x\nsettings: {seed: 1, host: 0.0.0.0}\nsteps: [wait: 1]\n", ":2", "'host' cannot"),
    ("name: x\nsettings:\n  state_dir: /etc\nsteps: [wait: 1]\n", ":3", "'state_dir' cannot"),
    (
        "name: x\nsettings:\n  clients:\n    - {client_id: a, public_key_file: /etc/passwd}\n"
        "steps: [wait: 1]\n",
        ":3",
        "'clients' cannot be set by a scenario",
    ),
    ("name: x\nsettings: {tls: true}\nsteps: [wait: 1]\n", ":2", "a scenario may set seed"),
    (
        "name: x\nsteps:\n  - emit: !!python/object/apply:os.system [echo hi]\n",
        ":3",
        "the YAML tag !!python/object/apply:os.system is not allowed",
    ),
    ("name: !!python/object:os.system x\nsteps: [wait: 1]\n", ":1", "!!python/object:os"),
    ("name: x\nsteps:\n  - wait: !env DELAY\n", ":3", "the YAML tag !env is not allowed"),
    ("name: x\nsteps:\n  - expect_alarm: {state: acknowledged}\n", ":3", "needs 'alarm'"),
    ("name: x\nsteps:\n  - expect_alarm: {alarm: A-1}\n", ":3", "needs a 'state', 'annotated'"),
    ("name: x\nsteps:\n  - expect_alarm: {alarm: A-1, state: acked}\n", ":3", "'acknowledged'"),
    (
        "name: x\nsteps:\n  - expect_alarm: {alarm: A-1, verdict: intruder, annotated: false}\n",
        ":3",
        "a 'verdict' needs an annotation",
    ),
]


@pytest.mark.latency
def test_an_alias_bomb_is_refused_quickly() -> None:
    levels = ["  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    text = "name: bomb\nworld:\n" + "\n".join(levels) + "\nsteps: [wait: 1]\n"
    started = time.perf_counter()
    with pytest.raises(ScenarioError, match=r"^bomb\.yaml:\d+: .*expands to over 100,000 nodes"):
        parse(text, "bomb.yaml")
    assert time.perf_counter() - started < 1.0
    parse("name: x\nworld: {a: &a [1, 2]}\nsteps:\n  - emit: {type: alarm.created}\n", "ok")


@pytest.mark.parametrize(("text", "line", "message"), MISTAKES)
def test_bad_files_get_precise_errors(text: str, line: str, message: str) -> None:
    with pytest.raises(ScenarioError) as error:
        parse(text, "bad.yaml")
    assert str(error.value).startswith(f"bad.yaml{line}:"), str(error.value)
    assert message in str(error.value)


def test_replay_cli_passes_writes_junit_and_fails_with_exit_1(tmp_path: Path) -> None:
    starter = CliRunner().invoke(
        main, ["scenario", "new", "My First Alarm", "--dir", str(tmp_path)]
    )
    assert starter.exit_code == 0, starter.output
    written = tmp_path / "my-first-alarm.yaml"
    load(written)  # the starter file is valid
    path = SCENARIOS / "alarm-lifecycle.yaml"
    with example_service(path, Switches()) as (runner, _):
        callback = runner.callback or ""
        sandbox_url = runner.sandbox.url
        result = CliRunner().invoke(
            main,
            [
                "replay",
                str(path),
                "--url",
                sandbox_url,
                "--callback",
                callback,
                "--secret",
                SECRET,
                "--junit",
                str(tmp_path / "report.xml"),
            ],
        )
        assert result.exit_code == 0, result.output
        assert "PASSED" in result.output and "the service fetches the alarm" in result.output
        report_xml = ET.parse(tmp_path / "report.xml").getroot()  # noqa: S314
        assert report_xml.find("testsuite") is not None
        wrong = CliRunner().invoke(
            main,
            [
                "replay",
                str(path),
                "--url",
                sandbox_url,
                "--callback",
                callback,
                "--secret",
                "whsec_wrong_secret_000000000000",
            ],
        )
    assert wrong.exit_code == 1
    assert "FAIL" in wrong.output and "1 of 1 scenario(s) failed" in wrong.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  - emitt: {}\n")
    invalid = CliRunner().invoke(main, ["replay", str(bad)])
    assert invalid.exit_code == 1 and "did you mean 'emit'" in invalid.output
