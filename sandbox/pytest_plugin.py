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


def pytest_addoption(parser: pytest.Parser) -> None:
    for name, help_text in INI.items():
        parser.addini(name, help_text, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "chekt_sandbox(**settings): run this test against its own sandbox with these settings",
    )
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
    yield sandbox
    sandbox.raise_errors()


def _faults(request: pytest.FixtureRequest, sandbox: Sandbox) -> None:
    """The test's ``chekt_fault`` markers, as rules in force in the order they are written
    (module and class markers before the test's own, first match wins)."""
    for marker in reversed(list(request.node.iter_markers("chekt_fault"))):
        if marker.args or not marker.kwargs:
            raise pytest.UsageError("@pytest.mark.chekt_fault takes the rule's fields as keywords")
        sandbox.fault(**marker.kwargs)
