"""The soak's verdicts and its report, ``bench/soak.md`` (``bench/soak.py``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from figures import LOAD_CORE, SERVER_CORE, Figure, judged, markdown_table
from run import HOST, machine
from soak_load import API_RATE, DROP_SHARE, EMIT_RATE, FAIL_SHARE, TOKEN_REFRESH_S
from soak_watch import SAMPLE_S, Outcome, Sample, minute

BENCH_DIR = Path(__file__).resolve().parent
RATE_SHARE = 0.95  # of EMIT_RATE the stream must reach: a slower server paces it (lags)
RSS_GROWTH_MB = 10.0
CONCURRENCY = 10  # the default webhook concurrency: the most connections to the receiver
# the server's other sockets: its two listeners (API, bridges), the event loop's socket pair
# (an idle server holds these 4) and the soak's connections (the emitter's, the API load's, a
# sample's read, a token request)
OTHER_SOCKETS = 4 + 4


# ---- verdicts and the report ------------------------------------------------------------------


def files(s: Sample) -> int:
    """Descriptors that should stay as they are: all but sockets and the journal's files."""
    return s.fds - s.outbound - s.sockets - s.spill_fds


@dataclass(frozen=True)
class FileCounts:
    """``files`` over the run: a leak stays open, so growth is judged on where the count
    settles at the end, not on a descriptor a sample caught open for a moment."""

    before: int  # the most up to the baseline
    peak: int  # the most after it
    end: int  # the fewest over the last minute
    extra: dict[str, str]  # what was open after the baseline beyond the most of its kind
    # before it → the minute it was first seen

    @classmethod
    def of(cls, outcome: Outcome) -> FileCounts:
        base, end = outcome.baseline.at, outcome.samples[-1].at
        early = [s for s in outcome.samples if s.at <= base]
        late = [s for s in outcome.samples if s.at > base] or early[-1:]
        most: Counter[str] = Counter()
        for s in early:
            most |= Counter(s.others)
        extra: dict[str, str] = {}
        for s in late:
            for kind in Counter(s.others) - most:
                extra.setdefault(kind, minute(s.at))
        return cls(
            before=max(files(s) for s in early),
            peak=max(files(s) for s in late),
            end=min(files(s) for s in late if s.at >= end - 60),
            extra=extra,
        )


def figures_of(outcome: Outcome) -> list[Figure]:
    first, base, end = outcome.samples[0], outcome.baseline, outcome.samples[-1]
    growth = end.rss_mb - base.rss_mb
    fds = FileCounts.of(outcome)
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
            "descriptors but sockets: most up to the baseline → at the end",
            f"{fds.before} → {fds.end} (peak after the baseline {fds.peak}"
            + "".join(f"; {kind} open at minute {at}" for kind, at in fds.extra.items())
            + f"; the journal's files: at most {max(s.spill_fds for s in outcome.samples)})",
            "no growth",
            fds.end <= fds.before,
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
        "run) to the end. Descriptors: where the count settles at the end (the fewest over "
        "the last minute: a leak stays open) against the most open up to the baseline, with "
        "anything seen open after the baseline beyond the most of its kind before it named "
        "(a path, or a kind such as `pipe`), leaving out sockets (connections to the "
        "receiver come and go: "
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
