"""Fixtures for the example: the partner service on a real port, wired to a sandbox that
the sandbox's own pytest plugin provides (``chekt_sandbox``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from partner_app.app import create_partner_app
from partner_app.testing import register
from support import PRIVATE_KEY, SECRET, Partner

from sandbox import Sandbox
from sandbox.server import ThreadedServer


@pytest.fixture
def partner(chekt_sandbox: Sandbox) -> Iterator[Partner]:
    """The example service, registered with the sandbox as an assertion-token client."""
    config = register(
        chekt_sandbox, "example-partner", PRIVATE_KEY, SECRET, dealer_ids=[1001, 1002]
    )
    app = create_partner_app(config)
    with ThreadedServer(app) as url:
        subscription = chekt_sandbox.subscribe(f"{url}/chekt/webhooks", secret=SECRET)
        yield Partner(url, app, subscription)
