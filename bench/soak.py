"""``make soak``: a dev server under days-like load, watched for leaks.

A real ``chekt-sandbox serve`` (a file store, the system clock, default journal bounds,
``--callback`` to a receiver) gets, for ``--minutes`` (default 30):

- a random event stream through ``POST /_sandbox/events`` (``{"random": 1, "seed": …}``:
  random types across the seeded sites, as ``chekt-sandbox replay`` random steps draw them),
  paced on wall time at 50 events/s;
- a receiver (aiohttp, this file run with ``--receiver``) that fails 30 % of attempts at
  random (20 % answered 500, 10 % dropped without an answer) and answers 200 otherwise;
- a steady Partner API load of 20 GETs/s (lists and details of the Partner API with the API
  key and with an OAuth token, the ``/v1`` alarms and events with an Apps key, the dealer
  API's sites).

Every 10 s it samples the server's RSS, open descriptors, journal size, the store's files and
what the record says of every delivery (``GET /_sandbox/deliveries``, read incrementally); it
prints a line each minute. Targets: RSS growth ≤ 10 MB from the baseline (minute 5, or a
sixth of a shorter run) to the end, no descriptor growth, every emitted event delivered or
still scheduled (the 24 h retry schedule does not finish on the system clock, so an event
whose latest attempt failed counts when its next attempt is set), and no 5xx. The report is
written to ``bench/soak.md``. Exit status: 0 all PASS, 1 a target missed, 2 the soak failed.

Usage: ``.venv/bin/python bench/soak.py [--minutes N]``
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from figures import (  # bench/figures.py: sys.path[0] is bench/ when run as a script
    LOAD_CORE,
    SERVER_CORE,
    Figure,
    attempts_since,
    checked,
    guarded,
    judged,
    markdown_table,
    percentile,
    pinned,
    rss_mb,
    start_receiver,
    start_sandbox,
    text_table,
)
from run import (
    BIN,
    HOST,
    ROOT,
    BenchError,
    access_token,
    apps_key,
    child_env,
    get_json,
    machine,
    sandbox_credentials,
)

BENCH_DIR = Path(__file__).resolve().parent
EMIT_RATE = 50.0  # events per second
API_RATE = 20.0  # Partner API requests per second
RATE_SHARE = 0.95  # of EMIT_RATE the stream must reach: a slower server paces it (lags)
FAIL_SHARE = 0.30  # of the receiver's answers: 500 or no answer at all
DROP_SHARE = 0.10  # ... of which this share of all attempts is a dropped connection
SAMPLE_S = 10.0
BASELINE_S = 300.0  # RSS growth is measured from here (or a sixth of a shorter run)
RSS_GROWTH_MB = 10.0
DRAIN_S = 30.0  # after the load stops: time for the last first attempts to be recorded
CONCURRENCY = 10  # the default webhook concurrency: the most connections to the receiver
# the server's other sockets: its two listeners (API, bridges), the event loop's socket pair
# (an idle server holds these 4) and the soak's connections (the emitter's, the API load's, a
# sample's read, a token request)
OTHER_SOCKETS = 4 + 4
TOKEN_REFRESH_S = 600.0  # a fresh OAuth token this often (its lifetime is an hour)
SEED = 18
DEALER = "/partner/v1/dealers/1001"


# ---- the webhook receiver (this file, run as a child with --receiver PORT) -----------------


def receiver_main(port: int) -> None:
    """Fail FAIL_SHARE of attempts at random (a 500, or the connection closed unanswered),
    answer 200 otherwise; count what came and which events got their 200."""
    import asyncio

    from aiohttp import web

    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    rng = random.Random(SEED)
    counts = {"attempts": 0, "ok": 0, "failed": 0, "dropped": 0}
    delivered: set[str] = set()

    async def hook(request: web.Request) -> web.StreamResponse:
        await request.read()
        counts["attempts"] += 1
        roll = rng.random()
        if roll < DROP_SHARE:
            counts["dropped"] += 1
            if request.transport is not None:
                request.transport.abort()  # no answer at all: the sender sees a reset
            raise asyncio.CancelledError  # aiohttp ends the handler without writing
        if roll < FAIL_SHARE:
            counts["failed"] += 1
            return web.Response(status=500, text="soak: a failed attempt")
        counts["ok"] += 1
        delivered.add(request.headers.get("X-CHeKT-Event-Id", ""))
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({**counts, "events": len(delivered)})

    app = web.Application()
    app.add_routes([web.post("/hook", hook), web.get("/stats", stats)])
    web.run_app(app, host=HOST, port=port, access_log=None, print=None)


# ---- load: the event stream and the Partner API -----------------------------------------------


@dataclass
class Load:
    """What the load threads did; each counter is written by one thread only."""

    emitted: list[str] = field(default_factory=list)  # event ids, in order
    emit_errors: list[str] = field(default_factory=list)
    emit_lag_s: float = 0.0  # the most an emit call started behind its wall-time slot
    emit_ms: list[float] = field(default_factory=list)  # each emit call's duration
    api_requests: int = 0
    api_5xx: int = 0
    api_other: int = 0  # 4xx or a broken connection: a fault of the load, or a bug
    api_problems: list[str] = field(default_factory=list)  # the first few, for the report
    failure: list[BaseException] = field(default_factory=list)  # a thread that died

    def problem(self, text: str) -> None:
        if len(self.api_problems) < 10:
            self.api_problems.append(text)


def paced(
    stop: threading.Event, rate: float, step: Callable[[], None], late: Callable[[float], None]
) -> None:
    """Call ``step`` ``rate`` times a second on wall time until ``stop``; a slot missed is
    made up at once, and how late it started is reported to ``late``."""
    begin, k = time.monotonic(), 0
    while not stop.is_set():
        slot = begin + k / rate
        wait = slot - time.monotonic()
        if wait > 0 and stop.wait(wait):
            return
        late(max(0.0, time.monotonic() - slot))
        step()
        k += 1


class Connection:
    """One kept-alive loopback connection, opened again after the server closes it."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)

    def call(
        self, method: str, path: str, headers: dict[str, str], body: str | None = None
    ) -> tuple[int, bytes]:
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()


