"""The one clock every time-dependent part of the sandbox reads.

Token lifetimes, timestamps, idempotency windows and (later) retry schedules all ask the
clock, never ``time.time()``, so a test can run a 24-hour schedule in milliseconds with a
:class:`VirtualClock`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol


class Clock(Protocol):
    virtual: bool

    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    """Real time."""

    virtual = False

    def now(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that only moves when told to: frozen at ``start`` until advanced or set."""

    virtual = True

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        return self._now

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from the thread that moved the clock) after every move."""
        self._listeners.append(listener)

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock cannot be advanced by a negative amount")
        with self._lock:
            self._now += seconds
            now = self._now
        self._notify()
        return now

    def set(self, timestamp: float) -> float:
        with self._lock:
            if timestamp < self._now:
                raise ValueError("a virtual clock never moves backwards")
            self._now = timestamp
        self._notify()
        return timestamp

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()


def make_clock(kind: str) -> Clock:
    if kind == "virtual":
        return VirtualClock()
    if kind == "system":
        return SystemClock()
    raise ValueError(f"unknown clock {kind!r}: use 'system' or 'virtual'")


@lru_cache(maxsize=65536)
def iso(timestamp: float, style: str = "iso") -> str:
    """Render a timestamp as CHeKT does: ``2025-01-01T00:00:00.000Z`` (or the space style).

    Cached: list responses render the same stored timestamps over and over."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    if style == "space":
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
