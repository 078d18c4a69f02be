"""The one clock every time-dependent part of the sandbox reads.

Token lifetimes, timestamps, idempotency windows and retry schedules all ask the clock, never
``time.time()``, so a test can run a 24-hour schedule in milliseconds with a
:class:`VirtualClock`. While a server runs, its webhook dispatcher drives every move of a
virtual clock the way a simulation clock moves: from one due time to the next, standing at
each until the attempts made there have an outcome, so an attempt is never signed with a
time the clock has already left.

A process that is not the sandbox follows its clock through the ``X-Sandbox-Time`` header
(unix seconds with a fraction) on every response and every webhook delivery, or through
``GET /_sandbox/clock``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol

TIME_HEADER = "X-Sandbox-Time"
MAX_TIME = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last second a timestamp renders


class Clock(Protocol):
    virtual: bool

    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


def checked(value: object, name: str = "seconds") -> float:
    """``value`` as a number of seconds a clock can show or move by, else a ValueError that
    names ``name``: NaN, infinities, negatives and anything past year 9999 are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds")
    if not 0 <= value <= MAX_TIME:  # False for NaN too; exact for huge integers
        raise ValueError(
            f"{name} must be a finite number from 0 to {MAX_TIME:.0f} (9999-12-31T23:59:59Z)"
        )
    return float(value)


def stamp(now: float) -> str:
    """``now`` as ``X-Sandbox-Time`` states it: unix seconds with six decimals."""
    return f"{now:.6f}"


def time_header(now: float) -> tuple[bytes, bytes]:
    """The ``X-Sandbox-Time`` header as an ASGI pair."""
    return (_TIME_NAME, b"%.6f" % now)


_TIME_NAME = TIME_HEADER.lower().encode()


class SystemClock:
    """Real time."""

    virtual = False

    def now(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that only moves when told to: frozen at ``start`` until advanced or set."""

    virtual = True

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else checked(start, "start")
        self._lock = threading.Lock()
        self._driver: Callable[[float], None] | None = None

    def now(self) -> float:
        return self._now

    def drive(self, driver: Callable[[float], None] | None) -> None:
        """Hand every move to ``driver(target)``, which steps the clock there through what
        falls due (a running server's dispatcher); None jumps straight to the target."""
        self._driver = driver

    def target_after(self, seconds: object) -> float:
        """The time ``seconds`` from now, checked."""
        target = self._now + checked(seconds)
        if target > MAX_TIME:
            raise ValueError("seconds would move the clock past 9999-12-31T23:59:59Z")
        return target

    def target_at(self, timestamp: object) -> float:
        """``timestamp``, checked to be a time this clock may move to."""
        target = checked(timestamp, "now")
        if target < self._now:
            raise ValueError("a virtual clock never moves backwards")
        return target

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds``; returns the new time once nothing that fell due on
        the way is still in flight."""
        return self._go(self.target_after(seconds))

    def set(self, timestamp: float) -> float:
        """Move forward to ``timestamp``, the way :meth:`advance` does."""
        return self._go(self.target_at(timestamp))

    def move_to(self, timestamp: float) -> None:
        """Jump to ``timestamp`` at once (one step of a driver); never backwards."""
        with self._lock:
            self._now = max(self._now, timestamp)

    def _go(self, target: float) -> float:
        driver = self._driver
        if driver is None:
            self.move_to(target)
        else:
            driver(target)
        return self._now


def make_clock(kind: str) -> Clock:
    if kind == "virtual":
        return VirtualClock()
    if kind == "system":
        return SystemClock()
    raise ValueError(f"unknown clock {kind!r}: use 'system' or 'virtual'")


@lru_cache(maxsize=4096)
def iso(timestamp: float, style: str = "iso") -> str:
    """Render a timestamp as CHeKT does: ``2025-01-01T00:00:00.000Z`` (or the space style).

    Cached: list responses render the same stored timestamps over and over. At most 4,096
    (about 1 MB): every new event brings new timestamps, and 65,536 of them (17 MB) took a
    long-running server's memory up for its first quarter of an hour (``make soak``)."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    if style == "space":
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
