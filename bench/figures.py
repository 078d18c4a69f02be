"""``bench/figures.py``: the sandbox's headline figures, each measured against its target.

1. Webhook deliveries/s with signing, the outbox and the journal on (≥ 2,500/s): the sandbox
   (``serve`` on a file store, system clock) with ``--callback`` to a minimal aiohttp
   receiver; N random events are emitted at once and timed until the receiver has N. The
   sandbox's CPU seconds per delivery are shown too: unlike the rate, they barely move when
   other work shares the machine.
2. Latency from the emitting API call to the first attempt (p99 ≤ 10 ms): single
   ``alarm.created`` events at ~50/s, timed from just before each emit request to the
   receiver's arrival time for that event id.
3. Fixture start to first answered request (≤ 100 ms): ``Sandbox().start()`` plus the first
   ``GET /.well-known/jwks.json`` (which makes the sandbox's RSA signing key), in this
   process, after ``import sandbox`` (timed apart) and one untimed start (the first start in
   a process also draws the seeded world, once per process: shown on its own row).
4. Per-test reset (≤ 5 ms): ``sandbox.reset()`` on the default world.
5. RSS of ``serve --db :memory:`` right after start (≤ 50 MB: ready on ``/_sandbox/health``,
   which needs no signing key) and after 100,000 recorded 1 KiB requests (≤ 120 MB): wrk
   POSTs that fail validation, all kept in the journal, then the server's VmRSS.
6. ``import sandbox, sandbox.pytest_plugin`` (≤ 150 ms): what the package adds to every
   pytest run of a project that installs it. Wall time of a fresh ``python -c`` importing
   pytest and then them, minus that of one importing pytest alone, median of pairs; the same
   from a bare interpreter (pytest included) and ``-X importtime`` shares are shown apart.
7. The 24 h retry schedule of 1,000 failing events on the virtual clock (< 5 s wall): a
   receiver that answers 500 to everything, one clock advance through the whole window;
   every event must get its eight attempts on the contract's schedule (the last one given
   up as ``disabled`` once 24 h of failure disabled the subscription).

Servers are pinned to core 0, the receiver and wrk to core 1; all load is loopback and
bounded in count and time; every child process is stopped on exit, errors and Ctrl-C. The
table is printed and appended to ``bench/figures.md``. Exit status: 0 all PASS, 1 a target
missed, 2 the benchmark failed.

Usage: ``.venv/bin/python bench/figures.py [--quick] [--only STAGE ...]`` (stages:
``webhooks`` for 1-2, ``fixture`` 3-4, ``memory`` 5, ``import`` 6, ``retry`` 7).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from run import (  # bench/run.py: sys.path[0] is bench/ when run as a script
    BIN,
    HOST,
    ROOT,
    BenchError,
    _terminate,
    background_load,
    child_env,
    cpu_seconds,
    free_port,
    get_json,
    machine,
    request,
    sandbox_credentials,
    spawned,
    wait_ready,
)

BENCH_DIR = Path(__file__).resolve().parent
T = TypeVar("T")

SERVER_CORE = 0  # the sandbox
LOAD_CORE = 1  # the receiver, wrk and this process while they run
SITES_PATH = "/partner/v1/dealers/1001/sites"
JWKS_PATH = "/.well-known/jwks.json"

DELIVERIES_TARGET = 2_500.0  # per second
LATENCY_TARGET_MS = 10.0  # p99
START_TARGET_MS = 100.0
RESET_TARGET_MS = 5.0
RSS_START_TARGET_MB = 50.0  # 10^6 bytes
RSS_TARGET_MB = 120.0
IMPORT_TARGET_MS = 150.0
IMPORT_RUNS = 7
HEALTH_PATH = "/_sandbox/health"
EMIT_RATE = 50.0  # events per second for the latency figure
RETRY_TARGET_S = 5.0  # wall seconds for the 24 h schedule of RETRY_EVENTS failing events
RETRY_EVENTS = 1_000
RETRY_ATTEMPTS = 8  # the contract's schedule: 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 24 h
RETRY_WINDOW = 86_400.0
RETRY_LIMIT_S = 600  # bounds a stalled advance
WARMUP_EVENTS = 20  # open the dispatcher's connections before the throughput is timed
START_RUNS = 5
RESET_RUNS = 50
RESET_WARMUP = 3
JOURNAL_REQUESTS = 100_000
BODY_SIZE = 1024
WRK_CONNECTIONS = 16
WRK_LIMIT_S = 300  # wrk is stopped at JOURNAL_REQUESTS; this only bounds a stalled run
BODY_HEAD, BODY_END, COUNTER_DIGITS = '{"padding": "', '"}', 10
# the stages, by the names ``--only`` knows them by
STAGES = ("webhooks", "fixture", "memory", "import", "retry")
JOURNAL_BYTES = 1 << 30  # the byte cap (default 50 MiB) must not evict: we want all kept


@dataclass(frozen=True)
class Figure:
    """One row: ``verdict`` is empty for context rows that have no target of their own."""

    name: str
    value: str
    target: str = ""
    verdict: str = ""


def judged(name: str, value: str, target: str, ok: bool) -> Figure:
    return Figure(name, value, target, "PASS" if ok else "FAIL")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile: a value that was actually observed, never interpolated."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# ---- the webhook receiver (this file, run as a child with --receiver PORT) -----------------


def receiver_main(port: int) -> None:
    """Answer 200 to ``POST /hook`` and keep only a count and each event's first arrival,
    so the receiver stays far cheaper than the sender it measures."""
    import asyncio

    from aiohttp import web

    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    arrivals: dict[str, float] = {}
    state = {"count": 0, "last": 0.0}

    async def fail(request: web.Request) -> web.Response:
        await request.read()
        state["failed"] = state.get("failed", 0) + 1
        return web.Response(status=500)

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        now = time.monotonic()  # CLOCK_MONOTONIC: comparable with the bench process's
        state["count"] += 1
        state["last"] = now
        arrivals.setdefault(request.headers.get("X-CHeKT-Event-Id", ""), now)
        return web.Response()

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({**state, "events": len(arrivals)})

    async def times(request: web.Request) -> web.Response:
        return web.json_response(arrivals)

    async def reset(request: web.Request) -> web.Response:
        arrivals.clear()
        state.update(count=0, last=0.0)
        return web.json_response(state)

    app = web.Application()
    app.add_routes(
        [
            web.post("/hook", hook),
            web.post("/fail", fail),
            web.get("/stats", stats),
            web.get("/arrivals", times),
            web.post("/reset", reset),
        ]
    )
    web.run_app(app, host=HOST, port=port, access_log=None, print=None)


# ---- child processes -------------------------------------------------------------------------


@contextlib.contextmanager
def pinned(cores: set[int]) -> Iterator[None]:
    """Keep this process off the server's core while it drives load, then restore."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def start_sandbox(
    stack: contextlib.ExitStack,
    logs: Path,
    flags: Sequence[str],
    env: dict[str, str],
    ready: str = JWKS_PATH,
) -> tuple[int, subprocess.Popen[bytes]]:
    """``chekt-sandbox serve`` on core 0; its port and process once ``ready`` answers."""
    port = free_port()
    argv = [str(BIN / "chekt-sandbox"), "serve", "--port", str(port), *flags]
    log = logs / f"sandbox-{port}.log"
    proc = stack.enter_context(spawned(argv, log, env, SERVER_CORE))
    wait_ready(proc, port, ready, log, "the sandbox")
    return port, proc


