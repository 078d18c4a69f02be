"""pytest plugin (entry point ``pytest11``): a sandbox per test session, handed to each test
reset, plus a factory for tests that need one of their own.

- ``chekt_sandbox``: the session's sandbox, reset (world, journal, deliveries) on entry. A
  test marked ``@pytest.mark.chekt_sandbox(seed=7, clock="virtual", ...)`` gets a dedicated
  sandbox with those settings instead, stopped after the test.
- ``@pytest.mark.chekt_fault(path="/partner/v1/*", status=503, count=2)`` (one marker per
  rule, any number): the test's ``chekt_sandbox`` has these inbound fault rules in force (the
  next reset removes them). The fields are ``POST /_sandbox/faults``'s.
- ``chekt_sandbox_factory``: ``factory(**settings)`` starts more sandboxes, all stopped at
  the end of the test.
- ``chekt_play``: ``chekt_play("scenarios/x.yaml", callback=url, secret=s)`` replays a
  scenario file and fails the test with the runner's report.
- Settings come from ``[tool.pytest.ini_options]`` (``chekt_sandbox_seed``,
  ``chekt_sandbox_clock``, ``chekt_sandbox_profile``, ``chekt_sandbox_config``), then the
  ``CHEKT_SANDBOX_*`` environment, then the marker.
- ``--chekt-coverage`` prints, at the end of the session, which documented operations, event
  types, error codes and auth tiers the tests' traffic exercised, over every sandbox the
  session used; ``--chekt-coverage-min=PCT`` fails the session under PCT % of operations,
  ``--chekt-coverage-json=PATH`` writes the merged report (``GET /_sandbox/coverage``'s
  shape). Under xdist the workers' coverage is merged on the controller.
- Each xdist worker is its own process with its own server on its own port.
- Each sandbox also serves the bridges' local API on a free port of its own
  (``chekt_sandbox.bridge_url``; each bridge's token in ``chekt_sandbox.bridges``).
- Anything that failed inside the server during a test fails that test.

Every test run of a project that installs the package loads this plugin, so loading it imports
nothing but pytest: the sandbox's modules load when a fixture is first used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sandbox.client import Sandbox

INI = {
    "chekt_sandbox_seed": "seed of the sandbox's fake world",
    "chekt_sandbox_clock": "system or virtual",
    "chekt_sandbox_profile": "webhook profile: chekt-apps, legacy-guide or dealer-v1",
    "chekt_sandbox_config": "settings file (YAML or TOML) for the sandbox",
}


COVERAGE = pytest.StashKey[list[dict[str, Any]]]()
MERGED = pytest.StashKey[dict[str, Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    for name, help_text in INI.items():
        parser.addini(name, help_text, default=None)
    group = parser.getgroup("chekt-sandbox")
    group.addoption(
        "--chekt-coverage",
        action="store_true",
        help="print which CHeKT operations, event types, error codes and tiers were exercised",
    )
    group.addoption(
        "--chekt-coverage-min",
        type=float,
        metavar="PCT",
        help="fail the session when fewer than PCT %% of the operations were called",
    )
    group.addoption(
        "--chekt-coverage-json", metavar="PATH", help="write the merged coverage report here"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "chekt_sandbox(**settings): run this test against its own sandbox with these settings",
    )
    if _coverage_on(config):
        config.stash[COVERAGE] = []
    config.addinivalue_line(
        "markers",
        "chekt_fault(**rule): an inbound fault rule in force on chekt_sandbox for this test "
        "(fields as for POST /_sandbox/faults: path, method, status, drop, latency_ms, count…)",
    )


def _base_settings(config: pytest.Config, **overrides: Any) -> Any:
    from sandbox.settings import Settings

    values: dict[str, Any] = {"db": ":memory:"}
    for name, field in (
        ("chekt_sandbox_seed", "seed"),
        ("chekt_sandbox_clock", "clock"),
        ("chekt_sandbox_profile", "webhook_profile"),
    ):
        value = config.getini(name)
        if value:
            values[field] = value
    config_file = config.getini("chekt_sandbox_config") or None
    values.update(overrides)
    return Settings.load(config_file, **values)


@pytest.fixture(scope="session")
def _chekt_sandbox_session(pytestconfig: pytest.Config) -> Iterator[Sandbox]:
    from sandbox.client import Sandbox

    with Sandbox(_base_settings(pytestconfig)) as sandbox:
        yield sandbox


@pytest.fixture
def chekt_sandbox_factory(pytestconfig: pytest.Config) -> Iterator[Callable[..., Sandbox]]:
    from sandbox.client import Sandbox

    started: list[Sandbox] = []

    def factory(**settings: Any) -> Sandbox:
        sandbox = Sandbox(_base_settings(pytestconfig, **settings)).start()
        started.append(sandbox)
        return sandbox

    yield factory
    for sandbox in started:
        try:
            _collect(pytestconfig, sandbox)
        finally:
            sandbox.stop()


@pytest.fixture
def chekt_play() -> Callable[..., Any]:
    """``chekt_play(path, callback=..., secret=..., **options)`` replays a scenario file on a
    sandbox of its own and fails the test with the runner's report unless every step passed
    (options as for :func:`sandbox.play`)."""

    def play(path: str, **options: Any) -> Any:
        from sandbox.scenario import play as run_scenario
        from sandbox.scenario import summary

        report = run_scenario(path, **options)
        if not report.passed:
            pytest.fail(summary(report), pytrace=False)
        return report

    return play


@pytest.fixture
def chekt_sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    marker = request.node.get_closest_marker("chekt_sandbox")
    if marker is not None and (marker.kwargs or marker.args):
        if marker.args:
            raise pytest.UsageError("@pytest.mark.chekt_sandbox takes keyword settings only")
        factory = request.getfixturevalue("chekt_sandbox_factory")
        own: Sandbox = factory(**marker.kwargs)
        _faults(request, own)
        yield own
        return
    sandbox: Sandbox = request.getfixturevalue("_chekt_sandbox_session")
    sandbox.reset()
    sandbox.raise_errors()
    _faults(request, sandbox)
    try:
        yield sandbox
    finally:
        _collect(request.config, sandbox)  # before the next test's reset clears the journal
    sandbox.raise_errors()


def _faults(request: pytest.FixtureRequest, sandbox: Sandbox) -> None:
    """The test's ``chekt_fault`` markers, as rules in force in the order they are written
    (module and class markers before the test's own, first match wins)."""
    for marker in reversed(list(request.node.iter_markers("chekt_fault"))):
        if marker.args or not marker.kwargs:
            raise pytest.UsageError("@pytest.mark.chekt_fault takes the rule's fields as keywords")
        sandbox.fault(**marker.kwargs)


# ---- coverage ----------------------------------------------------------------------------


def _coverage_on(config: pytest.Config) -> bool:
    return bool(
        config.getoption("chekt_coverage")
        or config.getoption("chekt_coverage_min") is not None
        or config.getoption("chekt_coverage_json")
    )


def _collect(config: pytest.Config, sandbox: Sandbox) -> None:
    """What this sandbox's traffic covered since its last reset, kept for the summary."""
    if COVERAGE in config.stash and sandbox.url:
        config.stash[COVERAGE].append(sandbox.coverage())


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if COVERAGE not in config.stash:
        return
    from sandbox.insights.coverage import merge, percent

    reports: list[dict[str, Any]] = config.stash[COVERAGE]
    import json

    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller merges and reports
        workeroutput["chekt_coverage"] = json.dumps(reports)
        return
    merged = merge(reports)
    config.stash[MERGED] = merged
    path = config.getoption("chekt_coverage_json")
    if path:
        from pathlib import Path

        Path(path).write_text(json.dumps(merged, indent=2))
    minimum = config.getoption("chekt_coverage_min")
    if minimum is not None and percent(merged) < minimum and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """(xdist) A worker finished: its sandboxes' coverage joins the controller's."""
    output = getattr(node, "workeroutput", {}).get("chekt_coverage")
    if output and COVERAGE in node.config.stash:
        import json

        node.config.stash[COVERAGE].extend(json.loads(output))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if MERGED not in config.stash:
        return
    from sandbox.insights.coverage import percent, table

    merged = config.stash[MERGED]
    terminalreporter.section("CHeKT sandbox coverage")
    terminalreporter.write_line(table(merged))
    minimum = config.getoption("chekt_coverage_min")
    if minimum is not None and percent(merged) < minimum:
        terminalreporter.write_line(
            f"FAIL: CHeKT coverage {percent(merged):.1f} % is under the required {minimum:g} %",
            red=True,
        )
