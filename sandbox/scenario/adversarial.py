"""What an attacker or a flaky network sends a partner's receiver, for ``adversarial`` steps:
forged, stale and unsigned deliveries, replays, duplicates and out-of-order lifecycles."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

import httpx

from sandbox.client import public_cas
from sandbox.webhooks.signing import sign
from sandbox.world import catalog

SAMPLE = {"date-time": "2026-05-26T10:21:34.000Z", "uri": "https://partner.example/media"}


def _sample(schema: dict[str, Any]) -> Any:
    """A plausible value of a catalogue field, from its schema alone (no world needed)."""
    if "examples" in schema or "enum" in schema:
        return secrets.choice(schema.get("examples") or schema["enum"])
    kind = schema["type"]
    kind = next(k for k in kind if k != "null") if isinstance(kind, list) else kind
    if kind == "integer":
        return schema.get("minimum", 1) + secrets.randbelow(100_000)
    if kind == "string":
        return SAMPLE.get(schema.get("format", ""), "sample")
    return {"boolean": True, "array": [], "object": {}}[kind]


def sample_envelope(event_type: str, now: float, alarm_id: str | None = None) -> dict[str, Any]:
    """A chekt-apps envelope of ``event_type`` with the catalogue's fields (``alarm_id``:
    the alarm it is about, when it names one)."""
    data = {f.name: _sample(f.schema) for f in catalog.EVENTS[event_type].fields}
    if "alarm_id" in data:
        data["alarm_id"] = alarm_id or f"A-{secrets.randbelow(90000) + 10000}"
    return {
        "id": "evt_" + secrets.token_hex(8),
        "type": event_type,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "data": data,
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
    with httpx.Client(timeout=10, verify=public_cas()) as client:
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
        # out_of_order: an alarm's lifecycle, newest first
        steps = ["alarm.created", *(step for step, _ in catalog.LIFECYCLE)]
        alarm = f"A-{secrets.randbelow(90000) + 10000}"
        return [send(client, sample_envelope(step, now, alarm)) for step in reversed(steps)]