def start_receiver(stack: contextlib.ExitStack, logs: Path, script: str = __file__) -> int:
    """The aiohttp receiver ``script --receiver PORT`` serves (this file's by default) on the
    load core; its port once it answers ``GET /stats``."""
    port = free_port()
    argv = [sys.executable, str(Path(script).resolve()), "--receiver", str(port)]
    log = logs / "receiver.log"
    proc = stack.enter_context(spawned(argv, log, child_env(), LOAD_CORE))
    wait_ready(proc, port, "/stats", log, "the receiver")
    return port


def post_json(port: int, path: str, body: Any) -> Any:
    """POST JSON that must answer 2xx with JSON."""
    headers = {"Content-Type": "application/json"}
    status, raw = request(port, "POST", path, headers=headers, body=json.dumps(body))
    if not 200 <= status < 300:
        raise BenchError(f"POST {path} on port {port} answered {status}: {raw[:500]!r}")
    return json.loads(raw) if raw else None


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll ``check`` until it holds or ``timeout`` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


# ---- 1 and 2: webhook deliveries -------------------------------------------------------------


def attempts_since(port: int, since: int, outcome: str | None = None) -> list[dict[str, Any]]:
    """Every recorded attempt after ``since_seq``, across the endpoint's 10,000-row pages."""
    rows: list[dict[str, Any]] = []
    while True:
        query = f"since_seq={since}" + (f"&outcome={outcome}" if outcome else "")
        page = get_json(port, f"/_sandbox/deliveries?{query}")
        rows += page
        if len(page) < 10_000:
            return rows
        since = page[-1]["seq"]


def last_seq(port: int) -> int:
    """The newest attempt's seq: later checks look only at what came after it."""
    rows = attempts_since(port, 0)
    return int(rows[-1]["seq"]) if rows else 0


def receiver_stats(port: int) -> dict[str, Any]:
    stats: dict[str, Any] = get_json(port, "/stats")
    return stats


def warm_up(sandbox: int, receiver: int) -> None:
    """A few deliveries first, so connection setup and lazy imports are not timed."""
    post_json(sandbox, "/_sandbox/events", {"random": WARMUP_EVENTS, "seed": 1})
    if not wait_for(lambda: receiver_stats(receiver)["count"] >= WARMUP_EVENTS, 30):
        raise BenchError(
            f"the receiver got {receiver_stats(receiver)['count']} of {WARMUP_EVENTS} warm-up "
            "deliveries within 30 s: is the --callback subscription delivering?"
        )
    time.sleep(0.2)  # let the last attempts be recorded
    post_json(receiver, "/reset", {})


