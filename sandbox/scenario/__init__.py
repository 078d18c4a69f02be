"""Scenario files: what CHeKT does and what the partner must do in answer, replayed against a
partner's service from the CLI (``chekt-sandbox replay``), from Python (:func:`play`) or from
pytest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.client import Sandbox
from sandbox.scenario.loader import Scenario, ScenarioError, load, parse
from sandbox.scenario.report import junit, summary
from sandbox.scenario.runner import Report, Runner
from sandbox.settings import Settings

__all__ = [
    "Report",
    "Runner",
    "Scenario",
    "ScenarioError",
    "junit",
    "load",
    "parse",
    "play",
    "sandbox_for",
    "summary",
]


def sandbox_for(scenario: Scenario, **overrides: Any) -> Sandbox:
    """A sandbox configured as the scenario asks (virtual clock unless it says otherwise)."""
    values: dict[str, Any] = {"clock": "virtual", **scenario.settings, **overrides}
    if scenario.seed is not None:
        values.setdefault("seed", scenario.seed)
    if scenario.profile is not None:
        values.setdefault("webhook_profile", scenario.profile)
    return Sandbox(Settings.from_mapping({"db": ":memory:", **values}))


def play(
    path: str | Path,
    *,
    callback: str | None = None,
    secret: str | None = None,
    sandbox: Sandbox | None = None,
    speed: float = 1.0,
    progress: Callable[[str], None] | None = None,
    reset: bool = False,
    **settings: Any,
) -> Report:
    """Run one scenario file; starts its own sandbox unless one is given (which it resets
    to the scenario's seed only when ``reset``)."""
    scenario = load(path)
    options: dict[str, Any] = {
        "callback": callback,
        "secret": secret,
        "speed": speed,
        "progress": progress,
    }
    if sandbox is not None:
        return Runner(sandbox, reset=reset, **options).run(scenario)
    with sandbox_for(scenario, **settings) as own:
        return Runner(own, **options).run(scenario)
