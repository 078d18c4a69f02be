"""Fixtures: a real app per test (fresh in-memory store), its credentials, and every JSON
response checked against the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import OPENAPI_CHECK, TEST_SETTINGS, Api
from starlette.testclient import TestClient

from sandbox import Settings, create_app

pytest_plugins = ["pytester"]


@pytest.fixture
def settings() -> Settings:
    return TEST_SETTINGS


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        test_client.event_hooks["response"].append(OPENAPI_CHECK)
        yield test_client


@pytest.fixture
def api(client: TestClient) -> Api:
    return Api(client)