def throughput(sandbox: int, pid: int, receiver: int, count: int) -> list[Figure]:
    """Emit ``count`` events at once; time from the emit call to the receiver's last arrival."""
    since = last_seq(sandbox)
    timeout = 30 + count / 15  # bounds a slow run; ~5 min for 5,000 at 15/s
    cpu0 = cpu_seconds(pid)
    started = time.monotonic()
    ids = post_json(sandbox, "/_sandbox/events", {"random": count, "seed": 7})["event_ids"]
    emitted, emit_cpu = time.monotonic(), cpu_seconds(pid) - cpu0
    complete = wait_for(lambda: receiver_stats(receiver)["count"] >= count, timeout, 0.02)
    stats = receiver_stats(receiver)
    finished = stats["last"] if complete else time.monotonic()
    spent = cpu_seconds(pid) - cpu0
    busy = spent / max(finished - started, 1e-9)
    received = min(int(stats["count"]), count)
    rate = received / (finished - started)
    wait_for(lambda: len(attempts_since(sandbox, since, "delivered")) >= received, 10, 0.2)
    delivered = attempts_since(sandbox, since, "delivered")
    other = len(attempts_since(sandbox, since)) - len(delivered)
    matched = set(ids) == {row["event_id"] for row in delivered}
    value = f"{rate:,.0f}/s" + ("" if complete else f" ({received:,}/{count:,} in {timeout:.0f} s)")
    return [
        judged(
            f"1. webhook deliveries/s ({count:,} events)",
            value,
            f"≥ {DELIVERIES_TARGET:,.0f}/s",
            complete and rate >= DELIVERIES_TARGET,
        ),
        Figure("   emit call for all events", ms(emitted - started)),
        Figure(
            "   sandbox CPU of the emit call, per event",
            f"{emit_cpu / count * 1e6:,.0f} µs ({emit_cpu / max(spent, 1e-9) * 100:.0f} % of all)",
        ),
        Figure("   sandbox CPU while delivering", f"{busy * 100:.0f} % of core {SERVER_CORE}"),
        Figure("   sandbox CPU per delivery", f"{spent / max(received, 1) * 1e6:,.0f} µs"),
        judged(
            "   delivered attempts recorded",
            f"{len(delivered):,} ({other} other)",
            f"= {count:,}, one per event",
            len(delivered) == count and matched and other == 0,
        ),
    ]


