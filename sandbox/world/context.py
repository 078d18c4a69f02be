"""``World``: what every domain call needs — the store, the clock, the timestamp style."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.clock import Clock, iso
from sandbox.store import Store


@dataclass
class World:
    store: Store
    clock: Clock
    timestamp_style: str = "iso"
    base_url: str = "http://127.0.0.1:8765"  # where links in payloads and records point
    # the rows each (seed, dealers, sites per dealer) seeded, so a reset copies them back
    seeded: dict[tuple[int, int, int], Any] = field(default_factory=dict, repr=False)

    def now(self) -> float:
        return self.clock.now()

    def stamp(self, timestamp: float) -> str:
        return iso(timestamp, self.timestamp_style)
