"""Real deliveries of every webhook body the sandbox sends: every event type, to a
subscription of each profile and to one a partner client made, received over HTTP."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from helpers import Api, Settings, live_server
from one_hop import TestClient
from receiver import Receiver, wait_for
from starlette.applications import Starlette

from sandbox import create_app
from sandbox.vocabulary import PROFILES
from sandbox.world.catalog import EVENT_TYPES


def _device(app: Starlette, device_type: str) -> dict[str, Any]:
    """A device of this type (both kinds come online: camera_network and bridge_network)."""
    row = app.state.services.world.store.one(
        "SELECT device_id, site_id FROM devices WHERE device_type = ? ORDER BY device_id",
        (device_type,),
    )
    return {"site_id": row["site_id"], "device_id": row["device_id"]}


def _extra(app: Starlette) -> list[dict[str, Any]]:
    """Events that take each dealer-v1 name for sure: both network kinds, an alarm's video,
    a whole-site arming and one partition's (a site with two partitions)."""
    store = app.state.services.world.store
    two = store.scalar("SELECT site_id FROM arming GROUP BY site_id HAVING COUNT(*) = 2")
    alarm = store.one("SELECT alarm_id, site_id, device_id FROM alarms ORDER BY number DESC")
    return [
        *({"type": "device.online", "data": _device(app, kind)} for kind in ("camera", "bridge")),
        {"type": "snapshot.created", "data": alarm},
        {"type": "site.armed", "data": {"site_id": two, "partition": 2, "whole_site": True}},
        {"type": "site.disarmed", "data": {"site_id": two, "partition": 1, "whole_site": False}},
    ]


def _emit(app: Starlette, client: TestClient) -> int:
    """Emit every event type, then :func:`_extra`; returns how many events."""
    # each move of the alarm while it can take it: a verification is asked before it resolves
    first = ("alarm.created", "verification.requested")
    bodies = [{"type": t} for t in (*first, *(t for t in EVENT_TYPES if t not in first))]
    for body in bodies[:2]:
        response = client.post("/_sandbox/events", json=body)
        assert response.status_code == 202, response.text
    bodies = bodies[2:] + _extra(app)
    for body in bodies:
        response = client.post("/_sandbox/events", json=body)
        assert response.status_code == 202, response.text
    return len(bodies) + 2


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
        counted = _emit(app, client)
        # dealer-v1 and legacy-guide have no name for some (firmware, acknowledged, ...)
        wait_for(lambda: len(rx.at("/chekt-apps")) == counted and len(rx.at("/dealer-v1")) == 10)
        wait_for(lambda: len(rx.at("/legacy-guide")) == 10 and rx.at("/partner"))
    return tuple(
        (r.path.strip("/").replace("partner", "chekt-apps"), json.loads(r.body))
        for r in rx.received
    )
