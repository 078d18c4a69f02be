"""Bad input never breaks the sandbox: strings JSON can carry but UTF-8 cannot (unpaired
surrogates), bodies nested without end, and undecodable bytes in query strings and headers
get a 4xx on every documented operation, and afterwards the journal and the deliveries still
answer and webhooks are still delivered."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest
from helpers import Api, Settings, live_server
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from one_hop import TestClient
from receiver import Receiver, wait_for
from surrogates import planted, string_paths, with_lone_surrogate

from sandbox import VirtualClock, create_app
from sandbox.auth.clients import APPS_SCOPES
from sandbox.jsontext import MAX_DEPTH
from sandbox.webhooks import verify_signature
from sandbox.world import events

# connecting a dealer needs a dealer admin's user token, checked before the body is read
REFUSED_BEFORE_THE_BODY = {("put", "/partner/v1/dealers/connect")}
Fixture = tuple[TestClient, Api, dict[str, Any]]
# what the wire carries where UTF-8 was expected: a surrogate's bytes (WTF-8), a byte no
# UTF-8 has, and a sequence cut short
UNDECODABLE = "\ud800".encode("utf-8", "surrogatepass") + b"\xff\xc3("


@contextmanager
def _sandbox() -> Iterator[Fixture]:
    """An app with its document, credentials and ids that exist, so every request reaches
    the point where its body is read."""
    clock = VirtualClock(start=1_900_000_000.0)  # so the clock's own routes read their bodies
    with TestClient(create_app(Settings(), clock=clock)) as client:
        api = Api(client)
        yield client, api, _ids(api)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Fixture]:
    """One app for the module's tests whose requests are all refused (and for Hypothesis,
    which reruns a test's body)."""
    with _sandbox() as made:
        yield made


def _ids(api: Api) -> dict[str, Any]:
    h = api.bearer(api.token())
    dealer = "/partner/v1/dealers/1001"
    site_id = api.client.get(f"{dealer}/sites", headers=h).json()[0]["site_id"]
    station = {"external_monitoring_station_id": "ms-bad", "name": "Station"}
    contact = {"external_contact_id": "c-bad", "first_name": "A", "last_name": "B"}
    device = {"external_device_id": "d-bad", "device_type": "camera", "zone_number": "001"}
    hook = {"url": "https://partner.example/hook"}
    posted = [
        api.client.post(f"{dealer}/monitoring-stations", json=station, headers=h),
        api.client.post(f"{dealer}/sites/{site_id}/contacts", json=contact, headers=h),
        api.client.post(f"{dealer}/sites/{site_id}/devices", json=[device], headers=h),
        api.client.post("/partner/v1/webhooks", json=hook, headers=h),
    ]
    assert all(r.status_code == 201 for r in posted), [r.text for r in posted]
    app = api.client.post(
        "/_sandbox/api-keys", json={"dealer_id": 1001, "scopes": list(APPS_SCOPES)}
    ).json()
    alarms = api.client.get("/_sandbox/alarms", params={"dealer_id": 1001, "limit": 1}).json()
    window = {"start_time": "2000-01-01T00:00:00Z", "end_time": "2100-01-01T00:00:00Z"}
    logged = api.client.post(
        "/ext/v1/activity-logs/search",
        json={**window, "limit": 1, "category_id": 20007},
        headers=api.bearer(app["key"]),
    ).json()
    return {
        "headers": h,
        "app_headers": api.bearer(app["key"]),
        "alarm_id": alarms[0]["alarm_id"],
        "event_id": logged["data"][0]["event_id"],  # an alarm's, numbered as /ext/v1 numbers it
        "document": api.client.get("/openapi.json").json(),
        "dealer_id": 1001,
        "site_id": site_id,
        "monitoring_station_id": posted[0].json()["monitoring_station_id"],
        "contact_id": posted[1].json()["contact_id"],
        "device_id": posted[2].json()["results"][0]["device_id"],
        "webhook_id": posted[3].json()["webhook_id"],
    }


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield method, path, operation


def _url(path: str, ids: dict[str, Any]) -> str:
    names = ("dealer_id", "site_id", "monitoring_station_id", "contact_id", "device_id", "event_id")
    for name in names:
        path = path.replace("{" + name + "}", str(ids[name]))
    return path.replace("{webhook_id}", ids["webhook_id"]).replace("{alarm_id}", ids["alarm_id"])


