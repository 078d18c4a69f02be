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
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from figures import (  # bench/figures.py: sys.path[0] is bench/ when run as a script
    LOAD_CORE,
    SERVER_CORE,
    checked,
    guarded,
    pinned,
    start_receiver,
    start_sandbox,
    text_table,
)
from run import BIN, HOST, ROOT, BenchError, apps_key, child_env, get_json, sandbox_credentials
from soak_load import (
    API_RATE,
    EMIT_RATE,
    FAIL_SHARE,
    SEED,
    Credentials,
    Load,
    api_load,
    emitter,
    receiver_main,
)
from soak_report import figures_of, write_report
from soak_watch import SAMPLE_S, Outcome, Record, Sample, progress, sample

BASELINE_S = 300.0  # RSS growth is measured from here (or a sixth of a shorter run)
DRAIN_S = 30.0  # after the load stops: time for the last first attempts to be recorded


# ---- the run ----------------------------------------------------------------------------------


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
