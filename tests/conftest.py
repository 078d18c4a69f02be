"""Fixtures: a real app per test (fresh in-memory store) and its credentials. The sandboxes
the suite starts check their responses against the OpenAPI document: in-process ones through
``helpers.Settings``, the plugin's and ``serve``'s through the environment set here."""

from __future__ import annotations

import functools
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# httpx imports httpcore on first use and keeps a map of its exceptions. Imported first in an
# in-process pytester run (tests/test_plugin.py), httpcore left sys.modules when the run ended,
# and every later connection error in this process escaped httpx unmapped
import httpcore  # noqa: F401
import hypothesis
import pytest
from helpers import TEST_SETTINGS, Api, Settings, live_server
from one_hop import TestClient
from receiver import Receiver

from sandbox import create_app

pytest_plugins = ["pytester"]

# Hypothesis' timing checks judge the machine, not the code: on two busy cores one draw can
# take a second (the catalogue's first once did), so the suite's examples have no deadline and
# no "too slow" health check
hypothesis.settings.register_profile(
    "suite", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("suite")


def pytest_configure(config: pytest.Config) -> None:
    os.environ["CHEKT_SANDBOX_CHECK_RESPONSES"] = "true"
    # a shell starts background jobs (`make test`'s side processes, `cmd &` in a script) with
    # Ctrl-C ignored, and every child inherits that: the tests that stop a `serve` or a
    # `--follow` with SIGINT would wait forever. A handler here makes children start with
    # the default again
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers",
        "latency: measures wall-clock time; `make test` runs these alone, after the parallel "
        "phase (a plain `pytest` runs them first)",
    )
    config.addinivalue_line(
        "markers",
        "serial: uses something the whole machine shares (the default bridge port); `make "
        "test` runs these alone, with the latency tests",
    )


# The suite's long poles, longest first: tests that spend seconds waiting on real time,
# servers and subprocesses. Started first, they overlap the many short tests; started last,
# one worker would still be running one of them after the others had run out of work.
LONG_POLES = (
    "tests/test_scenarios.py::test_alarm_storm_catches_a_slow_service",
    "tests/test_plugin.py::test_xdist_workers_each_get_their_own_server",
    "tests/test_crash_safety.py::",
    "tests/test_dashboard_browser.py::",
    "tests/test_stateful.py::",
    "tests/test_recorder.py::test_concurrent_clients_get_an_exact_ordered_journal",
    "tests/test_cli.py::",
    "tests/test_generated_clients.py::",
    "tests/test_durability.py::",
    "tests/test_replay_safety.py::",
    "tests/test_webhooks.py::",
    "tests/test_record_model.py::test_the_record_follows_its_model",
    "tests/test_cli_verbs.py::test_serve_fresh_starts_from_an_empty_store",
    "tests/test_coverage.py::test_the_example_suite_is_reported_as_the_journal_shows",
    "tests/test_openapi.py::test_stateful_",
    "tests/test_scenarios.py::test_shipped_scenario_passes_and_catches_its_bug",
    "tests/test_bad_input.py::test_a_surrogate_in_any_string",
    "tests/test_webhook_formats.py::test_legacy_guide_receivers_have_five_seconds",
    "tests/test_scenarios.py::test_junit_report_names_every_step",
    "tests/test_scenarios.py::test_replay_cli_passes",
    "tests/test_cli_bridge.py::",
    "tests/test_clock.py::test_a_receiver_in_another_process",
)


# The files whose tests xdist's workers get one at a time: long ones that share no costly
# fixture. Every other file goes to one worker whole, so its module fixtures are set up once
SPREAD = ("tests/test_scenarios.py",)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's workers get whole test files (a SPREAD file's tests one at a time), in the
    order set below: the long poles first. xdist's own ``load`` sends each worker a quarter
    of its share of tests up front, and one worker got every long pole (140 s of tests, the
    others 86 s)."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if path in SPREAD else path

    config.option.loadscopereorder = False  # the order set below, not the largest first
    return ByFile(config, log)


def _start_order(item: pytest.Item) -> tuple[bool, int]:
    pole = next((n for n, p in enumerate(LONG_POLES) if item.nodeid.startswith(p)), None)
    return item.get_closest_marker("latency") is None, len(LONG_POLES) if pole is None else pole


@functools.cache
def _spells_out_a_timed_mark(path: Path) -> bool:
    return re.search(r"mark\.(latency|serial)\b", path.read_text()) is not None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Latency checks first: minutes into the suite this 2-core machine is slower (a real
    alarm storm's p99 went from about 1 s to 6-12 s there), and what they measure is the
    sandbox, not how long the suite has been running. Then the long poles (above).

    `make test`'s second phase collects only the files that spell ``mark.latency`` or
    ``mark.serial`` out; a test marked some other way would run in neither phase."""
    for item in items:
        timed = item.get_closest_marker("latency") or item.get_closest_marker("serial")
        if timed and not _spells_out_a_timed_mark(item.path):
            raise pytest.UsageError(
                f"{item.nodeid} is marked {timed.name} but its file never says "
                f"mark.{timed.name}: `make test` would skip it (mark it with a decorator)"
            )
    items.sort(key=_start_order)  # stable: the rest keep their order


@pytest.fixture
def settings() -> Settings:
    return TEST_SETTINGS


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as test_client:
        yield test_client
    app.state.services.close()


@pytest.fixture
def api(client: TestClient) -> Api:
    return Api(client)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A real webhook receiver on a free port: its recording and its base URL."""
    rx = Receiver()
    with live_server(rx.app) as url:
        yield rx, url
