"""Wiring the example service to a sandbox, shared by its tests, the scenario tests and the
storm benchmark: register it as an assertion-token client, and build its configuration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from partner_app.app import PartnerConfig
from sandbox import Sandbox

KEY_ID = "example-key-1"
APPS_SCOPES = ("events:read", "events:write")  # read alarms; acknowledge and annotate them


def register(
    sandbox: Sandbox,
    client_id: str,
    key: rsa.RSAPrivateKey,
    secret: str,
    apps_dealers: Sequence[int] = (),
    **client: Any,
) -> PartnerConfig:
    """Register the service's public key with ``sandbox`` (once) and return the config that
    points the service at it, on the sandbox's clock. ``apps_dealers`` gives it an Apps API
    key for each of those dealers, with which it handles their alarms. ``client`` adds
    registration fields (``dealer_ids``, ``client_secret``, ``redirect_uris`` ...)."""
    if client_id not in {c["client_id"] for c in sandbox.credentials["clients"]}:
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        sandbox.register_client(
            client_id=client_id,
            kind="platform_partner",
            public_key=public.decode(),
            key_id=KEY_ID,
            **client,
        )
    return PartnerConfig(
        chekt_url=sandbox.url,
        webhook_secret=secret,
        client_id=client_id,
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        key_id=KEY_ID,
        clock=sandbox.clock.now,
        apps_keys={
            dealer: sandbox.create_api_key(dealer, APPS_SCOPES, name=client_id)["key"]
            for dealer in apps_dealers
        },
    )
