"""The OpenAPI document is valid and true: schemathesis generates requests from it against
the real app, authenticated, and the app never answers 5xx or off-schema."""

from __future__ import annotations

import os

import schemathesis
from helpers import OPENAPI_CHECK, Api
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from starlette.testclient import TestClient

from sandbox import Settings, create_app
from sandbox.auth.clients import credentials

APP = create_app(Settings())
KEY = credentials(APP.state.services.world)["api_keys"][0]["key"]
PARTNER = next(
    c for c in credentials(APP.state.services.world)["clients"] if c["kind"] == "platform_partner"
)
TOKEN = (
    TestClient(APP)
    .post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": PARTNER["client_id"],
            "client_secret": PARTNER["client_secret"],
        },
    )
    .json()["access_token"]
)
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)


def test_the_document_is_valid_openapi_3_1() -> None:
    with TestClient(create_app(Settings())) as client:
        document = client.get("/openapi.json").json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert "/partner/v1/dealers/{dealer_id}/sites" in document["paths"]


FAST = settings(
    max_examples=int(os.environ.get("CHEKT_SANDBOX_FUZZ_EXAMPLES", "12")),  # make fuzz: more
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@SCHEMA.parametrize()
@FAST
def test_generated_requests_with_an_api_key(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"})  # every default check


@SCHEMA.parametrize()
@FAST
def test_generated_requests_with_a_partner_token(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})  # every default check


def test_responses_in_the_suite_are_validated_against_the_document(api: Api) -> None:
    before = OPENAPI_CHECK.checked
    api.client.get("/partner/v1/dealers/1001/sites", headers=api.bearer(api.key))
    api.client.get("/partner/v1/dealers/1001/sites/1", headers=api.bearer(api.key))  # 404
    assert OPENAPI_CHECK.checked == before + 2
