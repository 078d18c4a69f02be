"""The scenario step ``expect_event``: a scenario waits for an event a service sends into
CHeKT (here a bridge post) and checks the alarm it raised."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import Settings

from sandbox import Sandbox
from sandbox.scenario.loader import ScenarioError, parse
from sandbox.scenario.runner import Report, Runner

SCENARIO = """
name: a door sensor on the LAN
steps:
  - name: the bridge reports channel {channel}
    expect_event: {{source: bridge, channel: {channel}, within: 5s, state: created, save_as: door}}
  - expect_alarm: {{alarm: "${{door.alarm_id}}", state: created}}
"""


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(Settings(db=":memory:")) as running:
        yield running


def _play(sandbox: Sandbox, text: str, during: Any) -> Report:
    """Run the scenario in a thread; ``during()`` runs once its first step has begun."""
    begun = threading.Event()
    reports: list[Report] = []

    def progress(line: str) -> None:
        if line.startswith("[1/"):
            begun.set()

    scenario = parse(text)
    worker = threading.Thread(
        target=lambda: reports.append(Runner(sandbox, progress=progress).run(scenario))
    )
    worker.start()
    assert begun.wait(10)
    during()
    worker.join(20)
    return reports[0]


def test_expect_event_waits_for_a_bridge_post_and_its_alarm(sandbox: Sandbox) -> None:
    bridge = sandbox.bridges[0]
    channel = bridge["channels"][-1]

    def post() -> None:
        answer = httpx.post(
            f"{bridge['url']}/api/v1/events",
            json={"target_channel": channel, "event_description": "Door opened"},
            auth=("apikey", bridge["api_token"]),
        )
        assert answer.status_code == 200, answer.text

    report = _play(sandbox, SCENARIO.format(channel=channel), post)
    assert report.passed, [r.detail for r in report.results]
    assert f"channel {channel}" in report.results[0].detail


def test_expect_event_fails_with_what_came_in(sandbox: Sandbox) -> None:
    text = "name: x\nsteps:\n  - expect_event: {source: event_api, within: 0.2}\n"
    report = _play(sandbox, text, lambda: None)
    assert not report.passed
    assert "no inbound event matching" in report.results[0].detail


def test_expect_event_fields_are_checked() -> None:
    with pytest.raises(ScenarioError, match="source"):
        parse("name: x\nsteps:\n  - expect_event: {source: lan}\n")
