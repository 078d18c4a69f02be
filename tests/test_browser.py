"""A web page the developer visits must not drive the sandbox: a rebound ``Host`` is refused on
every route, a cross-site state-changing request on every control and auth route (except the
CORS-enabled token and revoke endpoints), and sign-in pages refuse to be framed. Requests
from code (no ``Origin``), same-origin pages and loopback names keep working."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import TEST_SETTINGS, Api, Settings, live_server
from one_hop import TestClient
from starlette.routing import Route

from sandbox import SettingsError, create_app

CONTROL_AND_AUTH = ("/_sandbox", "/oauth", "/authorize", "/v2/", "/.well-known")
CORS_ENDPOINTS = {"/oauth/token", "/oauth/revoke"}
WRITES = ("POST", "PUT", "PATCH", "DELETE")
CROSS_SITE: list[dict[str, str]] = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
]


def _paths(prefixes: tuple[str, ...] = ("",)) -> list[str]:
    """Every route of the app (path parameters filled in), so a new route is covered too."""
    app = create_app(Settings())
    paths = [
        re.sub(r"\{[^}]+\}", "1", r.path)
        for r in app.routes
        if isinstance(r, Route) and r.path.startswith(prefixes)
    ]
    assert len(paths) >= (20 if prefixes == ("",) else 15)
    return paths


def _refused(response: httpx.Response, code: str) -> dict[str, Any]:
    assert response.status_code == 403, (response.request.url, response.text)
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["request_id"].startswith("req_")
    assert "allowed_hosts" in error["message"]  # the setting that fixes it
    return error


@pytest.fixture(scope="module")
def refusing() -> Iterator[TestClient]:
    """One app for every refusal below: a refused request reaches no route, so it changes
    nothing the next check could see (a fresh app per path cost more than its checks)."""
    app = create_app(TEST_SETTINGS)
    with TestClient(app) as test_client:
        yield test_client
    app.state.services.close()


@pytest.mark.parametrize("path", _paths())
def test_a_rebound_host_is_refused_on_every_route(refusing: TestClient, path: str) -> None:
    for method in ("GET", "POST"):
        response = refusing.request(method, path, headers={"Host": "evil.example"})
        error = _refused(response, "host_not_allowed")
        assert "'evil.example'" in error["message"]
    _refused(refusing.get(path, headers={"Host": "evil.example:8765"}), "host_not_allowed")


@pytest.mark.parametrize("path", sorted(set(_paths(CONTROL_AND_AUTH)) - CORS_ENDPOINTS))
def test_cross_site_writes_are_refused_on_control_and_auth_routes(
    refusing: TestClient, path: str
) -> None:
    for method in WRITES:
        for headers in CROSS_SITE:
            _refused(refusing.request(method, path, headers=headers), "cross_site_request")


def test_loopback_names_the_host_and_same_origin_pages_are_served(client: TestClient) -> None:
    for host in ("127.0.0.1:8765", "localhost", "LOCALHOST.", "app.localhost:3000", "[::1]:8765"):
        assert client.get("/_sandbox/health", headers={"Host": host}).status_code == 200, host
    for headers in (
        {},  # curl, SDKs
        {"Origin": "http://testserver"},  # a page served under an allowed name
        {"Origin": "http://localhost:5173", "Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed into the address bar
    ):
        response = client.post("/_sandbox/reset", json={"only": ["recorder"]}, headers=headers)
        assert response.status_code == 200, (headers, response.text)


def test_token_and_revoke_stay_open_to_browser_apps_on_other_origins(api: Api) -> None:
    browser = {"Origin": "https://spa.example", "Sec-Fetch-Site": "cross-site"}
    preflight = api.client.options("/oauth/token", headers=browser)
    assert preflight.status_code == 204
    form = {
        "grant_type": "client_credentials",
        "client_id": api.partner["client_id"],
        "client_secret": api.partner["client_secret"],
    }
    issued = api.client.post("/oauth/token", data=form, headers=browser)
    assert issued.status_code == 200 and issued.headers["access-control-allow-origin"] == "*"
    revoked = api.client.post(
        "/oauth/revoke",
        data={**form, "token": issued.json()["access_token"]},
        headers=browser,
    )
    assert revoked.status_code == 200


def test_the_partner_api_is_not_judged_by_origin(api: Api) -> None:
    """Bearer credentials are not ambient: a cross-origin call carries them on purpose."""
    response = api.client.get(
        "/partner/v1/dealers/1001/sites",
        headers={**api.bearer(api.key), "Origin": "https://evil.example"},
    )
    assert response.status_code == 200


def test_sign_in_pages_refuse_to_be_framed(client: TestClient) -> None:
    for path in ("/authorize?client_id=nobody", "/v2/logout"):
        response = client.get(path)
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'"


def test_allowed_hosts_and_the_issuer_name_the_sandbox() -> None:
    settings = Settings(allowed_hosts=("chekt-sandbox",), issuer="https://auth.example.test/")
    with TestClient(create_app(settings), base_url="http://chekt-sandbox:8765") as client:
        assert client.get("/_sandbox/health").status_code == 200
        issuer = client.get("/_sandbox/health", headers={"Host": "auth.example.test"})
        assert issuer.status_code == 200
        _refused(client.get("/_sandbox/health", headers={"Host": "testserver"}), "host_not_allowed")
    with TestClient(create_app(Settings(allowed_hosts=("*",)))) as client:
        assert client.get("/_sandbox/health", headers={"Host": "anything"}).status_code == 200
    assert Settings.load(env={"CHEKT_SANDBOX_ALLOWED_HOSTS": "a, b"}).allowed_hosts == ("a", "b")
    for bad in ("http://sandbox", "sandbox:8765", "sandbox/x"):
        with pytest.raises(SettingsError, match="allowed_hosts"):
            Settings.from_mapping({"allowed_hosts": [bad]})


def test_a_real_loopback_server_needs_no_setting_and_refuses_rebinding() -> None:
    app = create_app(Settings(allowed_hosts=()))
    with live_server(app) as url:
        assert httpx.get(f"{url}/_sandbox/health").status_code == 200
        rebound = httpx.get(f"{url}/_sandbox/credentials", headers={"Host": "evil.example"})
        _refused(rebound, "host_not_allowed")
        forged = httpx.post(
            f"{url}/_sandbox/keys/rotate", headers={"Origin": "https://evil.example"}
        )
        _refused(forged, "cross_site_request")