def emit_one(conn: http.client.HTTPConnection) -> str:
    """Emit one ``alarm.created`` on a kept-alive connection; its event id."""
    body = json.dumps({"type": "alarm.created"})
    conn.request("POST", "/_sandbox/events", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    raw = response.read()
    if response.status != 202:
        raise BenchError(f"POST /_sandbox/events answered {response.status}: {raw[:500]!r}")
    event_id: str = json.loads(raw)["event_ids"][0]
    return event_id


def latency(sandbox: int, receiver: int, seconds: float) -> list[Figure]:
    """Events at EMIT_RATE; each timed from just before its emit request to its arrival."""
    post_json(receiver, "/reset", {})
    sent: dict[str, float] = {}
    conn = http.client.HTTPConnection(HOST, sandbox, timeout=10)
    try:
        begin = time.monotonic()
        for k in range(round(seconds * EMIT_RATE)):
            time.sleep(max(0.0, begin + k / EMIT_RATE - time.monotonic()))
            before = time.monotonic()
            sent[emit_one(conn)] = before
    finally:
        conn.close()
    wait_for(lambda: receiver_stats(receiver)["events"] >= len(sent), 30, 0.05)
    arrivals = get_json(receiver, "/arrivals")
    lags = [arrivals[e] - t for e, t in sent.items() if e in arrivals]
    missing = len(sent) - len(lags)
    name = f"2. emit → first attempt ({len(sent)} events at {EMIT_RATE:.0f}/s)"
    if not lags:
        target = f"p99 ≤ {LATENCY_TARGET_MS:g} ms"
        return [judged(name, "no event arrived within 30 s", target, False)]
    p99 = percentile(lags, 0.99)
    note = f" ({missing} never arrived)" if missing else ""
    return [
        Figure("2. emit → first attempt, p50", ms(percentile(lags, 0.50))),
        judged(
            f"   p99 ({len(sent)} events at {EMIT_RATE:.0f}/s)",
            ms(p99) + note,
            f"≤ {LATENCY_TARGET_MS:g} ms",
            not missing and p99 * 1000 <= LATENCY_TARGET_MS,
        ),
        Figure("   max", ms(max(lags))),
    ]


def webhook_figures(count: int, seconds: float) -> list[Figure]:
    """Figures 1 and 2 on one sandbox (file store, system clock) and one receiver."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chekt-figures-")))
        stack.enter_context(pinned({LOAD_CORE}))
        receiver = start_receiver(stack, tmp)
        callback = f"http://{HOST}:{receiver}/hook"
        flags = ["--db", str(tmp / "sandbox.db"), "--clock", "system", "--callback", callback]
        sandbox, proc = start_sandbox(stack, tmp, flags, child_env())
        print(f"  1. {count:,} events at once to a receiver on core {LOAD_CORE} ...", flush=True)
        warm_up(sandbox, receiver)
        figures = throughput(sandbox, proc.pid, receiver, count)
        print(f"  2. single events at {EMIT_RATE:.0f}/s for {seconds:.0f} s ...", flush=True)
        return figures + latency(sandbox, receiver, seconds)


# ---- 6: the retry schedule on the virtual clock ----------------------------------------------


def post_slow(port: int, path: str, body: Any, timeout: float) -> tuple[int, bytes]:
    """A POST that may take long (a clock advance returns once every step is settled)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"}
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def schedule_kept(rows: Sequence[dict[str, Any]], ids: Sequence[str]) -> tuple[bool, str]:
    """Each event: attempts 1-7 failed on their schedule, then the last one, exactly 24 h
    after the first, failed or given up (``disabled``: the subscription was disabled by 24 h
    of failure), with nothing scheduled after it; and no attempt was ever sent early."""
    by_event: dict[str, list[dict[str, Any]]] = {event: [] for event in ids}
    for row in rows:
        by_event.setdefault(row["event_id"], []).append(row)
    bad = []
    for event, journal in by_event.items():
        journal.sort(key=lambda row: row["attempt"])
        numbers = [row["attempt"] for row in journal]
        outcomes = [row["outcome"] for row in journal]
        ok = (
            numbers == list(range(1, RETRY_ATTEMPTS + 1))
            and outcomes[:-1] == ["failed"] * (RETRY_ATTEMPTS - 1)
            and outcomes[-1] in ("failed", "disabled")
            and journal[-1]["scheduled_at"] == journal[0]["scheduled_at"] + RETRY_WINDOW
            and journal[-1]["next_at"] is None
            and all(row["sent_at"] >= row["scheduled_at"] for row in journal)
        )
        if not ok:
            bad.append(f"{event}: attempts {numbers}, outcomes {outcomes}")
    return not bad, "; ".join(bad[:3])


def retry_figures(count: int) -> list[Figure]:
    """Figure 7: ``count`` events to a receiver that always answers 500, on a virtual clock
    advanced through the whole 24 h schedule in one call; timed on the wall clock."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chekt-figures-")))
        stack.enter_context(pinned({LOAD_CORE}))
        receiver = start_receiver(stack, tmp)
        callback = f"http://{HOST}:{receiver}/fail"
        flags = ["--db", ":memory:", "--clock", "virtual", "--callback", callback]
        sandbox, proc = start_sandbox(stack, tmp, flags, child_env())
        print(f"  7. {count:,} events to a failing receiver, then 24 h on the clock ...")
        ids = post_json(sandbox, "/_sandbox/events", {"random": count, "seed": 11})["event_ids"]
        cpu0 = cpu_seconds(proc.pid)
        started = time.monotonic()
        status, raw = post_slow(
            sandbox, "/_sandbox/clock/advance", {"seconds": RETRY_WINDOW + 60}, RETRY_LIMIT_S
        )
        wall = time.monotonic() - started
        cpu = cpu_seconds(proc.pid) - cpu0
        if status != 200:
            raise BenchError(f"POST /_sandbox/clock/advance answered {status}: {raw[:300]!r}")
        rows = attempts_since(sandbox, 0)
        failed = receiver_stats(receiver).get("failed", 0)
    kept, problem = schedule_kept(rows, ids)
    return [
        judged(
            f"7. 24 h retry schedule, {count:,} failing events (virtual clock)",
            f"{wall:,.2f} s",
            f"< {RETRY_TARGET_S:g} s",
            kept and wall < RETRY_TARGET_S,
        ),
        Figure("   sandbox CPU per attempt", f"{cpu / max(len(rows), 1) * 1e6:,.0f} µs"),
        judged(
            "   attempts recorded (sent to the receiver)",
            f"{len(rows):,} ({failed:,})",
            f"{RETRY_ATTEMPTS} per event, on schedule",
            kept and len(rows) == RETRY_ATTEMPTS * count,
        ),
        *([Figure("   schedule broken", problem)] if problem else []),
    ]


# ---- 3 and 4: the in-process fixture ---------------------------------------------------------


def import_time() -> tuple[float, Any]:
    """``import sandbox`` once, timed on its own (the fixture's figure excludes it)."""
    if "sandbox" in sys.modules:
        raise BenchError("sandbox was imported before its import could be timed")
    started = time.perf_counter()
    module = importlib.import_module("sandbox")
    return time.perf_counter() - started, module


def first_answer(sandbox: Any, path: str = JWKS_PATH) -> float:
    """``Sandbox().start()`` until its first 200 on ``path``, in seconds; stopped after."""
    started = time.perf_counter()
    instance = sandbox.Sandbox().start()
    try:
        while True:
            try:
                instance.call("GET", path)
            except sandbox.SandboxError:
                if time.perf_counter() - started > 10:
                    raise
                time.sleep(0.001)
            else:
                return time.perf_counter() - started
    finally:
        instance.stop()


def reset_times(sandbox: Any) -> list[float]:
    """``reset()`` on a started default sandbox, after a few untimed warm-up calls."""
    with sandbox.Sandbox() as instance:
        for _ in range(RESET_WARMUP):
            instance.reset()
        times = []
        for _ in range(RESET_RUNS):
            started = time.perf_counter()
            instance.reset()
            times.append(time.perf_counter() - started)
        return times


def fixture_figures() -> list[Figure]:
    """Figures 3 and 4, in this process, as a test session would see them."""
    print(f"  3. import, then Sandbox().start() + GET {JWKS_PATH}, {START_RUNS}x ...", flush=True)
    imported, sandbox = import_time()
    cpu = time.process_time()
    first = first_answer(sandbox)  # draws the seeded world: once per process
    first_cpu = time.process_time() - cpu
    starts, cpus = [], []
    for _ in range(START_RUNS):
        cpu = time.process_time()
        starts.append(first_answer(sandbox))
        cpus.append(time.process_time() - cpu)
    keyless = statistics.median(first_answer(sandbox, HEALTH_PATH) for _ in range(START_RUNS))
    print(f"  4. reset() {RESET_RUNS}x ...", flush=True)
    cpu = time.process_time()
    resets = reset_times(sandbox)
    reset_cpu = (time.process_time() - cpu) / (RESET_RUNS + RESET_WARMUP)
    med, worst = statistics.median(starts), max(starts)
    target = f"≤ {START_TARGET_MS:,.0f} ms"
    return [
        Figure("3. import sandbox (once, apart)", ms(imported)),
        Figure(
            "   first start in the process (draws the world)",
            f"{ms(first)} ({ms(first_cpu)} CPU)",
        ),
        judged(
            f"   start → first answer, median of {START_RUNS} more",
            f"{ms(med)} ({ms(statistics.median(cpus))} CPU)",
            target,
            med * 1000 <= START_TARGET_MS,
        ),
        Figure("   start → first answer, max", ms(worst)),
        Figure(f"   the same on {HEALTH_PATH} (no signing key made)", ms(keyless)),
        judged(
            f"4. reset(), median of {RESET_RUNS}",
            f"{ms(statistics.median(resets))} ({ms(reset_cpu)} CPU, client and server)",
            f"≤ {RESET_TARGET_MS:,.0f} ms",
            statistics.median(resets) * 1000 <= RESET_TARGET_MS,
        ),
        Figure("   reset(), p95", ms(percentile(resets, 0.95))),
    ]


# ---- 5: memory of a full journal -------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """VmRSS of a process in MB (10^6 bytes, the target's unit)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise BenchError(f"no VmRSS in /proc/{pid}/status")


def unlinked_mb(pid: int) -> float:
    """Bytes in the process's open but deleted files (temporary files): memory or disk that
    VmRSS does not show, so a journal kept there is never mistaken for a free one."""
    total = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd).endswith(" (deleted)"):
                total += fd.stat().st_size
    return total / 1e6


def body_tail() -> str:
    """Seeded random letters and digits closing the JSON: the bodies barely compress."""
    rng = random.Random(BODY_SIZE)
    fill = BODY_SIZE - len(BODY_HEAD) - COUNTER_DIGITS - len(BODY_END)
    return "".join(rng.choices(string.ascii_letters + string.digits, k=fill)) + BODY_END


def request_body(number: int, tail: str) -> str:
    """Exactly BODY_SIZE bytes of JSON, unique per request, that site validation refuses
    at its first field (``padding`` is unknown)."""
    return f"{BODY_HEAD}{number:0{COUNTER_DIGITS}d}{tail}"


def lua_script(api_key: str, tail: str, count: int) -> str:
    """wrk: POST numbered bodies, and stop the thread after ``count`` answers (one thread)."""
    return "\n".join(
        [
            'wrk.method = "POST"',
            'wrk.headers["Content-Type"] = "application/json"',
            f'wrk.headers["Authorization"] = "Bearer {api_key}"',
            f"local head, tail = {json.dumps(BODY_HEAD)}, {json.dumps(tail)}",
            "local sent, answered = 0, 0",
            "request = function()",
            "  sent = sent + 1",
            f'  local body = head .. string.format("%0{COUNTER_DIGITS}d", sent) .. tail',
            "  return wrk.format(nil, nil, nil, body)",
            "end",
            "response = function(status, headers, body)",
            "  answered = answered + 1",
            f"  if answered >= {count} then wrk.thread:stop() end",
            "end",
            "",
        ]
    )


def check_refused(port: int, api_key: str, body: str) -> None:
    """The request wrk repeats must be authenticated and refused by validation (422)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    status, raw = request(port, "POST", SITES_PATH, headers=headers, body=body)
    if status != 422:
        raise BenchError(f"POST {SITES_PATH} answered {status}, not 422: {raw[:300]!r}")


def journal_stats(port: int) -> dict[str, int]:
    stats: dict[str, int] = get_json(port, "/_sandbox/journal")
    return stats


def run_wrk(port: int, script: Path, count: int) -> str:
    """wrk pinned to core 1 until the journal holds ``count`` more requests and stops growing.

    The script stops wrk's thread after ``count`` answers, but wrk itself waits out its
    ``-d``; so we watch the journal and end wrk with SIGINT (it still prints its report)."""
    argv = [
        "taskset", "-c", str(LOAD_CORE), "wrk", "-t1", f"-c{WRK_CONNECTIONS}",
        f"-d{WRK_LIMIT_S}s", "-s", str(script), f"http://{HOST}:{port}{SITES_PATH}",
    ]  # fmt: skip
    goal = journal_stats(port)["last_seq"] + count
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen, deadline = -1, time.monotonic() + WRK_LIMIT_S + 30
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            now = journal_stats(port)["last_seq"]
            if now >= goal and now == seen:
                break
            seen = now
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    if proc.returncode not in (0, -signal.SIGINT):
        raise BenchError(f"wrk failed ({proc.returncode}): {output.strip()}")
    return output


def check_wrk(report: str) -> None:
    """Every answer wrk counted must be an error (the 422): a 2xx would have made sites."""
    answered = re.search(r"(\d+) requests in", report)
    refused = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", report)
    if answered is None or refused is None or answered.group(1) != refused.group(1):
        raise BenchError(f"wrk's requests were not all refused as expected:\n{report}")


def check_recorded(port: int, since: int, tail: str) -> None:
    """A recorded request from wrk's run is the 422 with its whole BODY_SIZE body."""
    entries = get_json(port, f"/_sandbox/requests?since_seq={since}&limit=1&reveal=true")
    if not entries:
        raise BenchError("the journal holds nothing from wrk's run")
    entry = entries[0]
    body = json.dumps(entry["body"])
    if entry["status"] != 422 or len(body) != BODY_SIZE or not body.endswith(tail):
        raise BenchError(
            f"journal entry #{entry['seq']} is {entry['status']} with a {len(body)} B body, "
            f"not the 422 with the {BODY_SIZE} B body wrk sent"
        )


def memory_figures() -> list[Figure]:
    """Figure 5: an in-memory sandbox whose journal keeps all JOURNAL_REQUESTS requests."""
    env = child_env(
        CHEKT_SANDBOX_JOURNAL_ENTRIES=str(JOURNAL_REQUESTS),
        CHEKT_SANDBOX_JOURNAL_BYTES=str(JOURNAL_BYTES),
    )
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chekt-figures-")))
        stack.enter_context(pinned({LOAD_CORE}))
        port, proc = start_sandbox(stack, tmp, ["--db", ":memory:"], env, HEALTH_PATH)
        at_start = rss_mb(proc.pid)
        api_key = sandbox_credentials(port)[0]
        tail = body_tail()
        check_refused(port, api_key, request_body(0, tail))
        script = tmp / "post.lua"
        script.write_text(lua_script(api_key, tail, JOURNAL_REQUESTS), encoding="utf-8")
        print(f"  5. {JOURNAL_REQUESTS:,} POSTs of {BODY_SIZE} B with wrk ...", flush=True)
        first, started = journal_stats(port)["last_seq"], time.monotonic()
        report = run_wrk(port, script, JOURNAL_REQUESTS)
        elapsed = time.monotonic() - started
        after = rss_mb(proc.pid)  # before anything else allocates in the server
        outside = unlinked_mb(proc.pid)
        journal = journal_stats(port)
        check_wrk(report)
        check_recorded(port, first, tail)
    held = int(journal["entries"])
    return [
        judged(
            "5. RSS right after start",
            f"{at_start:,.1f} MB",
            f"≤ {RSS_START_TARGET_MB:,.0f} MB",
            at_start <= RSS_START_TARGET_MB,
        ),
        judged(
            "   journal entries held",
            f"{held:,} ({journal['evicted']:,} evicted, {elapsed:.0f} s of wrk)",
            f"≥ {JOURNAL_REQUESTS:,}",
            held >= JOURNAL_REQUESTS,
        ),
        judged(
            f"   RSS after {JOURNAL_REQUESTS:,} requests of {BODY_SIZE} B",
            f"{after:,.1f} MB",
            f"≤ {RSS_TARGET_MB:,.0f} MB",
            after <= RSS_TARGET_MB,
        ),
        Figure("   its open temporary files (not in RSS)", f"{outside:,.1f} MB"),
    ]


# ---- 6: the package's and the plugin's import ----------------------------------------------


def wall(code: str) -> float:
    """Wall time of a fresh interpreter running ``code``, in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=child_env())
    return time.perf_counter() - started


def own_import_us(code: str) -> dict[str, int]:
    """Cumulative ``-X importtime`` microseconds of each module ``code`` imports."""
    argv = [sys.executable, "-X", "importtime", "-c", code]
    err = subprocess.run(argv, check=True, capture_output=True, text=True, env=child_env()).stderr
    tops: dict[str, int] = {}
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            tops[parts[2].strip()] = int(parts[1])
    return tops


def import_figures() -> list[Figure]:
    """Figure 6: fresh interpreters, so nothing is cached in this one. Judged: what importing
    the package and loading its plugin adds to a pytest run (pytest's own import is there
    with or without the plugin); shown too: the whole of it from a bare interpreter."""
    code = "import sandbox, sandbox.pytest_plugin"
    print(f"  6. python -c {code!r} with and without pytest, {IMPORT_RUNS}x ...", flush=True)
    wall("pass")  # the interpreter's files in the page cache
    added = [wall(f"import pytest; {code}") - wall("import pytest") for _ in range(IMPORT_RUNS)]
    whole = [wall(code) - wall("pass") for _ in range(IMPORT_RUNS)]
    shares = [own_import_us("import pytest; " + code) for _ in range(IMPORT_RUNS)]
    pytest_us = statistics.median(own_import_us(code).get("pytest", 0) for _ in range(3))
    ours = statistics.median(
        sum(t.get(n, 0) for n in ("sandbox", "sandbox.pytest_plugin")) for t in shares
    )
    med, from_bare = statistics.median(added), statistics.median(whole)
    return [
        judged(
            f"6. import sandbox + plugin in a pytest run, median of {IMPORT_RUNS}",
            ms(med),
            f"≤ {IMPORT_TARGET_MS:,.0f} ms",
            med * 1000 <= IMPORT_TARGET_MS,
        ),
        Figure("   the same from a bare interpreter, pytest included", ms(from_bare)),
        Figure("   of which pytest itself (-X importtime)", ms(pytest_us / 1e6)),
        Figure("   the package's own share (-X importtime)", ms(ours / 1e6)),
    ]


# ---- report ----------------------------------------------------------------------------------

HEADERS = ("Figure", "Value", "Target", "Verdict")


def cells(figure: Figure) -> tuple[str, str, str, str]:
    return figure.name, figure.value, figure.target, figure.verdict


def text_table(figures: Sequence[Figure]) -> str:
    table = [HEADERS, *(cells(f) for f in figures)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADERS))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if i != 1 else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([line(HEADERS), rule, *(line(row) for row in table[1:])])


def markdown_table(figures: Sequence[Figure]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|---|---:|---|---|"]
    lines += ["| " + " | ".join(c.strip() or " " for c in cells(f)) + " |" for f in figures]
    return "\n".join(lines)


def conditions(count: int, seconds: float) -> list[str]:
    """How each figure was made, so a number is never read without its conditions (one
    line per stage, in the order of ``STAGES``)."""
    return [
        f"- 1, 2: `chekt-sandbox serve --db <tmp>/sandbox.db --clock system --callback "
        f"http://{HOST}:<port>/hook` pinned to core {SERVER_CORE}, an aiohttp receiver "
        f"(200 to every POST) on core {LOAD_CORE}; default profile, signing, concurrency and "
        f'timeout. {WARMUP_EVENTS} warm-up deliveries first; then `{{"random": {count}}}` '
        "timed from just before the emit request to the receiver's last arrival. Latency: "
        f'`{{"type": "alarm.created"}}` at {EMIT_RATE:.0f}/s for {seconds:.0f} s on one '
        "kept-alive connection, from just before each emit request to the first arrival of "
        "its `X-CHeKT-Event-Id` (CLOCK_MONOTONIC in both processes).",
        f"- 3, 4: in this process, unpinned; `Sandbox()` (in-memory store, default world). "
        f"Start: `Sandbox().start()` until the first 200 on `GET {JWKS_PATH}` (it makes the "
        f"RSA signing key), one start apart (the first in the process draws the seeded world), "
        f"then {START_RUNS} runs, each stopped after, and {START_RUNS} more on `GET {HEALTH_PATH}` "
        f"(no key made). Reset: {RESET_RUNS} timed `reset()` "
        f"calls after {RESET_WARMUP} untimed ones. CPU: this process's (client and server "
        "threads).",
        f"- 5: `chekt-sandbox serve --db :memory:` on core {SERVER_CORE} with "
        f"`CHEKT_SANDBOX_JOURNAL_ENTRIES={JOURNAL_REQUESTS}` and "
        f"`CHEKT_SANDBOX_JOURNAL_BYTES={JOURNAL_BYTES}` (the default 50 MiB byte cap "
        f"alone would evict most of them); `wrk -t1 -c{WRK_CONNECTIONS}` on core "
        f"{LOAD_CORE} POSTs {BODY_SIZE} B of JSON (numbered, seeded random text) with the "
        f"seeded API key to `{SITES_PATH}` (422, unknown field) until "
        f"{JOURNAL_REQUESTS:,} answers; VmRSS from `/proc/<pid>/status`, MB = 10^6 bytes; "
        "temporary files: the sizes of the server's open but deleted files "
        "(`/proc/<pid>/fd`), which VmRSS does not count. RSS at start: once "
        f"`GET {HEALTH_PATH}` answers (the JWKS would make the signing key first).",
        "- 6: `python -c 'import pytest; import sandbox, sandbox.pytest_plugin'` minus "
        f"`python -c 'import pytest'`, wall time, median of {IMPORT_RUNS} pairs, unpinned; "
        "from a bare interpreter: the same without pytest first, minus `python -c pass`; "
        "the shares from `-X importtime` (the package's own with pytest already loaded).",
        f"- 7: `chekt-sandbox serve --db :memory: --clock virtual --callback "
        f"http://{HOST}:<port>/fail` on core {SERVER_CORE}, the receiver (500 to every POST) "
        f'on core {LOAD_CORE}; `{{"random": {RETRY_EVENTS}}}` emitted, then one '
        f'`POST /_sandbox/clock/advance {{"seconds": {RETRY_WINDOW + 60:.0f}}}` timed on the '
        "wall clock (it returns once every step is settled); CPU from `/proc/<pid>/stat`.",
    ]


def aiohttp_line() -> str:
    with contextlib.suppress(metadata.PackageNotFoundError):
        return f"- Webhook client and receiver: aiohttp {metadata.version('aiohttp')}"
    return "- Webhook client and receiver: aiohttp (version unknown)"


def write_figures(
    figures: Sequence[Figure],
    count: int,
    seconds: float,
    quick: bool,
    load: float | None,
    only: Sequence[str] = STAGES,
) -> Path:
    """Append this run's section to bench/figures.md (created with a title the first time)."""
    path = BENCH_DIR / "figures.md"
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    notes = ["quick run"] if quick else []
    if tuple(only) != STAGES:
        notes.append("only " + ", ".join(name for name in STAGES if name in only))
    section = [
        f"## {stamp}" + (f" ({'; '.join(notes)})" if notes else ""),
        "",
        markdown_table(figures),
        "",
        *(
            line
            for name, line in zip(STAGES, conditions(count, seconds), strict=True)
            if name in only
        ),
        "",
        "### Machine",
        "",
        *machine(load),
        aiohttp_line(),
        "",
    ]
    head = "" if path.exists() else "# Sandbox figures (`bench/figures.py`)\n\n"
    with path.open("a", encoding="utf-8") as out:
        out.write(head + "\n".join(section) + "\n")
    return path


# ---- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="1,000 events and 2 s of latency (a smoke test)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=STAGES,
        metavar="STAGE",
        help=f"run only this stage (again for more): {', '.join(STAGES)}",
    )
    parser.add_argument("--receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def preflight() -> None:
    """Fail early and clearly on a machine that cannot run this benchmark as specified."""
    if not {SERVER_CORE, LOAD_CORE} <= os.sched_getaffinity(0):
        raise BenchError(f"needs cores {SERVER_CORE} and {LOAD_CORE}")
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (apt-get install wrk util-linux)")
    if not (BIN / "chekt-sandbox").exists():
        raise BenchError(f"{BIN / 'chekt-sandbox'} is missing; run `make install`")
    if not Path("/proc/self/status").exists():
        raise BenchError("needs /proc to read the server's RSS")


def measure_all(count: int, seconds: float, only: Sequence[str] = STAGES) -> list[Figure]:
    """Every figure (or the ``only`` stages'), each stage's rows echoed as soon as it ends (a
    later failure keeps them)."""
    stages: dict[str, tuple[str, Callable[[], list[Figure]]]] = {
        "webhooks": ("Figures 1-2: webhooks", lambda: webhook_figures(count, seconds)),
        "fixture": ("Figures 3-4: the in-process fixture", fixture_figures),
        "memory": ("Figure 5: memory of a full journal", memory_figures),
        "import": ("Figure 6: import sandbox and its pytest plugin", import_figures),
        "retry": (
            "Figure 7: the retry schedule on the virtual clock",
            lambda: retry_figures(RETRY_EVENTS),
        ),
    }
    figures: list[Figure] = []
    for title, stage in (stages[name] for name in STAGES if name in only):
        print(title, flush=True)
        started = time.monotonic()
        rows = stage()
        for row in rows:
            print(f"    {row.name.strip()}: {row.value} {row.verdict}".rstrip(), flush=True)
        print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
        figures += rows
    return figures


def checked(machine_check: Callable[[], None]) -> float | None:
    """Check the machine, and warn when it is already busy; the background load."""
    machine_check()
    load = background_load()
    if load is not None and load > 0.10:
        print(f"warning: {load * 100:.0f} % of the CPU was busy before the run")
    return load


def guarded(what: str, work: Callable[[], T]) -> T | int:
    """``work()``, or the exit status its failure calls for (every child is stopped by then):
    2 when it failed, 130 when interrupted (SIGTERM too)."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return work()
    except BenchError as exc:
        print(f"\n{what} failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; all servers stopped", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(f"\n{what} failed: unexpected error (above); all servers stopped", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.receiver is not None:
        receiver_main(args.receiver)
        return 0
    count, seconds = (1_000, 2.0) if args.quick else (5_000, 5.0)
    only = args.only or STAGES
    ran = guarded("bench", lambda: (checked(preflight), measure_all(count, seconds, only)))
    if isinstance(ran, int):
        return ran
    load, figures = ran
    print()
    print(text_table(figures))
    path = write_figures(figures, count, seconds, args.quick, load, only)
    print(f"\nAppended to {path.relative_to(ROOT)}")
    return 0 if all(f.verdict != "FAIL" for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
