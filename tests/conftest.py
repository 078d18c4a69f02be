"""Fixtures: a real app per test (fresh in-memory store) and its credentials. The sandboxes
the suite starts check their responses against the OpenAPI document: in-process ones through
``helpers.Settings``, the plugin's and ``serve``'s through the environment set here."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from helpers import TEST_SETTINGS, Api, Settings, live_server
from receiver import Receiver
from starlette.testclient import TestClient

from sandbox import create_app

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    os.environ["CHEKT_SANDBOX_CHECK_RESPONSES"] = "true"
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Latency checks first: minutes into the suite this 2-core machine is slower (a real
    alarm storm's p99 went from about 1 s to 6-12 s there), and what they measure is the
    sandbox, not how long the suite has been running."""
    items.sort(key=lambda item: item.get_closest_marker("latency") is None)  # stable


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
