"""What the tests share: the test settings and credentials, the ``Api`` helper, a threaded
server for receivers, and the OpenAPI check of responses. (Not in conftest.py, whose module
name the example's own conftest also uses.)"""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema
from starlette.testclient import TestClient
from starlette.types import ASGIApp

from sandbox import Settings
from sandbox.auth.keys import new_api_key
from sandbox.server import ThreadedServer
from sandbox.settings import ApiKeySpec, ClientSpec

READ_ONLY_KEY = new_api_key()
OTHER_DEALER_KEY = new_api_key()

TEST_SETTINGS = Settings(
    clients=(
        ClientSpec(
            client_id="narrow-partner",
            client_secret="narrow-secret-0123456789",
            kind="platform_partner",
            dealer_ids=(1001,),
            scopes=("read:dealer", "read:sites"),
        ),
        ClientSpec(
            client_id="dealer-app-1002",
            client_secret="dealer-app-secret-0123456789",
            kind="dealer_app",
            dealer_ids=(1002,),
        ),
    ),
    api_keys=(
        ApiKeySpec(key=READ_ONLY_KEY, dealer_id=1001, scopes=("read:sites",), name="read-only"),
        ApiKeySpec(key=OTHER_DEALER_KEY, dealer_id=1003, name="dealer-1003"),
    ),
)


class Api:
    """A TestClient plus the sandbox's credentials, with short helpers for auth headers."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.creds: dict[str, Any] = client.get("/_sandbox/credentials").json()
        seeded = next(k for k in self.creds["api_keys"] if k["origin"] == "seeded")
        self.key: str = seeded["key"]
        self.partner = next(
            c for c in self.creds["clients"] if c["client_id"] == "sandbox-platform-partner"
        )

    def token(self, client_id: str | None = None, **form: str) -> str:
        client = next(
            c
            for c in self.creds["clients"]
            if c["client_id"] == (client_id or self.partner["client_id"])
        )
        response = self.client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
                **form,
            },
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    @staticmethod
    def bearer(credential: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential}"}


def live_server(app: ASGIApp) -> ThreadedServer:
    """Serve ``app`` on a free loopback port in a thread: ``with live_server(app) as url``."""
    return ThreadedServer(app)


class OpenApiCheck:
    """Validates every JSON response a test receives on a documented operation against the
    OpenAPI document's schema for that status (or its ``default``)."""

    def __init__(self) -> None:
        from sandbox.api.openapi import document

        self.document = document("http://testserver/")
        self.routes = [
            (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"), operations)
            for path, operations in self.document["paths"].items()
        ]
        self.checked = 0

    def __call__(self, response: httpx.Response) -> None:
        request = response.request
        operation = next(
            (
                ops.get(request.method.lower())
                for pattern, ops in self.routes
                if pattern.match(request.url.path)
            ),
            None,
        )
        if operation is None:
            return
        responses = operation["responses"]
        declared = responses.get(str(response.status_code)) or responses.get("default")
        assert declared is not None, (
            f"{request.method} {request.url.path} answered {response.status_code}, "
            "which the OpenAPI document does not declare"
        )
        schema = declared.get("content", {}).get("application/json", {}).get("schema")
        if schema is None or "json" not in response.headers.get("content-type", ""):
            return
        response.read()
        root = {"components": self.document["components"], **schema}
        errors = list(jsonschema.Draft202012Validator(root).iter_errors(response.json()))
        assert not errors, (
            f"{request.method} {request.url.path} -> {response.status_code} "
            f"breaks the OpenAPI document: {errors[0].message}"
        )
        self.checked += 1


OPENAPI_CHECK = OpenApiCheck()