def emitter(port: int, load: Load, stop: threading.Event, seed: int) -> Callable[[], None]:
    """The event stream: one random event per call, its seed drawn from ``seed``."""
    # an odd multiplier mod 2^31 maps distinct counts to distinct, scattered seeds
    seeds = ((seed + 1_000_003 * n) % (1 << 31) for n in itertools.count())
    conn = Connection(port)
    headers = {"Content-Type": "application/json"}

    def late(seconds: float) -> None:
        load.emit_lag_s = max(load.emit_lag_s, seconds)

    def step() -> None:
        # never the same seed twice: a seed drawn again draws the same snapshot ids (a 409)
        body = json.dumps({"random": 1, "seed": next(seeds)})
        started = time.perf_counter()
        try:
            status, raw = conn.call("POST", "/_sandbox/events", headers, body)
        except (OSError, http.client.HTTPException) as exc:
            load.emit_errors.append(f"POST /_sandbox/events: {exc!r}")
            return
        if status != 202:
            load.emit_errors.append(f"POST /_sandbox/events answered {status}: {raw[:300]!r}")
            return
        load.emitted.extend(json.loads(raw)["event_ids"])
        load.emit_ms.append((time.perf_counter() - started) * 1000)

    def run() -> None:
        try:
            paced(stop, EMIT_RATE, step, late)
        except BaseException as exc:  # reported by the main thread, which stops the soak
            load.failure.append(exc)
        finally:
            conn.close()

    return run


@dataclass
class Credentials:
    """What the API load sends: the seeded API key, an OAuth token renewed every
    TOKEN_REFRESH_S, and an Apps key."""

    port: int
    api_key: str
    client_id: str
    secret: str
    apps_key: str
    token: str = ""
    token_at: float = float("-inf")

    def jwt(self) -> str:
        if time.monotonic() - self.token_at > TOKEN_REFRESH_S:
            self.token = access_token(self.port, self.client_id, self.secret)
            self.token_at = time.monotonic()
        return self.token


def api_calls(port: int, creds: Credentials) -> list[tuple[str, Callable[[], str]]]:
    """The GETs the API load cycles through, each with how to get its credential."""
    sites = get_json(port, f"{DEALER}/sites?limit=3", creds.api_key)
    if not sites:
        raise BenchError(f"GET {DEALER}/sites lists no site")
    calls: list[tuple[str, Callable[[], str]]] = [
        (f"{DEALER}/sites", lambda: creds.api_key),
        (f"{DEALER}/sites", creds.jwt),
        (f"{DEALER}/monitoring-stations", creds.jwt),
        ("/v1/alarms", lambda: creds.apps_key),
        ("/v1/events", lambda: creds.apps_key),
        ("/ext/v1/sites", lambda: creds.api_key),
    ]
    for site in sites:
        site_path = f"{DEALER}/sites/{site['site_id']}"
        calls += [(site_path, creds.jwt), (f"{site_path}/devices", lambda: creds.api_key)]
    return calls