def _headers(path: str, ids: dict[str, Any]) -> dict[str, str]:
    """An app's key on the Apps API and the dealer API (which take keys only), a partner's
    token elsewhere. Not on the endless event stream, where a request the key lets through
    would never be answered in full."""
    keys_only = path.startswith(("/v1/", "/ext/v1/")) and path != "/v1/events/stream"
    return dict(ids["app_headers"] if keys_only else ids["headers"])


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def skeleton(schema: dict[str, Any], document: dict[str, Any]) -> Any:
    """A value of the schema's shape with every optional part present: each string in it is
    a place for a surrogate."""
    schema = _resolve(schema, document)
    for choice in ("oneOf", "anyOf"):
        if choice in schema:
            return skeleton(schema[choice][0], document)
    if "const" in schema or "enum" in schema:
        return schema.get("const", (schema.get("enum") or [None])[0])
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: skeleton(inner, document) for name, inner in properties.items()}
    if kind == "array":
        return [skeleton(schema.get("items", {}), document)]
    return {"string": "x", "integer": 1, "number": 1, "boolean": True}.get(str(kind))


def _writes(document: dict[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    """Every documented operation with a text body (JSON or a form; an upload's bytes are
    no text): method, path, media type, full body."""
    for method, path, operation in _operations(document):
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            if "json" in media or "form" in media:
                yield method, path, media, skeleton(content["schema"], document)


def _send_with(client: TestClient, ids: dict[str, Any], write: tuple[Any, ...], body: Any) -> Any:
    method, path, media, _ = write
    if "json" in media:
        content = json.dumps(body).encode()  # ASCII: a surrogate goes as its \\u escape
    else:  # a form: the surrogate's bytes, percent-encoded, as a client on the wire sends them
        content = "&".join(
            f"{quote(k.encode('utf-8', 'surrogatepass'))}="
            f"{quote(str(v).encode('utf-8', 'surrogatepass'))}"
            for k, v in body.items()
        ).encode()
    headers = {**_headers(path, ids), "Content-Type": media}
    return client.request(method, _url(path, ids), content=content, headers=headers)


@settings(
    max_examples=2,  # each example sends ~145 requests
    deadline=None,
    phases=[Phase.generate],  # a failure names its operation and field: no shrinking needed
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_surrogate_in_any_string_of_any_documented_write_gets_a_4xx(
    sandbox: Fixture, data: st.DataObject
) -> None:
    client, _, ids = sandbox
    writes = list(_writes(ids["document"]))
    assert len(writes) > 30
    sent = 0
    for write in writes:
        method, path, media, body = write
        for where in string_paths(body):
            text = data.draw(with_lone_surrogate(), label=f"{method} {path} {where}")
            response = _send_with(client, ids, write, planted(body, where, text))
            sent += 1
            assert 400 <= response.status_code < 500, (method, path, where, response.text)
            if "json" in media and (method, path) not in REFUSED_BEFORE_THE_BODY:
                error = response.json()["error"]
                assert response.status_code == 400 and "unpaired surrogate" in error["message"]
    assert sent > 140  # every string of every write, and every object's names
    _still_answering(client)


def _still_answering(client: TestClient) -> None:
    for path in ("/_sandbox/requests", "/_sandbox/deliveries", "/_sandbox/requests?reveal=true"):
        response = client.get(path)
        assert response.status_code == 200, response.text
        json.loads(response.content.decode("utf-8"))  # strict UTF-8 all through


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 2_000, 100_000])
def test_bodies_nested_too_deeply_get_400_on_every_json_write(sandbox: Fixture, depth: int) -> None:
    """Past the cap, and past what Python's own parser can recurse through (RecursionError)."""
    client, _, ids = sandbox
    for write in _writes(ids["document"]):
        method, path, media, _ = write
        if "json" not in media or (method, path) in REFUSED_BEFORE_THE_BODY:
            continue
        for deep in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
            headers = {**_headers(path, ids), "Content-Type": media}
            response = client.request(method, _url(path, ids), content=deep, headers=headers)
            assert response.status_code == 400, (method, path, response.text)
            assert "nested deeper than 32 levels" in response.json()["error"]["message"]
    _still_answering(client)


def test_the_depth_cap_is_exactly_32_levels(sandbox: Fixture) -> None:
    client, _, ids = sandbox
    url = _url("/partner/v1/dealers/{dealer_id}/sites", ids)
    for levels, status in ((MAX_DEPTH, 422), (MAX_DEPTH + 1, 400)):  # 422: no such field
        body = '{"deep": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"
        response = client.post(url, content=body, headers={**ids["headers"], **_JSON})
        assert response.status_code == status, response.text


_JSON = {"Content-Type": "application/json"}


def test_undecodable_bytes_in_every_query_parameter_and_header_never_break_anything() -> None:
    """Where JSON has escapes, a query string or a header has only bytes: a surrogate arrives
    as its WTF-8 bytes, which no strict UTF-8 decoder takes. (An app of its own: requests
    with a bad header but no body, such as a reset, are carried out.)"""
    with _sandbox() as (client, _, ids):
        _every_query_parameter_and_header(client, ids, UNDECODABLE)


def _every_query_parameter_and_header(client: TestClient, ids: dict[str, Any], raw: bytes) -> None:
    escaped = quote(raw)
    for method, path, operation in _operations(ids["document"]):
        parameters = operation.get("parameters", [])
        url, credential = _url(path, ids), _headers(path, ids)
        for parameter in parameters:
            if parameter["in"] == "query":
                response = client.request(
                    method, f"{url}?{parameter['name']}=x{escaped}", headers=credential
                )
            elif parameter["in"] == "header" and parameter["name"].lower() != "authorization":
                headers = {**credential, parameter["name"]: b"x" + raw}
                response = client.request(method, url, headers=headers)
            else:
                continue
            assert response.status_code < 500, (method, path, parameter["name"], response.text)
        for name in ("Idempotency-Key", "Authorization"):  # read by every operation
            response = client.request(method, url, headers={**credential, name: raw})
            assert response.status_code < 500, (method, path, name, response.text)
    _still_answering(client)


def test_a_surrogate_in_stored_event_data_is_sent_as_u_fffd_and_delivery_goes_on() -> None:
    """Defence in depth: the API refuses surrogates, but one that reaches an event's data by
    another way (an in-process emit) must not make the outbox stick."""
    receiver = Receiver()
    clock = VirtualClock(start=1_900_000_000.0)
    app = create_app(Settings(), clock=clock)
    with live_server(receiver.app) as url, TestClient(app) as client:
        created = client.post("/_sandbox/subscriptions", json={"url": f"{url}/hook"})
        secret = created.json()["secret"]
        world = app.state.services.world
        with world.store.transaction():
            events.off_record(world, "site.armed", {"site_name": "Porch \ud800", "site_id": 1})
        app.state.services.dispatcher.wake()
        after = client.post("/_sandbox/events", json={"type": "site.disarmed"})
        assert after.status_code == 202
        received = wait_for(lambda: len(receiver.at("/hook")) == 2 and receiver.at("/hook"))
        _still_answering(client)
    bodies = {json.loads(r.body)["type"]: r for r in received}
    armed = bodies["site.armed"]
    assert json.loads(armed.body.decode("utf-8"))["data"]["site_name"] == "Porch \ufffd"
    verify_signature(secret, armed.headers, armed.body, now=clock.now())


def test_the_journal_shows_refused_bodies_and_still_redacts_repeated_secrets(
    sandbox: Fixture,
) -> None:
    client, _, ids = sandbox
    url = "/partner/v1/webhooks"
    bodies = [
        b'{"url": "https://partner.example/a", "secret": "s3cret-one", "secret": "s3cret-two"}',
        b'{"url": "https://partner.example/\\ud800"}',
        b'{"url": ' + b"[" * 40 + b"]" * 40 + b"}",
    ]
    for body in bodies:
        response = client.post(url, content=body, headers={**ids["headers"], **_JSON})
        assert response.status_code == 400
    shown = client.get("/_sandbox/requests", params={"path": url}).json()[-3:]
    assert shown[0]["body"]["secret"] == "[redacted]" and "s3cret" not in json.dumps(shown)
    assert [entry["body"] for entry in shown[1:]] == [b.decode() for b in bodies[1:]]


def _unsigned_jwt(header: bytes, claims: bytes) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"{b64(header)}.{b64(claims)}.c2ln"


def test_jwts_whose_claims_hold_a_surrogate_are_refused_before_any_lookup(
    sandbox: Fixture,
) -> None:
    """A client assertion's iss, or a revoked token's jti, is looked up in the store."""
    client, api, _ = sandbox
    token = _unsigned_jwt(
        b'{"alg":"RS256","typ":"JWT"}',
        b'{"iss":"\\ud800","sub":"\\ud800","jti":"\\udfff","azp":"sandbox-platform-partner"}',
    )
    assertion = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": token,
    }
    refused = client.post("/oauth/token", data=assertion)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    partner = {"client_id": api.partner["client_id"], "client_secret": api.partner["client_secret"]}
    assert client.post("/oauth/revoke", data={**partner, "token": token}).status_code == 200
    _still_answering(client)
