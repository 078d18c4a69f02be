"""What a partner's service did to CHeKT, read back from Python and the CLI: the alarms, the
audit log, an app's API key, and ``expect_alarm``, which waits for the record to show a move
(exactly that state, annotated, by whom) and otherwise shows the alarm and its audit trail."""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from sandbox import ExpectationFailed, Sandbox
from sandbox.cli import main

SCOPES = ["events:read", "events:write", "alarms:write"]
TABLE = ["alarm", "state", "site", "device", "priority", "trigger", "created_at", "updated_at"]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(clock="virtual") as running:
        yield running


@pytest.fixture(scope="module")
def app(sandbox: Sandbox) -> dict[str, Any]:
    """The partner's service: an app with a key for dealer 1001."""
    return sandbox.create_api_key(1001, SCOPES, name="partner service")


def new_alarm(sandbox: Sandbox) -> str:
    sandbox.emit("alarm.created", {"site_id": 10001})
    return str(sandbox.alarms(site_id=10001, limit=1)[0]["alarm_id"])


def act(sandbox: Sandbox, key: dict[str, Any], alarm_id: str, action: str, **body: Any) -> None:
    """What the service does through /v1 with its key."""
    answer = sandbox.request(
        "POST",
        f"/v1/alarms/{alarm_id}/{action}",
        json=body,
        headers={"Authorization": f"Bearer {key['key']}"},
    )
    assert answer.status_code == 200, answer.text


def cli(sandbox: Sandbox, command: str) -> str:
    """``chekt-sandbox <command>`` as typed, against ``sandbox``."""
    result = CliRunner().invoke(main, [*shlex.split(command), "--url", sandbox.url])
    assert result.exit_code == 0, result.output
    return result.output


def test_reading_the_record(sandbox: Sandbox, app: dict[str, Any]) -> None:
    alarm_id = new_alarm(sandbox)
    alarm = sandbox.alarm(alarm_id)
    assert alarm["state"] == "created" and alarm["site_id"] == 10001
    assert alarm_id in [a["alarm_id"] for a in sandbox.alarms(state="created", dealer_id=1001)]
    assert all(a["state"] == "resolved" for a in sandbox.alarms(state="resolved", limit=5))
    act(sandbox, app, alarm_id, "acknowledge", reason="on video")
    trail = sandbox.audit(target=f"alarm {alarm_id}")
    assert [(t["action"], t["actor_id"]) for t in trail] == [
        ("alarm.created", "sandbox"),
        ("alarm.acknowledged", app["client_id"]),
    ]
    assert sandbox.audit(actor_id=app["client_id"])[-1]["target"] == f"alarm {alarm_id}"
    assert app["key"].startswith("chekt_test_") and app["scopes"] == SCOPES
    with pytest.raises(ExpectationFailed, match="404 alarm A-1 was not found"):
        sandbox.alarm("A-1")
    with pytest.raises(ExpectationFailed, match="422 state must be created, acknowledged"):
        sandbox.alarms(state="acked")
    with pytest.raises(ExpectationFailed, match="dealer 99 is not in the world"):
        sandbox.create_api_key(99, SCOPES)


def test_an_app_key_with_a_webhook_hears_what_its_scopes_allow(sandbox: Sandbox) -> None:
    made = sandbox.create_api_key(
        1002, ["events:read"], webhook={"url": "http://127.0.0.1:9/hook", "secret": "s" * 24}
    )
    assert made["webhook"]["url"] == "http://127.0.0.1:9/hook" and made["dealer_id"] == 1002
    listed = httpx.get(
        f"{sandbox.url}/v1/alarms", headers={"Authorization": f"Bearer {made['key']}"}
    )
    assert listed.status_code == 200 and all(a["dealer_id"] == 1002 for a in listed.json())
    url_only = sandbox.create_api_key(1002, ["events:read"], webhook="http://127.0.0.1:9/x")
    assert url_only["webhook"]["secret"]  # a new one, shown once


def test_expect_alarm_passes_once_the_service_has_acted(
    sandbox: Sandbox, app: dict[str, Any]
) -> None:
    alarm_id = new_alarm(sandbox)
    act(sandbox, app, alarm_id, "acknowledge")
    act(sandbox, app, alarm_id, "annotate", source="ai", verdict="intruder", confidence=0.9)
    for by in (app["client_id"], "app"):
        alarm = sandbox.expect_alarm(
            alarm_id, state="acknowledged", annotated=True, verdict="intruder", by=by, within=0
        )
        assert alarm["annotations"][0]["verdict"] == "intruder"
    assert sandbox.expect_alarm(alarm_id, verdict="intruder", within=0)["state"] == "acknowledged"


def test_expect_alarm_waits_for_the_move(sandbox: Sandbox, app: dict[str, Any]) -> None:
    alarm_id = new_alarm(sandbox)
    later = threading.Timer(0.2, act, (sandbox, app, alarm_id, "acknowledge"))
    later.start()  # the service acts while expect_alarm polls
    try:
        alarm = sandbox.expect_alarm(alarm_id, state="acknowledged", by="app", within=10)
    finally:
        later.join()
    assert alarm["acknowledged_at"] is not None


