"""The OpenAPI document is valid and true: schemathesis generates requests from it against
the real app, authenticated (the Partner API with a credential of each tier, the Apps API
with an app's key holding every Apps scope), and the app never answers 5xx or off-schema;
and every webhook body the sandbox sends matches the schema the document gives it. A
quarter of the generated JSON bodies carry an unpaired surrogate in one of their strings
(schemathesis draws only UTF-8-encodable text itself), and those must be refused with a
4xx."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import Api, Settings, live_server, public_pem, signed_assertion
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from one_hop import TestClient
from openapi_spec_validator import validate
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from surrogates import holds_surrogate, sometimes_planted
from webhook_samples import deliveries

import sandbox
from sandbox import create_app
from sandbox.api.apps import encode_cursor
from sandbox.api.conformance import DocumentCheck, ResponseCheck
from sandbox.api.openapi import document as build_document
from sandbox.auth.clients import APPS_SCOPES
from sandbox.vocabulary import PROFILES
from sandbox.webhooks import profiles
from sandbox.world.fields import timezones

APP = create_app(Settings())
# the document gives time zones a shape and a format name; the server's tz database decides
schemathesis.openapi.format("iana-time-zone", st.sampled_from(sorted(timezones())))
# an events cursor is opaque, so the document names its format; this is how they are made
schemathesis.openapi.format("events-cursor", st.integers(0, 2**40).map(encode_cursor))


def _bearers() -> dict[str, str]:
    """A credential of each tier: an API key, a token for a client secret, and a token for
    a signed assertion (a client registered with a public key); and an app's API key with
    every Apps scope, for ``/v1``."""
    api = Api(TestClient(APP))
    app = api.client.post(
        "/_sandbox/api-keys", json={"dealer_id": 1001, "scopes": list(APPS_SCOPES), "name": "fuzz"}
    )
    assert app.status_code == 201, app.text
    key = ec.generate_private_key(ec.SECP256R1())
    registered = api.client.post(
        "/_sandbox/clients",
        json={
            "client_id": "fuzz-assertion",
            "kind": "platform_partner",
            "dealer_ids": [1001, 1002],
            "public_key": public_pem(key),
            "key_id": "fuzz-1",
        },
    )
    assert registered.status_code == 201, registered.text
    signed = signed_assertion("fuzz-assertion", key, "ES256", {"kid": "fuzz-1"})
    exchanged = api.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": signed,
        },
    )
    assert exchanged.status_code == 200, exchanged.text
    return {
        "api_key": api.key,
        "secret": api.token(),
        "assertion": exchanged.json()["access_token"],
        "app": app.json()["key"],
    }


BEARERS = _bearers()
# Bulk device writes answer with a per-item report, 201 or 200 even for items the document
# refuses (CONTRACT: a bulk create is 201 when every item failed), so "a schema-violating
# request must be refused" does not apply to them; every other check does.
BULK = {
    "include-path-regex": "/devices$",
    "checks": {"negative_data_rejection": {"enabled": False}},
}
# The dealer API's record writes and searches are refused by the record, not by their shape:
# a contact of another site, an event about no alarm, an external_contact_id changed, a
# contact with no phone to validate, a cursor of another search, an end before the start, a
# partition the site does not have; and the Partner Event API names sites, bridges and
# cameras by ids the world decides (and which event_status goes with which event_type).
WORLD_DECIDES = {
    "include-path-regex": "^/(ext/v1/(activity-logs/search|(events/[^/]+/)?verifications"
    "|sites/[^/]+/contacts.*|sites/[^/]+/partition-arming/actions/.*)|partner/v1/events)$",
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
        }
    },
}
# the control API and the browser pages are documented but not fuzzed here: the first drives
# the shared app's clock and world, the second's outcomes depend on registered clients; the
# Apps API takes only an app's key, and is fuzzed with one below
FUZZ = "CHEKT_SANDBOX_FUZZ_EXAMPLES" in os.environ  # make fuzz: more of everything


def _partner_schema(coverage: bool) -> Any:
    config: dict[str, Any] = {"operations": [BULK, WORLD_DECIDES]}
    if not coverage:
        config["phases"] = {"coverage": {"enabled": False}}
    schema = (
        schemathesis.openapi.from_asgi(
            "/openapi.json", APP, config=SchemathesisConfig.from_dict(config)
        )
        .exclude(tag="Sandbox control")
        .exclude(tag="Apps API")
        .exclude(path=["/authorize", "/v2/logout"])
    )
    schema.hook(flatmap_body)
    return schema


# Two /v1 refusals depend on the record, not on the request's shape: a bridge takes no
# snapshot, and a site has only the partitions it has; both are 422 for valid-looking data.
RECORD_DECIDES = {
    "include-path-regex": "^/v1/(devices/[^/]+/snapshot|sites/[^/]+/arming-state)$",
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
        }
    },
}
STREAM = "/v1/events/stream"  # never ends: documented, not fuzzed


def flatmap_body(context: Any, body: Any) -> Any:
    """Only JSON escapes can send a surrogate: a form's text is UTF-8 on the wire."""
    if not all("json" in t for t in context.operation.get_request_payload_content_types()):
        return st.just(body)
    return sometimes_planted(body)


