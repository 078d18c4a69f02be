"""CHeKT's rate limits (CONTRACT §3.2): a token bucket per client, refilled on the sandbox
clock, so a test drains a bucket and refills it at once with ``POST /_sandbox/clock/advance``.

A bucket holds ``burst`` tokens and gains ``per_minute / 60`` a second; each request takes
one. Every answer to a limited request says ``X-RateLimit-Limit`` (the per-minute figure),
``X-RateLimit-Remaining`` (whole tokens left in the bucket) and ``X-RateLimit-Reset`` (unix
seconds on the sandbox clock when the bucket is full again); an empty bucket answers 429
``rate_limited`` with ``Retry-After`` (whole seconds until a token is back, at least 1).

Buckets live in process memory: they are counters that change on every request, and a
second worker would keep its own (limits are then per worker).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import RateLimited
from sandbox.vocabulary import RATE_TIERS, RateTier


@dataclass(frozen=True)
class Ceiling:
    per_minute: int
    burst: int

    @functools.cached_property  # asked on every limited request
    def rate(self) -> float:
        """Tokens gained per second."""
        return self.per_minute / 60.0

    @functools.cached_property
    def limit_header(self) -> tuple[bytes, bytes]:
        """``X-RateLimit-Limit`` as an answer carries it."""
        return _RAW[0], b"%d" % self.per_minute


# CHeKT's documented tiers: Free 60/min burst 5, Pro 600/min burst 30, Enterprise 3000/min 200
CEILINGS: dict[RateTier, Ceiling] = {
    "free": Ceiling(60, 5),
    "pro": Ceiling(600, 30),
    "enterprise": Ceiling(3000, 200),
}
assert tuple(CEILINGS) == RATE_TIERS
MAX_PER_MINUTE = 100_000_000
MAX_BURST = 10_000_000


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """The ceiling in force (None: off), per-client ceilings, and the buckets."""

    now: Callable[[], float]
    ceiling: Ceiling | None = None
    label: str = "off"  # the tier's name, "custom" or "off"
    clients: dict[str, tuple[str, Ceiling | None]] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.ceiling is not None or bool(self.clients)

    def set(self, label: str, ceiling: Ceiling | None, client_id: str | None = None) -> None:
        """Change the ceiling (of one client, or of everyone); the buckets start full."""
        if client_id is None:
            self.label, self.ceiling = label, ceiling
            self._buckets.clear()
        else:
            self.clients[client_id] = (label, ceiling)
            self._buckets.pop(client_id, None)

    def forget(self, client_id: str) -> None:
        """Put one client back under the common ceiling."""
        self.clients.pop(client_id, None)
        self._buckets.pop(client_id, None)

    def reset(self, label: str, ceiling: Ceiling | None) -> None:
        self.clients.clear()
        self.set(label, ceiling)

    def take(self, client_id: str) -> dict[str, str] | None:
        """Take a token for ``client_id``: the headers its answer carries (None: not
        limited), or RateLimited when its bucket is empty."""
        taken = self._take(client_id)
        return None if taken is None else _headers(*taken)

    def take_raw(self, client_id: str) -> list[tuple[bytes, bytes]] | None:
        """:meth:`take`, its headers as an answer carries them (names in lower case)."""
        taken = self._take(client_id)
        if taken is None:
            return None
        _, remaining, reset = _values(*taken)
        return [taken[0].limit_header, (_RAW[1], b"%d" % remaining), (_RAW[2], b"%d" % reset)]

    def _take(self, client_id: str) -> tuple[Ceiling, _Bucket, float] | None:
        ceiling = self.clients[client_id][1] if client_id in self.clients else self.ceiling
        if ceiling is None:
            return None
        now = self.now()
        bucket = self._buckets.get(client_id)
        if bucket is None:
            bucket = self._buckets[client_id] = _Bucket(float(ceiling.burst), now)
        elif now > bucket.at:
            gained = (now - bucket.at) * ceiling.rate
            bucket.tokens = min(float(ceiling.burst), bucket.tokens + gained)
            bucket.at = now
        else:  # the clock stood still (or was set back): nothing gained
            bucket.at = now
        if bucket.tokens < 1:
            wait = max(1, math.ceil((1 - bucket.tokens) / ceiling.rate))
            headers = _headers(ceiling, bucket, now)
            headers["Retry-After"] = str(wait)
            raise RateLimited(
                f"rate limit exceeded: {ceiling.per_minute} requests a minute, bursts of "
                f"{ceiling.burst}; retry after {wait} s",
                headers=headers,
            )
        bucket.tokens -= 1
        return ceiling, bucket, now

    def view(self) -> dict[str, Any]:
        return {
            **_ceiling_view(self.label, self.ceiling),
            "clients": [
                {"client_id": client_id, **_ceiling_view(label, ceiling)}
                for client_id, (label, ceiling) in sorted(self.clients.items())
            ],
        }


def _ceiling_view(label: str, ceiling: Ceiling | None) -> dict[str, Any]:
    return {
        "tier": label,
        "per_minute": ceiling.per_minute if ceiling else None,
        "burst": ceiling.burst if ceiling else None,
    }


_NAMES = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
_RAW = tuple(name.lower().encode() for name in _NAMES)


def _values(ceiling: Ceiling, bucket: _Bucket, now: float) -> tuple[int, int, int]:
    full_at = now + (ceiling.burst - bucket.tokens) / ceiling.rate
    return ceiling.per_minute, math.floor(bucket.tokens), math.ceil(full_at)


def _headers(ceiling: Ceiling, bucket: _Bucket, now: float) -> dict[str, str]:
    return {
        name: str(value) for name, value in zip(_NAMES, _values(ceiling, bucket, now), strict=True)
    }


def ceiling_for(tier: str) -> Ceiling | None:
    """A tier's ceiling; None for "off"."""
    return next((ceiling for name, ceiling in CEILINGS.items() if name == tier), None)
