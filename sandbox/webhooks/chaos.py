"""Webhook chaos: what a receiver must survive besides duplicates and reordering.

- ``burst``: the next N deliveries' first attempts ignore the per-subscription concurrency
  cap, so events due together (``POST /_sandbox/events {"random": N}`` without a ``rate``)
  arrive all at once;
- ``slow_send_ms``: every attempt's body trickles out in chunks over that many ms, as over
  a slow network (the signature is over the very same bytes);
- ``oversize``: each new delivery's body is padded to at least that many bytes with an
  extra ``padding`` field in its data: still valid JSON, still signed;
- ``unknown_types``: a share of deliveries is followed by one of an event type the
  catalogue does not have yet, in the subscription's format (off the record);
- ``extra_fields``: a share of deliveries carry fields a receiver does not know, in the
  envelope and in the data.

A well-behaved receiver answers 2xx to all of it. Bodies are changed when a delivery is
made, so every attempt of it stays byte-identical; each delivery or attempt touched says so
in the journal (``chaos``). Draws come from one generator seeded with ``settings.seed``.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sandbox.settings import CHAOS_LIMITS, Settings
from sandbox.webhooks.profiles import OFF_RECORD

SLOW_CHUNKS = 8  # a slow body is sent in this many pieces
# names a future version of the platform might send; none is in the catalogue
UNKNOWN_TYPES = ("device.rebooted", "alarm.reopened", "site.renamed", "camera.tampered")
# fields a future version might add, and a receiver must ignore
EXTRA_ENVELOPE = {"api_revision": "2027-01-01", "region": "us-east-1"}
EXTRA_DATA = {"confidence": 0.87, "labels": ["future"], "firmware_channel": "beta"}
# each knob (a settings name without ``webhook_``) and the most it may be
LIMITS = {name.removeprefix("webhook_"): high for name, high in CHAOS_LIMITS.items()}
KNOBS = tuple(LIMITS)
WHOLE = ("burst", "oversize")  # knobs that are whole numbers


@dataclass
class Faults:
    """The webhook knobs in force (all off by default)."""

    duplicate_rate: float = 0.0  # share of attempts sent twice
    reorder_window: float = 0.0  # each delivery's first attempt held back up to this many s
    burst: int = 0  # deliveries still to come whose first attempts skip the concurrency cap
    slow_send_ms: float = 0.0  # every attempt's body spread over this many ms
    oversize: int = 0  # bytes each new body is padded to (0: off)
    unknown_types: float = 0.0  # share of deliveries followed by an unknown event type
    extra_fields: float = 0.0  # share of deliveries with unknown fields added
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def view(self) -> dict[str, Any]:
        return {
            "duplicate_rate": self.duplicate_rate,
            "reorder_window": self.reorder_window,
            **{name: getattr(self, name) for name in KNOBS},
        }

    def reset(self, settings: Settings, seed: int | None = None) -> None:
        """Back to what the settings say, the generator seeded afresh (``seed``: a reset's
        own seed instead of the settings')."""
        self.duplicate_rate = settings.duplicate_rate
        self.reorder_window = settings.reorder_window
        for name in KNOBS:
            setattr(self, name, getattr(settings, f"webhook_{name}"))
        self.rng = random.Random(f"{settings.seed if seed is None else seed}/webhook-chaos")

    def clear(self) -> None:
        self.duplicate_rate = self.reorder_window = 0.0
        self.burst = self.oversize = 0
        self.slow_send_ms = self.unknown_types = self.extra_fields = 0.0

    @property
    def shapes_bodies(self) -> bool:
        return bool(self.oversize or self.unknown_types or self.extra_fields)

    def take_burst(self) -> bool:
        """Whether the next first attempt is part of a burst (and counts it)."""
        if self.burst <= 0:
            return False
        self.burst -= 1
        return True

    def shape(self, body: bytes) -> tuple[bytes, list[str]]:
        """A new delivery's body with extra fields and padding as the knobs say, and marks."""
        marks: list[str] = []
        if not (self.oversize or self.extra_fields):
            return body, marks
        envelope = json.loads(body)
        if self.extra_fields and self.rng.random() < self.extra_fields:
            envelope.update(EXTRA_ENVELOPE)
            _data(envelope).update(EXTRA_DATA)
            marks.append("extra_fields")
        shaped = _encode(envelope)
        if self.oversize and len(shaped) < self.oversize:
            shaped = _pad(envelope, self.oversize)
            marks.append(f"oversize {len(shaped)}")
        return shaped, marks

    def unknown(self, profile: str, body: bytes) -> tuple[str, str, bytes] | None:
        """Now and then (``unknown_types``): an event id, type name and body of a type the
        catalogue does not have, modelled on a real delivery's body in the same format."""
        if not self.unknown_types or self.rng.random() >= self.unknown_types:
            return None
        name = self.rng.choice(UNKNOWN_TYPES)
        event_id = "evt_" + secrets.token_hex(8)
        envelope = json.loads(body)
        if profile == "dealer-v1":
            name = name.replace(".", "_")
            envelope.update(
                event_id=OFF_RECORD + int(event_id[4:], 16) % OFF_RECORD,
                event_type=name,
                status=name.split("_")[1],
            )
        else:
            envelope.update(id=event_id, type=name)
        return event_id, name, _encode(envelope)


def _data(envelope: dict[str, Any]) -> dict[str, Any]:
    """The part of a body that holds the event's fields, whatever the format."""
    if isinstance(envelope.get("data"), dict):
        data: dict[str, Any] = envelope["data"]
        return data
    payload = envelope.setdefault("payload", {})
    inner: dict[str, Any] = payload.setdefault("data", {})
    return inner


def _encode(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def _pad(envelope: dict[str, Any], size: int) -> bytes:
    """The envelope with ``padding`` (spaces-free ASCII) in its data, exactly ``size`` bytes
    when it can be."""
    data = _data(envelope)
    data["padding"] = ""
    short = size - len(_encode(envelope))
    data["padding"] = "x" * max(short, 0)
    return _encode(envelope)


async def trickle(body: bytes, over_ms: float) -> AsyncIterator[bytes]:
    """``body`` in SLOW_CHUNKS pieces, spread evenly over ``over_ms`` (a slow network)."""
    step = max(1, -(-len(body) // SLOW_CHUNKS))
    pieces = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    pause = over_ms / 1000 / max(1, len(pieces) - 1)
    for index, piece in enumerate(pieces):
        if index:
            await asyncio.sleep(pause)
        yield piece