def map_query(context: Any, query: Any) -> Any:
    """An empty list as a parameter's value never reaches the wire (there is nothing to
    repeat), so a case made invalid by it would go out valid: send it empty instead."""
    if not isinstance(query, dict):
        return query
    return {name: "" if value == [] else value for name, value in query.items()}


def _apps_schema(**config: Any) -> Any:
    settings = SchemathesisConfig.from_dict({"operations": [RECORD_DECIDES], **config})
    # exclusions only: with per-operation settings, schemathesis 4 ignores include()
    schema = (
        schemathesis.openapi.from_asgi("/openapi.json", APP, config=settings)
        .exclude(path_regex="^(?!/v1/)")
        .exclude(path=STREAM)
    )
    schema.hook(map_query)  # /v1 lists have no path to make a case invalid on its own
    return schema


# Schemathesis' coverage phase (every boundary and invalid value of each parameter and
# body, about 55 cases an operation, built at collection in every xdist worker) depends on
# the operation, not on the credential: it runs once per operation, with the API key. Every
# tier still gets each operation's examples and its generated cases.
SCHEMA = _partner_schema(coverage=True)
OTHER_TIERS = SCHEMA if FUZZ else _partner_schema(coverage=False)


@schemathesis.serializer("video/mp4")
def _mp4(ctx: Any, value: Any) -> bytes:
    """A clip upload: an MP4's opening box (the route checks the file's signature, as
    schemathesis' own samples for image types expect)."""
    return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


APPS = _apps_schema()
APPS.hook(flatmap_body)


def surrogates_refused_else_valid_data_accepted(
    ctx: Any, response: Any, case: schemathesis.Case
) -> bool | None:
    """A body with an unpaired surrogate is not valid data whatever its schema says: a 4xx;
    any other case goes to schemathesis' own positive-data check."""
    if holds_surrogate(case.body):
        assert 400 <= response.status_code < 500, f"a surrogate got {response.status_code}"
        return None
    return positive_data_acceptance(ctx, response, case)  # type: ignore[no-any-return]


def _call(case: schemathesis.Case, credential: str) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {BEARERS[credential]}"},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[surrogates_refused_else_valid_data_accepted],
    )


def test_the_document_is_valid_openapi_3_1_and_names_every_operation_served() -> None:
    app = create_app(Settings())
    with TestClient(app) as client:  # a throwaway app: every method is tried on every path
        document = client.get("/openapi.json").json()
        validate(document)
        served = {
            (route.path, method.lower())
            for route in app.routes
            # the dashboard's HTML pages (under a Mount; ``/`` only redirects there) are not
            # API operations, so not in the document
            if isinstance(route, Route) and route.path != "/"
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
            if client.request(method, re.sub(r"\{[^}]+\}", "1", route.path)).status_code != 405
        }
    documented = {(p, m) for p, ops in document["paths"].items() for m in ops}
    assert len(served) > 60
    assert served == documented
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_every_webhook_body_sent_matches_its_schema_in_the_document() -> None:
    """Each profile's every event type, delivered over HTTP, against ``webhooks``."""
    document = TestClient(APP).get("/openapi.json").json()
    seen = set()
    for profile, body in deliveries():
        name = body.get("type", body.get("event_type"))
        operation = document["webhooks"][f"{profile}:{name}"]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(
            body
        )
        seen.add(f"{profile}:{name}")
    assert seen == set(document["webhooks"])
    assert len(seen) == sum(len(profiles.schemas(p)) for p in PROFILES) == 22


