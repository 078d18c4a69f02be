"""The pytest plugin, tested as a plugin: pytester runs small test suites that use it."""

from __future__ import annotations

import json

import pytest
from test_imports import HEAVY

# the inner suites run as partners' do, warnings as errors: an unclosed connection fails them
STRICT = ("-p", "no:cacheprovider", "-W", "error")

ISOLATION = """
import httpx

def _sites(sandbox):
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    return httpx.get(f"{sandbox.url}/partner/v1/dealers/1001/sites", headers=headers).json()

def test_writes(chekt_sandbox):
    headers = {"Authorization": f"Bearer {chekt_sandbox.api_key}"}
    created = httpx.post(f"{chekt_sandbox.url}/partner/v1/dealers/1001/sites", headers=headers,
                         json={"external_site_id": "leak", "name": "Leak", "timezone": "UTC"})
    assert created.status_code == 201
    assert any(s["external_site_id"] == "leak" for s in _sites(chekt_sandbox))

def test_sees_a_fresh_world(chekt_sandbox):
    assert not any(s["external_site_id"] == "leak" for s in _sites(chekt_sandbox))
    assert chekt_sandbox.requests(method="POST") == []
"""


def test_each_test_gets_a_reset_sandbox(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ISOLATION)
    result = pytester.runpytest(*STRICT)
    result.assert_outcomes(passed=2)


def test_marker_and_ini_settings(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchekt_sandbox_seed = 11\n")
    pytester.makepyfile("""
import pytest

def names(sandbox):
    import httpx
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    sites = httpx.get(f"{sandbox.url}/partner/v1/dealers/1001/sites", headers=headers).json()
    return [s["name"] for s in sites]

def test_ini_seed(chekt_sandbox, chekt_sandbox_factory):
    assert names(chekt_sandbox) == names(chekt_sandbox_factory(seed=11))
    assert names(chekt_sandbox) != names(chekt_sandbox_factory(seed=12))
    assert chekt_sandbox.clock.virtual is False

@pytest.mark.chekt_sandbox(clock="virtual", webhook_profile="legacy-guide")
def test_marker(chekt_sandbox):
    assert chekt_sandbox.clock.virtual is True
    assert chekt_sandbox.subscribe("http://127.0.0.1:9/x")["profile"] == "legacy-guide"
""")
    result = pytester.runpytest(*STRICT)
    result.assert_outcomes(passed=2)


def test_server_failures_fail_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
import time

def test_breaks_the_server(chekt_sandbox):
    store = chekt_sandbox.app.state.services.world.store
    store.execute(
        "INSERT INTO webhooks (webhook_id, client_id, url, events, secret, status, profile, "
        "created_at) VALUES ('wh_broken', NULL, 'http://127.0.0.1:9/x', '[\\"site.armed\\"]', "
        "'whsec_0123456789abcdef', 'enabled', 'no-such-profile', 0)")
    chekt_sandbox.emit("site.armed")
    deadline = time.monotonic() + 5
    while not chekt_sandbox.server_errors() and time.monotonic() < deadline:
        time.sleep(0.02)
""")
    result = pytester.runpytest(*STRICT)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*SandboxServerError*no-such-profile*"])


def test_xdist_workers_each_get_their_own_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_port = """

import os, pathlib

def _record(name, sandbox):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    pathlib.Path(os.environ["PORTS_DIR"], f"{worker}-{name}").write_text(sandbox.url)
"""
    # one run of two workers (each start costs seconds): loadfile keeps the isolation pair
    # on one worker, so resets hold under xdist too, and sends the other file to the other
    pytester.makepyfile(
        test_isolation=ISOLATION
        + record_port
        + "\ndef test_port_i(chekt_sandbox):\n    _record('i', chekt_sandbox)\n",
        test_ports=record_port
        + """
def test_port_a(chekt_sandbox):
    _record("a", chekt_sandbox)

def test_port_b(chekt_sandbox):
    _record("b", chekt_sandbox)
""",
    )
    ports = pytester.mkdir("ports")
    monkeypatch.setenv("PORTS_DIR", str(ports))
    # xdist and this plugin only: the other installed plugins (schemathesis, hypothesis, ...)
    # would be imported by the controller and by each worker, for nothing this test checks
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    coverage = pytester.path / "coverage.json"
    result = pytester.runpytest_subprocess(
        *("-p", "xdist.plugin", "-p", "sandbox.pytest_plugin", *STRICT),
        *("-n", "2", "--dist", "loadfile", f"--chekt-coverage-json={coverage}"),
    )
    result.assert_outcomes(passed=5)
    # each worker's coverage is merged on the controller: the three site calls of the pair
    calls = {
        (op["method"], op["path"]): op["calls"]
        for op in json.loads(coverage.read_text())["operations"]
        if op["calls"]
    }
    assert calls == {
        ("GET", "/partner/v1/dealers/{dealer_id}/sites"): 2,
        ("POST", "/partner/v1/dealers/{dealer_id}/sites"): 1,
    }
    by_worker: dict[str, set[str]] = {}
    for path in ports.iterdir():
        by_worker.setdefault(path.name.split("-")[0], set()).add(path.read_text())
    assert sum(1 for _ in ports.iterdir()) == 3
    assert all(len(urls) == 1 for urls in by_worker.values())  # a session server per worker
    if len(by_worker) == 2:
        first, second = by_worker.values()
        assert first != second  # two workers never share a server


def test_chekt_play_fails_the_test_with_the_runners_report(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml",
        passing="name: passing\nsteps:\n  - emit: {type: site.armed}\n"
        "  - check: {deliveries: {max: 0}}\n",
    )
    pytester.makefile(
        ".yaml",
        failing="name: failing\nsteps:\n  - name: nobody calls\n"
        "    expect_request: {method: GET, path: /partner/v1/*, within: 0.2s}\n",
    )
    pytester.makepyfile("""
def test_passing(chekt_play):
    report = chekt_play("passing.yaml")
    assert report.passed

def test_failing(chekt_play):
    chekt_play("failing.yaml")
""")
    result = pytester.runpytest(*STRICT)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*nobody calls*FAIL*expected GET /partner/v1/* at least once*"])


def test_the_plugin_imports_the_app_only_when_a_fixture_is_used(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # only this plugin is loaded
    pytester.makepyfile(f"""
import sys

def loaded():
    return {{name.split(".")[0] for name in sys.modules}}

def test_without_the_fixture():
    assert loaded().isdisjoint({HEAVY!r})

def test_with_the_fixture(chekt_sandbox):
    assert "starlette" in loaded()
""")
    result = pytester.runpytest_subprocess("-p", "sandbox.pytest_plugin", *STRICT)
    result.assert_outcomes(passed=2)
