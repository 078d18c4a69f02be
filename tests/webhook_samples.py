"""Real deliveries of every webhook body the sandbox sends: every event type, to a
subscription of each profile and to one a partner client made, received over HTTP."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from helpers import Api, Settings, live_server
from receiver import Receiver, wait_for
from starlette.applications import Starlette
from starlette.testclient import TestClient

from sandbox import create_app
from sandbox.vocabulary import PROFILES
from sandbox.world.subscriptions import EVENT_TYPES


def _device(app: Starlette, device_type: str) -> dict[str, Any]:
    """A device of this type (both kinds come online: camera_network and bridge_network)."""
    row = app.state.services.world.store.one(
        "SELECT device_id, site_id FROM devices WHERE device_type = ? ORDER BY device_id",
        (device_type,),
    )
    return {"site_id": row["site_id"], "device_id": row["device_id"]}


def _emit(app: Starlette, client: TestClient) -> None:
    # each move of the alarm while it can take it: a verification is asked before it resolves
    first = ("alarm.created", "verification.requested")
    for event_type in (*first, *(t for t in EVENT_TYPES if t not in first)):
        response = client.post("/_sandbox/events", json={"type": event_type})
        assert response.status_code == 202, response.text
    for device_type in ("camera", "bridge"):
        data = _device(app, device_type)
        response = client.post("/_sandbox/events", json={"type": "device.online", "data": data})
        assert response.status_code == 202, response.text


@cache
def deliveries() -> tuple[tuple[str, dict[str, Any]], ...]:
    """``(profile, body)`` of every delivery; taken once per test session."""
    rx = Receiver()
    app = create_app(Settings())
    with live_server(rx.app) as url, TestClient(app) as client:
        for profile in PROFILES:
            made = client.post(
                "/_sandbox/subscriptions", json={"url": f"{url}/{profile}", "profile": profile}
            )
            assert made.status_code == 201, made.text
        api = Api(client)
        made = client.post(
            "/partner/v1/webhooks", json={"url": f"{url}/partner"}, headers=api.bearer(api.key)
        )
        assert made.status_code == 201, made.text
        _emit(app, client)
        counted = len(EVENT_TYPES) + 2
        wait_for(lambda: len(rx.at("/chekt-apps")) == counted and len(rx.at("/dealer-v1")) == 8)
        wait_for(lambda: len(rx.at("/legacy-guide")) == 8 and rx.at("/partner"))
    return tuple(
        (r.path.strip("/").replace("partner", "chekt-apps"), json.loads(r.body))
        for r in rx.received
    )