def test_titled_schemas_are_named_components_and_titles_are_never_reused() -> None:
    """What lets generators name classes after what they are, not where they are used."""
    document = build_document("http://testserver")
    schemas = document["components"]["schemas"]
    assert {"ClientSecretGrant", "SiteInput", "TimeZone", "AlarmCreatedEvent"} <= set(schemas)
    text = json.dumps({"paths": document["paths"], "webhooks": document["webhooks"]})
    assert '"title"' not in text  # every titled schema was lifted into components
    assert "enum" not in schemas["TimeZone"]  # a shape: the server's tz database decides


# the suite draws the same cases every run (a failure is one anyone can run again; a rare
# draw once failed on an extra query key the client left out, so the server never saw it);
# `make fuzz` draws anew, and more
FAST = settings(
    max_examples=int(os.environ.get("CHEKT_SANDBOX_FUZZ_EXAMPLES", "8")),  # make fuzz: more
    derandomize=not FUZZ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@SCHEMA.parametrize()
@FAST
def test_generated_requests_with_an_api_key(case: schemathesis.Case) -> None:
    _call(case, "api_key")


@OTHER_TIERS.parametrize()
@FAST
def test_generated_requests_with_a_client_secret_token(case: schemathesis.Case) -> None:
    _call(case, "secret")


@OTHER_TIERS.parametrize()
@FAST
def test_generated_requests_with_an_assertion_token(case: schemathesis.Case) -> None:
    _call(case, "assertion")


@APPS.parametrize()
@FAST
def test_generated_apps_api_requests_with_an_app_key(case: schemathesis.Case) -> None:
    _call(case, "app")


def test_a_response_off_the_document_becomes_a_500_naming_the_mismatch() -> None:
    """The self-check the suite runs with, on an app that breaks its document."""
    document = {
        "paths": {
            "/things/{thing_id}": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "a thing",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/T"}}
                            },
                        }
                    }
                }
            }
        },
        "components": {"schemas": {"T": {"type": "object", "required": ["name"]}}},
    }

    async def thing(request: Request) -> JSONResponse:
        thing_id = request.path_params["thing_id"]
        if thing_id == "missing":
            return JSONResponse({"error": "gone"}, 404)  # a status the document lacks
        return JSONResponse({"name": "ok"} if thing_id == "good" else {"nom": "x"})

    app = Starlette(
        routes=[Route("/things/{thing_id}", thing)],
        middleware=[Middleware(ResponseCheck, check=DocumentCheck(document))],
    )
    app.state.server_errors = []
    with TestClient(app) as client:
        assert client.get("/things/good").json() == {"name": "ok"}
        wrong_body = client.get("/things/bad")
        wrong_status = client.get("/things/missing")
    assert wrong_body.status_code == 500
    error = wrong_body.json()["error"]
    assert error["code"] == "response_off_document"
    assert "/things/{thing_id} answered 200" in error["message"]
    assert "'name' is a required property" in error["message"]
    assert "does not declare" in wrong_status.json()["error"]["message"]
    assert len(app.state.server_errors) == 2  # and Sandbox re-raises them in the test


def test_an_event_stream_flows_through_the_check_as_it_is_written() -> None:
    """An endless text/event-stream cannot be held back and checked whole: its status and
    type are checked and it flows, message by message, each the envelope /v1/events lists."""
    app = create_app(Settings())
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        made = http.post("/_sandbox/api-keys", json={"dealer_id": 1001, "scopes": ["events:read"]})
        http.headers["Authorization"] = f"Bearer {made.json()['key']}"
        [first] = http.get("/v1/events", params={"limit": 1}).json()["data"]
        with http.stream("GET", "/v1/events/stream", params={"cursor": encode_cursor(0)}) as got:
            assert got.status_code == 200
            assert got.headers["content-type"].startswith("text/event-stream")
            lines = got.iter_lines()
            start = next(line for line in lines if line.startswith("id: "))  # after retry:
            message = dict(line.split(": ", 1) for line in (start, next(lines), next(lines)))
    assert message["id"] == str(first["event_id"]) and message["event"] == first["type"]
    sent = json.loads(message["data"])
    assert sent["id"] == first["id"] and sent["data"]["alarm_id"] == first["data"]["alarm_id"]
    assert not app.state.server_errors


