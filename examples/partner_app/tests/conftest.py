"""Fixtures for the example: the partner service on a real port, wired to a sandbox that
the sandbox's own pytest plugin provides (``chekt_sandbox``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from partner_app.app import PartnerConfig, create_partner_app
from support import PRIVATE_KEY, SECRET, Partner, serve

from sandbox import Sandbox


@pytest.fixture
def partner(chekt_sandbox: Sandbox) -> Iterator[Partner]:
    """The example service, registered with the sandbox as an assertion-token client."""
    public_pem = (
        PRIVATE_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    if "example-partner" not in {c["client_id"] for c in chekt_sandbox.credentials["clients"]}:
        chekt_sandbox.register_client(
            client_id="example-partner",
            kind="platform_partner",
            dealer_ids=[1001, 1002],
            public_key=public_pem,
            key_id="example-key-1",
        )
    config = PartnerConfig(
        chekt_url=chekt_sandbox.url,
        webhook_secret=SECRET,
        client_id="example-partner",
        private_key_pem=PRIVATE_KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        key_id="example-key-1",
        clock=chekt_sandbox.clock.now,
    )
    app = create_partner_app(config)
    for url in serve(app):
        subscription = chekt_sandbox.subscribe(f"{url}/chekt/webhooks", secret=SECRET)
        yield Partner(url, app, subscription)
