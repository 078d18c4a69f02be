"""Code generated from ``/openapi.json`` works out of the box. openapi-python-client, with
its default settings, builds a client that talks to a real sandbox over HTTP; and
datamodel-code-generator builds a model for every webhook body of every profile, which
parses what the sandbox really sends.

Each generator runs once per session, in a temporary directory (a few seconds each)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from helpers import Settings, live_server
from one_hop import TestClient
from webhook_samples import deliveries

from sandbox import create_app
from sandbox.vocabulary import PROFILES
from sandbox.webhooks import profiles

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def document() -> dict[str, Any]:
    with TestClient(create_app(Settings())) as client:
        return dict(client.get("/openapi.json").json())


def _generate(tool: str, where: Path, *args: str) -> None:
    """Run ``tool`` on the document in ``where``, with this environment's tools on PATH (the
    client generator formats its output with ruff)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [str(BIN / tool), *args],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "warning" not in output.lower(), output


@pytest.fixture(scope="session")
def client_package(
    tmp_path_factory: pytest.TempPathFactory, document: dict[str, Any]
) -> Iterator[ModuleType]:
    where = tmp_path_factory.mktemp("openapi-python-client")
    (where / "openapi.json").write_text(json.dumps(document))
    # media uploads (the Event API's) and a camera's live view are bytes: the generator's
    # documented way to take a binary type it does not know
    (where / "config.yaml").write_text(
        "content_type_overrides:\n  image/jpeg: application/octet-stream\n"
        "  video/mp4: application/octet-stream\n"
        "  multipart/x-mixed-replace: application/octet-stream\n"
    )
    _generate(
        "openapi-python-client",
        where,
        *("generate", "--path", "openapi.json", "--config", "config.yaml"),
    )
    [project] = where.glob("*-client")
    sys.path.insert(0, str(project))
    try:
        yield importlib.import_module("chekt_sandbox_client")
    finally:
        sys.path.remove(str(project))
        for name in [m for m in sys.modules if m.startswith("chekt_sandbox_client")]:
            del sys.modules[name]


@pytest.fixture(scope="session")
def webhook_models(
    tmp_path_factory: pytest.TempPathFactory, document: dict[str, Any]
) -> ModuleType:
    where = tmp_path_factory.mktemp("datamodel-codegen")
    (where / "openapi.json").write_text(json.dumps(document))
    _generate(
        "datamodel-codegen",
        where,
        *("--input", "openapi.json", "--input-file-type", "openapi", "--output", "models.py"),
        *("--output-model-type", "pydantic_v2.BaseModel", "--formatters", "builtin"),
        # the document's own format name (a str; without the mapping it warns, and falls back)
        *("--type-mappings", "string+iana-time-zone=string"),
    )
    spec = importlib.util.spec_from_file_location("chekt_webhook_models", where / "models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic looks its generic models up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def _operation(package: ModuleType, surface: str, operation: str) -> Any:
    return importlib.import_module(f"{package.__name__}.api.{surface}.{operation}")


def _credentials(url: str) -> tuple[dict[str, Any], str]:
    """The sandbox's credentials, and its seeded API key."""
    creds = httpx.get(f"{url}/_sandbox/credentials").json()
    return creds, next(k["key"] for k in creds["api_keys"] if k["origin"] == "seeded")


def test_the_generated_client_lists_sites_with_an_api_key_and_with_a_token(
    client_package: ModuleType,
) -> None:
    list_sites = _operation(client_package, "partner_api", "get_dealers_sites")
    get_token = _operation(client_package, "auth_server", "post_oauth_token")
    models = importlib.import_module(f"{client_package.__name__}.models")
    with live_server(create_app(Settings())) as url:
        creds, key = _credentials(url)
        expected = httpx.get(
            f"{url}/partner/v1/dealers/1001/sites", headers={"Authorization": f"Bearer {key}"}
        ).json()
        with client_package.AuthenticatedClient(base_url=url, token=key) as client:
            listed = list_sites.sync_detailed(1001, client=client, limit=100)
        partner = next(c for c in creds["clients"] if c["client_id"] == "sandbox-platform-partner")
        grant = models.ClientSecretGrant(
            grant_type="client_credentials",
            client_id=partner["client_id"],
            client_secret=partner["client_secret"],
        )
        with client_package.Client(base_url=url) as anonymous:
            tokens = get_token.sync(client=anonymous, body=grant)
        assert isinstance(tokens, models.Tokens), tokens
        with client_package.AuthenticatedClient(base_url=url, token=tokens.access_token) as client:
            with_token = list_sites.sync(1001, client=client, limit=100)
        with client_package.AuthenticatedClient(base_url=url, token="chekt_test_wrong") as client:
            refused = list_sites.sync(1001, client=client)
    assert listed.status_code == 200
    assert all(isinstance(site, models.Site) for site in listed.parsed)
    assert [site.to_dict() for site in listed.parsed] == expected
    assert [site.site_id for site in with_token] == [site["site_id"] for site in expected]
    assert isinstance(refused, models.Error)
    assert refused.error.code == "invalid_api_key", refused.error


def test_the_generated_client_sends_named_bodies_and_the_server_checks_time_zones(
    client_package: ModuleType,
) -> None:
    """TimeZone is a pattern in the document; the server's tz database decides."""
    create_site = _operation(client_package, "partner_api", "post_dealers_sites")
    models = importlib.import_module(f"{client_package.__name__}.models")
    with live_server(create_app(Settings())) as url:
        _, key = _credentials(url)
        with client_package.AuthenticatedClient(base_url=url, token=key) as client:
            made = create_site.sync(
                1001,
                client=client,
                body=models.SiteInput(
                    external_site_id="gen-1", name="Generated", timezone="Europe/Berlin"
                ),
            )
            refused = create_site.sync(
                1001,
                client=client,
                body=models.SiteInput(
                    external_site_id="gen-2", name="Generated", timezone="Mars/Olympus_Mons"
                ),
            )
    assert isinstance(made, models.Site), made
    assert made.timezone == "Europe/Berlin"
    assert isinstance(refused, models.Error), refused
    assert refused.error.field == "timezone"


def test_datamodel_codegen_makes_a_model_per_event_type_per_profile(
    webhook_models: ModuleType,
) -> None:
    titles = [schema["title"] for p in PROFILES for schema in profiles.schemas(p).values()]
    assert len(titles) == len(set(titles)) == 11 + 5 + 6  # chekt-apps, legacy-guide, dealer-v1
    missing = [title for title in titles if not hasattr(webhook_models, title)]
    assert not missing


def test_the_webhook_models_parse_every_delivery(
    webhook_models: ModuleType, document: dict[str, Any]
) -> None:
    parsed = set()
    for profile, body in deliveries():
        name = body.get("type", body.get("event_type"))
        schema = document["webhooks"][f"{profile}:{name}"]["post"]["requestBody"]
        title = schema["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        model = getattr(webhook_models, title)
        assert model.model_validate(body).model_dump(mode="json", exclude_unset=True)
        parsed.add(title)
    assert len(parsed) == 22
