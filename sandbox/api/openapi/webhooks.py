"""The document's ``webhooks``: every body each profile sends, with the headers it carries,
so a partner can generate models for what its receiver gets. The schemas come from the
webhook profiles' own tables."""

from __future__ import annotations

from typing import Any

from sandbox.api.openapi.schema import json_content
from sandbox.vocabulary import PROFILES
from sandbox.webhooks import profiles, signing

STRING = {"type": "string"}
TRACING = (
    ("X-CHeKT-Event-Id", "the event's id, the same on every retry and resend"),
    ("X-CHeKT-Delivery-Id", "this delivery's id, new on a resend"),
    ("X-CHeKT-Attempt", "1 for the first attempt, then 2, 3, ..."),
)
SIGNED = {  # by the profile's own signature variant (None: the sandbox's setting)
    "legacy": ((signing.LEGACY_SIGNATURE, "sha256=<hex HMAC-SHA256 of the raw body>"),),
    None: (
        (signing.SIGNATURE, "HMAC-SHA256 of '{timestamp}.{body}' with the subscription secret"),
        (signing.TIMESTAMP, "unix seconds of this attempt (absent when signing the body only)"),
    ),
}


def _header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "description": description, "schema": STRING}


def _operation(profile: str, name: str, schema: dict[str, Any]) -> dict[str, Any]:
    headers = (*SIGNED[profiles.FORMATS[profile].signature], *TRACING)
    deadline = profiles.FORMATS[profile].deadline
    within = f" within {deadline:g} s" if deadline else ""
    return {
        "post": {
            "tags": ["Webhooks"],
            "summary": f"{name}, as profile {profile} sends it",
            "operationId": f"webhook_{profile}_{name}".replace("-", "_").replace(".", "_"),
            "parameters": [_header(*header) for header in headers],
            "requestBody": {"required": True, **json_content(schema)},
            "responses": {
                "200": {"description": f"any 2xx{within} acknowledges; anything else is retried"}
            },
        }
    }


def webhooks() -> dict[str, Any]:
    """Keyed ``profile:event``: each profile names its events in its own way."""
    return {
        f"{profile}:{name}": _operation(profile, name, schema)
        for profile in PROFILES
        for name, schema in profiles.schemas(profile).items()
    }
