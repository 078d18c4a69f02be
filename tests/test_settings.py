"""Settings precedence (file < environment < flags) and pinned credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
from one_hop import TestClient

from sandbox import Settings, SettingsError, create_app
from sandbox.auth.keys import new_api_key


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "sandbox.yaml"
    config.write_text("port: 9000\nseed: 1\ntoken_lifetime: 60\n")
    env = {"CHEKT_SANDBOX_PORT": "9100", "CHEKT_SANDBOX_SEED": "2", "UNRELATED": "x"}
    settings = Settings.load(config, env=env, seed=3)
    assert (settings.port, settings.seed, settings.token_lifetime) == (9100, 3, 60)


def test_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "sandbox.toml"
    config.write_text('audience = "https://api.example/"\ndealers = 4\n')
    settings = Settings.load(config, env={})
    assert settings.audience == "https://api.example/" and settings.dealers == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot: 1\n", "did you mean 'port'"),
        ("port: eighty\n", "port must be an integer"),
        ("clock: sundial\n", "clock must be"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("port: [\n", "not valid"),
        ("clients: [{client_id: a}]\n", "client_secret is required"),
        ("clients: [{client_id: a, client_secret: b, kind: reseller}]\n", "kind must be one of"),
        ("clients: [{client_id: a, client_secret: b, kind: dealer_app}]\n", "exactly one dealer"),
        (
            "clients: [{client_id: a, client_secret: b, secert: c}]\n",
            "did you mean 'client_secret'",
        ),
        (
            "api_keys: [{key: chekt_live_abcdefghijklmnopqrstuvwxyz0123, dealer_id: 1001}]\n",
            "never accepts production credentials",
        ),
        ("clients: [{client_id: a, client_secret: chekt_live_abcdefghijklmnop}]\n", "chekt_live_"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=message):
        Settings.load(config, env={})


def test_missing_file() -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        Settings.load("/nonexistent/sandbox.yaml", env={})


def test_pinned_credentials_work_end_to_end(tmp_path: Path) -> None:
    key = new_api_key()
    config = tmp_path / "team.yaml"
    config.write_text(
        "clients:\n"
        "  - client_id: team-partner\n"
        "    client_secret: team-secret-0123456789\n"
        "    kind: platform_partner\n"
        "    dealer_ids: [1003]\n"
        "    scopes: read:dealer read:sites\n"
        "api_keys:\n"
        f"  - key: {key}\n"
        "    dealer_id: 1002\n"
        "    scopes: [read:sites]\n"
        "allowed_hosts: [testserver]\n"  # the TestClient's Host
    )
    with TestClient(create_app(Settings.load(config, env={}))) as client:
        token = client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "team-partner",
                "client_secret": "team-secret-0123456789",
            },
        ).json()
        assert token["scope"] == "read:dealer read:sites"
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        assert client.get("/partner/v1/dealers/1003/sites", headers=auth).status_code == 200
        assert client.get("/partner/v1/dealers/1001/sites", headers=auth).status_code == 404
        by_key = client.get(
            "/partner/v1/dealers/1002/sites", headers={"Authorization": f"Bearer {key}"}
        )
        assert by_key.status_code == 200
        listed = client.get("/_sandbox/credentials").json()
    assert any(k["key"] == key and k["scopes"] == ["read:sites"] for k in listed["api_keys"])
    assert any(
        c["client_id"] == "team-partner" and c["dealer_ids"] == [1003] for c in listed["clients"]
    )


def test_malformed_pinned_key_is_refused_with_a_suggestion() -> None:
    settings = Settings.from_mapping(
        {"api_keys": [{"key": "chekt_test_" + "a" * 32, "dealer_id": 1001}]}
    )
    with pytest.raises(SettingsError, match=r"not a well-formed sandbox key.*chekt_test_"):
        create_app(settings)


def test_pinned_dealer_must_exist() -> None:
    settings = Settings.from_mapping(
        {"clients": [{"client_id": "a", "client_secret": "b", "dealer_ids": [42]}]}
    )
    with pytest.raises(SettingsError, match="dealer 42 is not in the world"):
        create_app(settings)