def test_a_miss_shows_the_state_the_annotations_and_the_audit_trail(
    sandbox: Sandbox, app: dict[str, Any]
) -> None:
    alarm_id = new_alarm(sandbox)
    act(sandbox, app, alarm_id, "annotate", source="ai", verdict="uncertain", note="a cat?")
    with pytest.raises(ExpectationFailed) as missed:
        sandbox.expect_alarm(alarm_id, state="acknowledged", verdict="intruder", within=0.1)
    message = str(missed.value)
    first, *rest = message.splitlines()
    assert first == (
        f"alarm {alarm_id} was not acknowledged and annotated (intruder) within 0.1 s: "
        "it is created; no annotation has verdict intruder (verdicts: uncertain)"
    )
    assert f"alarm {alarm_id}: created (site 10001" in rest[0]
    assert "uncertain from ai by " + app["client_id"] + ": a cat?" in message
    assert "alarm.created          by sandbox sandbox via control" in message
    assert f"alarm.annotated        by app {app['client_id']} via v1 (req_" in message


def test_the_exact_state_and_the_actor_count(sandbox: Sandbox, app: dict[str, Any]) -> None:
    alarm_id = new_alarm(sandbox)
    sandbox.emit("alarm.acknowledged", {"alarm_id": alarm_id})  # the operator, not the app
    with pytest.raises(ExpectationFailed, match=r"alarm\.acknowledged was made by sandbox sandbox"):
        sandbox.expect_alarm(alarm_id, state="acknowledged", by=app["client_id"], within=0)
    act(sandbox, app, alarm_id, "dispatch", responder_type="guard")
    with pytest.raises(ExpectationFailed, match="within 0 s: it is dispatched"):
        sandbox.expect_alarm(alarm_id, state="acknowledged", within=0)  # past it is not it
    sandbox.expect_alarm(alarm_id, state="dispatched", by="app", annotated=False, within=0)
    with pytest.raises(ExpectationFailed, match="it has no annotation"):
        sandbox.expect_alarm(alarm_id, annotated=True, within=0)
    with pytest.raises(ValueError, match="state must be one of created"):
        sandbox.expect_alarm(alarm_id, state="acked")
    with pytest.raises(ValueError, match="a verdict needs an annotation"):
        sandbox.expect_alarm(alarm_id, annotated=False, verdict="intruder")


def test_cli_alarms_audit_and_api_key(sandbox: Sandbox) -> None:
    out = cli(sandbox, "api-key --dealer 1001 --scope events:read --scope events:write")
    key, *details = out.splitlines()
    fields = {line[:12].strip(): line[12:] for line in details}
    assert fields["scopes"] == "events:read events:write" and fields["dealer"] == "1001"
    alarm_id = new_alarm(sandbox)
    act(sandbox, {"key": key}, alarm_id, "acknowledge")

    header, *rows = cli(sandbox, "alarms --state acknowledged --site 10001").splitlines()
    assert header.split() == TABLE
    assert rows and rows[0].split()[:3] == [alarm_id, "acknowledged", "10001"]
    lines = cli(sandbox, "alarms --dealer 1001 --limit 2 --json").splitlines()
    assert len(lines) == 2 and all(json.loads(x)["dealer_id"] == 1001 for x in lines)

    _, *trail = cli(sandbox, f"audit --alarm {alarm_id}").splitlines()
    assert [row.split()[2:6] for row in trail] == [
        ["sandbox", "sandbox", "control", "alarm.created"],
        ["app", fields["client id"], "v1", "alarm.acknowledged"],
    ]
    mine = cli(sandbox, f"audit --actor {fields['client id']} --json").splitlines()
    assert [json.loads(x)["action"] for x in mine] == ["alarm.acknowledged"]
    latest = cli(sandbox, "audit --limit 3").splitlines()[1:]
    assert len(latest) == 3 and alarm_id in latest[-1]  # the latest entries, oldest first


def test_cli_errors_are_one_clear_line(sandbox: Sandbox) -> None:
    refused = CliRunner().invoke(main, ["alarms", "--url", "http://127.0.0.1:9"])
    assert refused.exit_code == 1
    assert refused.output.startswith("Error: cannot reach the sandbox at http://127.0.0.1:9:")
    unknown = CliRunner().invoke(
        main, ["api-key", "--dealer", "99", "--scope", "events:read", "--url", sandbox.url]
    )
    assert unknown.exit_code == 1 and unknown.output.startswith(
        "Error: POST /_sandbox/api-keys: 422 dealer_id: dealer 99 is not in the world"
    )
    both = CliRunner().invoke(main, ["audit", "--alarm", "A-1", "--target", "x"])
    assert both.exit_code == 2 and "give --alarm or --target, not both" in both.output