def api_load(
    port: int, creds: Credentials, load: Load, stop: threading.Event
) -> Callable[[], None]:
    """The Partner API load: the ``api_calls`` in turn, API_RATE a second."""
    calls = api_calls(port, creds)
    conn = Connection(port)
    turn = itertools.count()

    def step() -> None:
        path, credential = calls[next(turn) % len(calls)]
        load.api_requests += 1
        try:
            status, raw = conn.call("GET", path, {"Authorization": f"Bearer {credential()}"})
        except (OSError, http.client.HTTPException) as exc:
            load.api_other += 1
            load.problem(f"GET {path}: {exc!r}")
            return
        if status >= 500:
            load.api_5xx += 1
            load.problem(f"GET {path} answered {status}: {raw[:300]!r}")
        elif not 200 <= status < 300:
            load.api_other += 1
            load.problem(f"GET {path} answered {status}: {raw[:300]!r}")

    def run() -> None:
        try:
            paced(stop, API_RATE, step, lambda _: None)
        except BaseException as exc:
            load.failure.append(exc)
        finally:
            conn.close()

    return run


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


def open_fds(pid: int, receiver: int) -> tuple[int, int, int, int]:
    """The server's open descriptors: all, the journal's spill files (unlinked temporary
    files, as many as its byte bound needs: they come and go as it fills), its connections
    to the receiver (port ``receiver``), and its other sockets."""
    spill, sockets = 0, set()
    names = os.listdir(f"/proc/{pid}/fd")
    for name in names:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            spill += target.endswith(" (deleted)")
            if target.startswith("socket:["):
                sockets.add(target[len("socket:[") : -1])
    outbound = len(sockets & connected_to(pid, receiver))
    return len(names), spill, outbound, len(sockets) - outbound


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
    rss, (fds, spill, outbound, sockets) = rss_mb(pid), open_fds(pid, receiver)
    record.pull()
    durations = load.emit_ms[calls:]
    journal = get_json(port, "/_sandbox/journal")
    delivered = record.outcomes.get("delivered", 0)
    return Sample(
        at=at,
        rss_mb=rss,
        fds=fds,
        spill_fds=spill,
        outbound=outbound,
        sockets=sockets,
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


# ---- the run ----------------------------------------------------------------------------------


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


def sample_times(minutes: float) -> list[float]:
    """Every SAMPLE_S up to the end, with the baseline among them."""
    end = minutes * 60
    times = {round(k * SAMPLE_S, 6) for k in range(int(end // SAMPLE_S) + 1)}
    return sorted(times | {baseline_s(minutes), end})


def baseline_s(minutes: float) -> float:
    return min(BASELINE_S, minutes * 60 / 6)


def server_errors(log: Path) -> list[str]:
    """Lines of the server's output that report an error (a traceback, an ASGI exception)."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    marks = ("Traceback", "Exception in", "ERROR")
    return [line for line in text.splitlines() if any(m in line for m in marks)]


def server_log_tail(log: Path, lines: int = 40) -> str:
    """The end of the server's output, from its first error on (or its last lines)."""
    text = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
    first = next((i for i, line in enumerate(text) if "Traceback" in line), len(text) - lines)
    return "\n".join(text[max(first, 0) :][:lines])


def soak(minutes: float) -> Outcome:
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chekt-soak-")))
        stack.enter_context(pinned({LOAD_CORE}))
        receiver = start_receiver(stack, tmp, __file__)  # the failing one
        db = tmp / "sandbox.db"
        flags = ["--db", str(db), "--callback", f"http://{HOST}:{receiver}/hook"]
        port, proc = start_sandbox(stack, tmp, flags, child_env())
        api_key, client_id, secret = sandbox_credentials(port)
        creds = Credentials(port, api_key, client_id, secret, apps_key(port))
        record, load, stop = Record(port), Load(), threading.Event()
        threads = [
            threading.Thread(target=emitter(port, load, stop, SEED), name="emitter"),
            threading.Thread(target=api_load(port, creds, load, stop), name="api-load"),
        ]
        print(
            f"Soaking the sandbox (port {port}, pid {proc.pid}) for {minutes:g} min: "
            f"{EMIT_RATE:.0f} events/s, {API_RATE:.0f} API requests/s, the receiver failing "
            f"{FAIL_SHARE * 100:.0f} %",
            flush=True,
        )
        samples: list[Sample] = []
        seen = 0
        began = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            for at in sample_times(minutes):
                if stop.wait(max(0.0, began + at - time.monotonic())):
                    break
                if load.failure:
                    raise BenchError(f"a load thread failed: {load.failure[0]!r}")
                if load.emit_errors:
                    raise BenchError(f"the event stream failed: {load.emit_errors[0]}")
                if proc.poll() is not None:
                    raise BenchError(f"the sandbox exited with status {proc.returncode}")
                calls, seen = seen, len(load.emit_ms)
                samples.append(sample(at, proc.pid, port, receiver, db, record, load, calls))
                if at % 60 < 1e-6 or at == minutes * 60:
                    print(progress(samples[-1], minutes), flush=True)
        except BenchError as exc:  # the server's own account of it goes with its files
            errors = server_log_tail(tmp / f"sandbox-{port}.log")
            raise BenchError(f"{exc}\n{errors}" if errors else str(exc)) from None
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        states = drain(record, load.emitted, receiver)
        baseline = next(s for s in samples if s.at == baseline_s(minutes))
        failed_5xx = get_json(port, "/_sandbox/requests?status=5xx")
        receiver_counts = get_json(receiver, "/stats")
        log = tmp / f"sandbox-{port}.log"
        return Outcome(
            samples=samples,
            baseline=baseline,
            states=states,
            load=load,
            receiver=receiver_counts,
            delivered_events=states.get("delivered", 0),
            journal_5xx=len(failed_5xx),
            log_errors=server_errors(log),
            minutes=minutes,
        )


def drain(record: Record, emitted: Sequence[str], receiver: int) -> dict[str, int]:
    """Once the load stops, wait (up to DRAIN_S) until every event has had an attempt and
    every 200 the receiver gave is in the record (attempts are recorded in batches)."""
    deadline = time.monotonic() + DRAIN_S
    while True:
        record.pull()
        states = record.states(emitted)
        answered = get_json(receiver, "/stats")["events"]
        settled = not states.get("untried") and answered == states.get("delivered", 0)
        if settled or time.monotonic() > deadline:
            return states
        time.sleep(1.0)


# ---- verdicts and the report ------------------------------------------------------------------


def files(s: Sample) -> int:
    """Descriptors that should stay as they are: all but sockets and the journal's files."""
    return s.fds - s.outbound - s.sockets - s.spill_fds


def fd_peaks(outcome: Outcome) -> tuple[int, int]:
    """The most ``files`` open up to the baseline, and after it."""
    base = outcome.baseline.at
    before = max(files(s) for s in outcome.samples if s.at <= base)
    after = max((files(s) for s in outcome.samples if s.at > base), default=before)
    return before, after


def figures_of(outcome: Outcome) -> list[Figure]:
    first, base, end = outcome.samples[0], outcome.baseline, outcome.samples[-1]
    growth = end.rss_mb - base.rss_mb
    fds_before, fds_after = fd_peaks(outcome)
    load, states, received = outcome.load, outcome.states, outcome.receiver
    emitted = len(load.emitted)
    lost = emitted - states.get("delivered", 0) - states.get("scheduled", 0)
    seconds = end.at or 1.0
    filling = "" if base.journal_evicted else " (still filling up to its bound)"
    return [
        Figure("RSS at the start of the load", f"{first.rss_mb:.1f} MB"),
        Figure(
            "journal at the baseline",
            f"{base.journal_entries:,} entries, {base.journal_mb:.1f} MB{filling}",
        ),
        judged(
            f"RSS growth, minute {minute(base.at)} → {minute(end.at)}",
            f"{growth:+.1f} MB ({base.rss_mb:.1f} → {end.rss_mb:.1f} MB)",
            f"≤ {RSS_GROWTH_MB:.0f} MB",
            growth <= RSS_GROWTH_MB,
        ),
        judged(
            "descriptors but sockets, peak up to → after the baseline",
            f"{fds_before} → {fds_after} (end {files(end)}; and the journal's files: at "
            f"most {max(s.spill_fds for s in outcome.samples)})",
            "no growth",
            fds_after <= fds_before,
        ),
        judged(
            "connections to the receiver, peak",
            f"{max(s.outbound for s in outcome.samples)} (end {end.outbound})",
            f"≤ {CONCURRENCY} (webhook concurrency)",
            max(s.outbound for s in outcome.samples) <= CONCURRENCY,
        ),
        judged(
            "other sockets, peak",
            f"{max(s.sockets for s in outcome.samples)} (end {end.sockets})",
            f"≤ {OTHER_SOCKETS} (the server's 4, the soak's)",
            max(s.sockets for s in outcome.samples) <= OTHER_SOCKETS,
        ),
        judged(
            "events delivered or still scheduled",
            f"{states.get('delivered', 0):,} delivered + {states.get('scheduled', 0):,} "
            f"scheduled of {emitted:,}",
            "none lost",
            lost == 0,
        ),
        judged(
            "5xx answers",
            f"{load.api_5xx} of {load.api_requests:,} API calls; {outcome.journal_5xx} in the "
            "journal",
            "0",
            load.api_5xx == 0 and outcome.journal_5xx == 0,
        ),
        judged(
            "other API failures (4xx, broken connections)",
            str(load.api_other),
            "0",
            load.api_other == 0,
        ),
        judged(
            "errors in the server's log",
            str(len(outcome.log_errors)),
            "0",
            not outcome.log_errors,
        ),
        judged(
            "receiver's 200s = delivered events in the record",
            f"{received['events']:,} = {outcome.delivered_events:,}",
            "equal",
            received["events"] == outcome.delivered_events,
        ),
        judged(
            "events emitted",
            f"{emitted:,} ({emitted / seconds:.1f}/s, worst lag {load.emit_lag_s * 1000:.0f} ms)",
            f"≥ {RATE_SHARE * 100:.0f} % of {EMIT_RATE:.0f}/s",
            emitted / seconds >= RATE_SHARE * EMIT_RATE,
        ),
        Figure(
            "receiver: attempts (ok / 500 / dropped)",
            f"{received['attempts']:,} ({received['ok']:,} / {received['failed']:,} / "
            f"{received['dropped']:,})",
        ),
        Figure("API requests", f"{load.api_requests:,} ({load.api_requests / seconds:.1f}/s)"),
        Figure(
            "journal at the end",
            f"{end.journal_entries:,} entries, {end.journal_mb:.1f} MB",
        ),
        Figure("store on disk at the end", f"{end.store_mb:.1f} MB"),
    ]


SERIES = (
    "| minute | RSS MB | fds (to receiver / journal) | journal entries | outbox rows / pending | "
    "events emitted | attempts ok / failed | emit p99 ms | API requests | 5xx |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
)


def series(outcome: Outcome) -> list[str]:
    """One row a minute, and the baseline's."""
    rows = list(SERIES)
    for s in outcome.samples:
        mark = " (baseline)" if s is outcome.baseline else ""
        if not mark and s.at % 60 > 1e-6 and s is not outcome.samples[-1]:
            continue
        rows.append(
            f"| {minute(s.at)}{mark} | {s.rss_mb:.1f} | {s.fds} ({s.outbound} / {s.spill_fds}) | "
            f"{s.journal_entries:,} | "
            f"{s.deliveries:,} / {s.pending:,} | {s.emitted:,} | {s.attempts_ok:,} / "
            f"{s.attempts_failed:,} | {s.emit_p99_ms:.0f} | {s.api_requests:,} | {s.api_5xx} |"
        )
    return rows


def conditions(outcome: Outcome) -> list[str]:
    base = minute(outcome.baseline.at)
    return [
        f"- `chekt-sandbox serve --db <tmp>/sandbox.db --callback http://{HOST}:<port>/hook` "
        f"(system clock, default journal bounds, profile, concurrency and timeout) pinned to "
        f"core {SERVER_CORE}; the receiver (aiohttp) and the load on core {LOAD_CORE}.",
        f'- Events: `POST /_sandbox/events` with `{{"random": 1, "seed": …}}` at '
        f"{EMIT_RATE:.0f}/s on wall time, one kept-alive connection. The receiver answers 500 "
        f"to {(FAIL_SHARE - DROP_SHARE) * 100:.0f} % of attempts, closes the connection "
        f"unanswered on {DROP_SHARE * 100:.0f} %, 200 otherwise (seeded random).",
        f"- API: {API_RATE:.0f} GETs/s in turn over the Partner API's sites, a site, its "
        "devices and the monitoring stations (seeded API key, and a client-credentials token "
        f"renewed every {TOKEN_REFRESH_S / 60:.0f} min), `/v1/alarms` and `/v1/events` "
        "(an Apps key with `events:read`) and `/ext/v1/sites` (the API key).",
        f"- Sampled every {SAMPLE_S:.0f} s: VmRSS (MB = 10^6 bytes), `/proc/<pid>/fd`, "
        "`GET /_sandbox/journal`, the store's files, and every attempt from "
        "`GET /_sandbox/deliveries` (outbox rows: deliveries attempted; pending: their latest "
        "attempt failed and the next is scheduled).",
        f"- RSS growth from minute {base} (the baseline: minute 5, or a sixth of a shorter "
        "run) to the end. Descriptors: the most open after the baseline against the most "
        "open up to it, leaving out sockets (connections to the receiver come and go: "
        f"their peak must stay ≤ {CONCURRENCY}, the webhook concurrency, from "
        f"`/proc/<pid>/net/tcp`; the others ≤ {OTHER_SOCKETS}: two listeners, the event "
        "loop's socket pair and the soak's 4 connections at most) and the journal's spill files "
        "(unlinked temporary files, opened as it fills up to its byte bound and closed as "
        "entries are evicted; their peak is shown).",
        "- An event is delivered when its delivery has a delivered attempt, scheduled when "
        "its latest attempt failed and the next is set (the 24 h retry schedule runs on the "
        "system clock); anything else is lost. 5xx: the API load's answers and the journal's "
        "`status=5xx` at the end. Emit p99: of the emit calls in the 10 s before a sample.",
    ]


def write_report(figures: Sequence[Figure], outcome: Outcome, load: float | None) -> Path:
    verdict = "every target met" if all(f.verdict != "FAIL" for f in figures) else "a target missed"
    lines = [
        f"# `make soak` report ({outcome.minutes:g} min; {verdict})",
        "",
        markdown_table(figures),
        "",
        *(
            ["API problems (first few):", "", *(f"- `{p}`" for p in outcome.load.api_problems), ""]
            if outcome.load.api_problems
            else []
        ),
        *(
            [
                "Server log errors (first few):",
                "",
                *(f"- `{e}`" for e in outcome.log_errors[:10]),
                "",
            ]
            if outcome.log_errors
            else []
        ),
        "## Over time",
        "",
        *series(outcome),
        "",
        "## How",
        "",
        *conditions(outcome),
        "",
        "## Machine",
        "",
        *machine(load),
        f"- Webhook client and receiver: aiohttp {metadata.version('aiohttp')}",
        "",
    ]
    path = BENCH_DIR / "soak.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# ---- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=30.0, help="how long the load runs [default: 30]"
    )
    parser.add_argument("--receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.minutes > 0:
        parser.error("--minutes must be a positive number")
    return args


def preflight() -> None:
    """Fail early and clearly on a machine that cannot run the soak as specified."""
    if not {SERVER_CORE, LOAD_CORE} <= os.sched_getaffinity(0):
        raise BenchError(f"needs cores {SERVER_CORE} and {LOAD_CORE}")
    if not (BIN / "chekt-sandbox").exists():
        raise BenchError(f"{BIN / 'chekt-sandbox'} is missing; run `make install`")
    if not Path("/proc/self/status").exists():
        raise BenchError("needs /proc to read the server's RSS and descriptors")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.receiver is not None:
        receiver_main(args.receiver)
        return 0
    ran = guarded("soak", lambda: (checked(preflight), soak(args.minutes)))
    if isinstance(ran, int):
        return ran
    load, outcome = ran
    figures = figures_of(outcome)
    print()
    print(text_table(figures))
    for problem in outcome.load.api_problems:
        print(f"  API: {problem}")
    for line in outcome.log_errors[:10]:
        print(f"  server log: {line}")
    path = write_report(figures, outcome, load)
    print(f"\nWritten to {path.relative_to(ROOT)}")
    return 0 if all(f.verdict != "FAIL" for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
