"""What the soak watches (``bench/soak.py``): the record of every delivery, read as it
grows, and the server's samples (memory, descriptors, journal, store)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from figures import attempts_since, percentile, rss_mb
from run import get_json
from soak_load import Load

SAMPLE_S = 10.0  # seconds between samples


# ---- what the record says ---------------------------------------------------------------------


@dataclass
class Record:
    """Every delivery's latest attempt, read from ``GET /_sandbox/deliveries`` as it grows."""

    port: int
    since: int = 0
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)  # delivery id → attempt
    events: dict[str, list[str]] = field(default_factory=dict)  # event id → its deliveries
    outcomes: dict[str, int] = field(default_factory=dict)  # attempts by outcome

    def pull(self) -> None:
        for row in attempts_since(self.port, self.since):
            self.since = max(self.since, int(row["seq"]))
            self.outcomes[row["outcome"]] = self.outcomes.get(row["outcome"], 0) + 1
            delivery = row["delivery_id"]
            if delivery not in self.latest:
                self.events.setdefault(row["event_id"], []).append(delivery)
            self.latest[delivery] = row

    def pending(self) -> int:
        """Deliveries whose latest attempt failed and whose next one is scheduled."""
        return sum(1 for row in self.latest.values() if row["next_at"] is not None)

    def state(self, event_id: str) -> str:
        """``delivered``, ``scheduled`` (a next attempt is set), ``untried`` or ``lost``."""
        rows = [self.latest[d] for d in self.events.get(event_id, [])]
        if not rows:
            return "untried"
        if all(r["outcome"] == "delivered" for r in rows):
            return "delivered"
        if all(r["outcome"] == "delivered" or r["next_at"] is not None for r in rows):
            return "scheduled"
        return "lost"

    def states(self, event_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for event_id in event_ids:
            state = self.state(event_id)
            found[state] = found.get(state, 0) + 1
        return found


# ---- samples ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the load started
    rss_mb: float
    fds: int
    spill_fds: int  # of fds: the journal's files
    outbound: int  # of fds: connections to the receiver
    sockets: int  # of fds: the other sockets (listeners, the soak's connections)
    others: tuple[str, ...]  # what the fds that are neither are (``Descriptors.others``)
    journal_entries: int
    journal_mb: float
    journal_evicted: int  # > 0 once the journal is at its bound
    store_mb: float
    deliveries: int
    pending: int
    emitted: int
    attempts_ok: int
    attempts_failed: int
    api_requests: int
    api_5xx: int
    emit_p99_ms: float  # of the emit calls since the sample before


@dataclass(frozen=True)
class Descriptors:
    """The server's open descriptors at one moment."""

    count: int
    spill: int  # the journal's spill files: unlinked temporary files, as many as its byte
    # bound needs (they come and go as it fills)
    outbound: int  # connections to the receiver
    sockets: int  # the other sockets
    others: tuple[str, ...]  # what the rest are: paths, or a kind such as ``pipe``


def open_fds(pid: int, receiver: int) -> Descriptors:
    """The server's open descriptors; ``receiver``: the port its webhooks go to."""
    spill, sockets, others = 0, set(), []
    names = os.listdir(f"/proc/{pid}/fd")
    for name in names:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            if target.startswith("socket:["):
                sockets.add(target[len("socket:[") : -1])
            elif target.endswith(" (deleted)"):
                spill += 1
            else:  # ``pipe:[123]`` → ``pipe``: the inode says nothing across samples
                others.append(target.split(":[", 1)[0])
    outbound = len(sockets & connected_to(pid, receiver))
    return Descriptors(len(names), spill, outbound, len(sockets) - outbound, tuple(sorted(others)))


def connected_to(pid: int, port: int) -> set[str]:
    """Inodes of the process's TCP sockets whose remote end is ``port`` on loopback."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def store_mb(db: Path) -> float:
    """The store's files on disk: the database and its write-ahead log."""
    files = [db, db.with_name(db.name + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


def sample(
    at: float, pid: int, port: int, receiver: int, db: Path, record: Record, load: Load, calls: int
) -> Sample:
    """The server's state now; ``calls``: how many emit calls the sample before had seen.
    Memory and descriptors first, before our own reads make the server answer."""
    rss, fds = rss_mb(pid), open_fds(pid, receiver)
    record.pull()
    durations = load.emit_ms[calls:]
    journal = get_json(port, "/_sandbox/journal")
    delivered = record.outcomes.get("delivered", 0)
    return Sample(
        at=at,
        rss_mb=rss,
        fds=fds.count,
        spill_fds=fds.spill,
        outbound=fds.outbound,
        sockets=fds.sockets,
        others=fds.others,
        journal_entries=int(journal["entries"]),
        journal_mb=int(journal["bytes"]) / 1e6,
        journal_evicted=int(journal["evicted"]),
        store_mb=store_mb(db),
        deliveries=len(record.latest),
        pending=record.pending(),
        emitted=len(load.emitted),
        attempts_ok=delivered,
        attempts_failed=sum(record.outcomes.values()) - delivered,
        api_requests=load.api_requests,
        api_5xx=load.api_5xx,
        emit_p99_ms=percentile(durations, 0.99) if durations else 0.0,
    )


def minute(at: float) -> str:
    return f"{at / 60:.0f}" if at % 60 < 1e-6 else f"{at / 60:.2f}".rstrip("0")


def progress(s: Sample, minutes: float) -> str:
    return (
        f"  min {minute(s.at)}/{minutes:g}: RSS {s.rss_mb:.1f} MB, {s.fds} fds "
        f"({s.outbound} to the receiver, {s.spill_fds} journal files), journal "
        f"{s.journal_entries:,} ({s.journal_mb:.1f} MB), outbox {s.deliveries:,} "
        f"({s.pending:,} pending), emitted {s.emitted:,}, attempts {s.attempts_ok:,} ok / "
        f"{s.attempts_failed:,} failed (emit p99 {s.emit_p99_ms:.0f} ms), API "
        f"{s.api_requests:,} ({s.api_5xx} 5xx)"
    )


@dataclass
class Outcome:
    samples: list[Sample]
    baseline: Sample
    states: dict[str, int]
    load: Load
    receiver: dict[str, int]
    delivered_events: int  # events whose every delivery has a delivered attempt
    journal_5xx: int
    log_errors: list[str]
    minutes: float
