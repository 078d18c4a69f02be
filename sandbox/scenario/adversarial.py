"""What an attacker or a flaky network sends a partner's receiver, for ``adversarial`` steps:
forged, stale and unsigned deliveries, replays, duplicates and out-of-order lifecycles."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

import httpx

from sandbox.webhooks.signing import sign


def sample_envelope(event_type: str, now: float) -> dict[str, Any]:
    return {
        "id": "evt_" + secrets.token_hex(8),
        "type": event_type,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "data": {
            "dealer_id": 1001,
            "site_id": 10001,
            "external_site_id": "site-1001-1",
            "alarm_id": f"A-{secrets.randbelow(90000) + 10000}",
            "device_id": 100002,
            "external_device_id": "cam-10001-1",
            "priority": "HIGH",
            "trigger": "motion",
        },
    }


def attack(kind: str, url: str, secret: str, event_type: str, now: float) -> list[httpx.Response]:
    """Send the receiver what an attacker or a flaky network would."""

    def send(
        client: httpx.Client,
        envelope: dict[str, Any],
        *,
        key: str = secret,
        stamp: float = now,
        signed: bool = True,
        delivery: str | None = None,
        attempt: int = 1,
    ) -> httpx.Response:
        body = json.dumps(envelope, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-CHeKT-Event-Id": envelope["id"],
            "X-CHeKT-Delivery-Id": delivery or "dlv_" + uuid.uuid4().hex[:16],
            "X-CHeKT-Attempt": str(attempt),
        }
        if signed:
            headers.update(sign(key, body, int(stamp)))
        return client.post(url, content=body, headers=headers)

    envelope = sample_envelope(event_type, now)
    with httpx.Client(timeout=10) as client:
        if kind == "tampered_signature":
            return [send(client, envelope, key=secret + "tampered")]
        if kind == "stale_timestamp":
            return [send(client, envelope, stamp=now - 600)]
        if kind == "missing_signature":
            return [send(client, envelope, signed=False)]
        if kind == "replayed_event":
            return [send(client, envelope), send(client, envelope, attempt=2)]
        if kind == "duplicate":
            delivery = "dlv_" + uuid.uuid4().hex[:16]
            return [
                send(client, envelope, delivery=delivery),
                send(client, envelope, delivery=delivery),
            ]
        # out_of_order: a lifecycle, newest first
        steps = ["alarm.resolved", "alarm.dispatched", "alarm.acknowledged", "alarm.created"]
        alarm = envelope["data"]["alarm_id"]
        return [
            send(
                client,
                {**sample_envelope(step, now), "data": {**envelope["data"], "alarm_id": alarm}},
            )
            for step in steps
        ]
