"""``World``: what every domain call needs — the store, the clock, the timestamp style."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.clock import Clock, iso
from sandbox.store import Store


@dataclass
class World:
    store: Store
    clock: Clock
    timestamp_style: str = "iso"
    base_url: str = "http://127.0.0.1:8765"  # where links in payloads and records point
    # seconds the sandbox's stamping clock is off from its clock (auth chaos): added to the
    # times written into tokens and webhook signatures and to the checks of those times
    skew: float = 0.0
    # seeding draws its world in a child process (``serve``: Faker never enters the server)
    draws_apart: bool = False

    def now(self) -> float:
        return self.clock.now()

    def signing_now(self) -> float:
        """The time stamped into credentials and signatures: the clock plus the skew."""
        return self.clock.now() + self.skew

    def stamp(self, timestamp: float) -> str:
        return iso(timestamp, self.timestamp_style)