def test_the_suite_runs_every_sandbox_with_the_check() -> None:
    assert Settings().check_responses
    assert os.environ["CHEKT_SANDBOX_CHECK_RESPONSES"] == "true"
    assert sandbox.Settings.load(None).check_responses  # the plugin's and serve's


# how long each stateful run may go on (make fuzz sets the example count)
STATEFUL = settings(
    phases=[Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    max_examples=int(os.environ.get("CHEKT_SANDBOX_FUZZ_EXAMPLES", "12")),
    stateful_step_count=6,
)


# explicit links only: schemathesis' own link inference would add guesses with random ids
LINKS_ONLY = SchemathesisConfig.from_dict(
    {"phases": {"stateful": {"inference": {"algorithms": []}}}, "operations": [BULK]}
)


@pytest.mark.parametrize("credential", ["api_key", "secret", "assertion"])
def test_stateful_runs_follow_the_documented_links(credential: str) -> None:
    """Create, then read, change and delete what was created (and a new site's contacts,
    devices and arming), following the document's links, with every default check."""
    bearer = BEARERS[credential]
    client = TestClient(APP)
    schema = (
        schemathesis.openapi.from_asgi("/openapi.json", APP, config=LINKS_ONLY)
        .exclude(tag="Sandbox control")
        .exclude(tag="Apps API")
        .exclude(path=["/authorize", "/v2/logout"])
    )
    seen: list[tuple[str, int]] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:  # every run starts from the seeded world
            assert client.post("/_sandbox/reset").status_code == 200

        def before_call(self, case: schemathesis.Case) -> None:
            # a valid dealer id becomes the dealer both credentials reach (an invalid one,
            # generated to be refused, stays)
            dealer = (case.path_parameters or {}).get("dealer_id")
            if type(dealer) is int and dealer >= 1:
                case.path_parameters["dealer_id"] = 1001  # type: ignore[index]

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": {"Authorization": f"Bearer {bearer}"}}

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            seen.append((f"{case.method} {case.path}", response.status_code))

    Workflow.run(settings=STATEFUL)
    # links were followed: created objects were then read, changed or deleted (the dealer
    # item has no link to it, so a call to it proves nothing)
    followed = {
        call
        for call, status in seen
        if status < 300 and call.endswith("}") and not call.endswith("{dealer_id}")
    }
    assert followed, sorted(set(seen))


def test_stateful_apps_api_runs_follow_the_documented_links() -> None:
    """From a list to its items and on (alarms to their moves and their camera, a device to
    its snapshots, a snapshot taken to reading it, an events page to the next), with an
    app's key and every default check; each run starts from the seeded world and one fresh
    open alarm."""
    bearer = BEARERS["app"]
    client = TestClient(APP)
    # valid requests only: invalid ones are the stateless test's, and here they would spend
    # the few steps a run has on refusals instead of on following links
    stateful = {"inference": {"algorithms": []}, "generation": {"mode": "positive"}}
    schema = _apps_schema(phases={"stateful": stateful})
    seen: list[tuple[str, int]] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            assert client.post("/_sandbox/reset").status_code == 200
            fresh = {"type": "alarm.created", "data": {"site_id": 10001}}
            assert client.post("/_sandbox/events", json=fresh).status_code == 202

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": {"Authorization": f"Bearer {bearer}"}}

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            seen.append((f"{case.method} {case.path}", response.status_code))

    Workflow.run(settings=STATEFUL)
    # links were followed: an item named by an id from an earlier answer answered 2xx
    followed = {call for call, status in seen if status < 300 and "{" in call}
    assert followed, sorted(set(seen))
