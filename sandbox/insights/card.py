"""The report card: how the partner's client and webhook receiver behaved, judged from what
the sandbox saw — the journal of inbound requests (as :func:`sandbox.recorder.export` shows
them) and the delivery attempts (rows of the outbox's ``attempts``).

Each finding is ``ok`` true (behaved), false (misbehaved, with the entries that prove it) or
null (nothing in the traffic to judge it by: the detail says what would). Times are the
sandbox clock's on both sides, so a client that waits on a virtual clock is judged by it;
requests at the very same instant of a virtual clock that stood still are not judged (a
client waiting in real time meanwhile would look as if it had not waited at all).
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from sandbox.webhooks.outbox import FORGED_PREFIX

API_SURFACES = ("/partner/v1/", "/v1/", "/ext/v1/")
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a password
WRITES = ("POST", "PUT", "PATCH")
EVIDENCE_LIMIT = 50  # journal entries (and attempts) quoted per finding
TOKEN_SLACK = 1  # needless token fetches forgiven (two threads racing at start-up)
EXPIRY_MARGIN = 0.1  # share of a token's lifetime before expiry when fetching anew is fair
MIN_GAP = 0.05  # s: a retry sooner than this after a 5xx did not back off at all
CLOCK_SLACK = 0.01  # s of float noise forgiven when comparing sandbox times
FINDING_IDS = (  # the order of the card; /_sandbox/report's documented ids
    "token_reuse",
    "retry_after",
    "backoff",
    "trace_id",
    "idempotency",
    "webhook_deadline",
    "dedupe",
    "signature_checked",
    "ignores_unknown",
)
RETRYABLE = frozenset({0, 408, 429})  # besides 5xx: what a client retries (0: no answer)

Entry = Mapping[str, Any]  # an exported journal entry
Attempt = Mapping[str, Any]  # a delivery attempt row


@dataclass
class Finding:
    id: str
    title: str
    ok: bool | None = None
    detail: str = ""
    evidence: list[int] = field(default_factory=list)  # journal seqs
    attempts: list[int] = field(default_factory=list)  # delivery attempt seqs

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ok": self.ok,
            "title": self.title,
            "detail": self.detail,
            "evidence": sorted(set(self.evidence))[:EVIDENCE_LIMIT],
            "attempts": sorted(set(self.attempts))[:EVIDENCE_LIMIT],
        }


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    return next((v for k, v in (headers or {}).items() if k.lower() == name), None)


def _api(entry: Entry) -> bool:
    return str(entry["path"]).startswith(API_SURFACES)


def _failed(status: int) -> bool:
    return status >= 500 or status in RETRYABLE


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _fields(body: Any) -> Mapping[str, Any]:
    return body if isinstance(body, Mapping) else {}


def token_reuse(entries: Sequence[Entry]) -> Finding:
    """A token fetch is needless when the same client already held a token for the same
    grant, scope and audience that had not expired and had not been refused (401)."""
    finding = Finding("token_reuse", "Reuses access tokens instead of fetching one per call")
    held: dict[tuple[Any, ...], tuple[float, float]] = {}  # key -> (fetched at, lifetime)
    refused: set[str] = set()  # clients with a 401 since their last fetch
    fetches = calls = 0
    needless: list[int] = []
    for entry in entries:
        client = entry.get("client_id")
        if client is None:
            continue
        if entry["path"] == TOKEN_PATH and entry["method"] == "POST":
            form = _fields(entry.get("body"))
            if form.get("grant_type") == "authorization_code" or entry["status"] != 200:
                continue  # a user signing in is a new token by nature
            fetches += 1
            key = (client, form.get("grant_type"), form.get("scope"), form.get("audience"))
            lifetime = _fields(entry.get("response_body")).get("expires_in")
            lifetime = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
            if key in held and client not in refused:
                at, life = held[key]
                if entry["time"] < at + life * (1 - EXPIRY_MARGIN):
                    needless.append(entry["seq"])
            held[key] = (float(entry["time"]), lifetime)
            refused.discard(client)
        elif _api(entry) and entry.get("tier") != "api_key":
            calls += 1
            if entry["status"] == 401:
                refused.add(client)
    if not fetches:
        finding.detail = "no access token was fetched (API keys only, or no traffic)"
        return finding
    finding.ok = len(needless) <= TOKEN_SLACK
    finding.evidence = needless
    finding.detail = (
        f"{fetches} token request(s) for {calls} API call(s) made with tokens; "
        f"{len(needless)} fetched a new token while the last one was still valid and unrefused"
    )
    return finding


def retry_after(entries: Sequence[Entry]) -> Finding:
    """After a 429/503 carrying Retry-After, the same client's next API request must come
    no sooner than it said."""
    finding = Finding("retry_after", "Honours Retry-After after a 429 or 503")
    pending: dict[str, tuple[Entry, float]] = {}  # client -> (the refusal, seconds to wait)
    honoured = frozen = 0
    broken: list[int] = []
    for entry in entries:
        client = entry.get("client_id")
        if client is None or not _api(entry):
            continue  # fetching a token meanwhile is not calling the API
        if client in pending:
            refusal, wait = pending.pop(client)
            if entry["time"] == refusal["time"]:
                frozen += 1  # a virtual clock that stood still: it cannot tell
            elif entry["time"] - refusal["time"] + CLOCK_SLACK < wait:
                broken += [refusal["seq"], entry["seq"]]
            else:
                honoured += 1
        asked = _seconds(_header(entry.get("response_headers"), "retry-after"))
        if entry["status"] in (429, 503) and asked is not None:
            pending[client] = (entry, asked)
    judged = honoured + len(broken) // 2
    still = f"; {frozen} at the same instant of a virtual clock that stood still" if frozen else ""
    if not judged:
        finding.detail = (
            "no 429 or 503 with Retry-After was followed by another request from that client "
            "(POST /_sandbox/faults with status 429 and retry_after, or turn rate limits on)"
            + still
        )
        return finding
    finding.ok = not broken
    finding.evidence = broken
    finding.detail = (
        f"{judged} request(s) followed a Retry-After; {len(broken) // 2} came too soon" + still
    )
    return finding


def _chains(entries: Sequence[Entry]) -> list[list[Entry]]:
    """Runs of the same request by the same client, each after a failure of the one before:
    a request and its retries."""
    open_: dict[tuple[Any, ...], list[Entry]] = {}
    chains: list[list[Entry]] = []
    for entry in entries:
        if not _api(entry) or entry.get("client_id") is None:
            continue
        key = (entry["client_id"], entry["method"], entry["path"], entry.get("query"))
        chain = open_.get(key)
        if chain is not None and _failed(int(chain[-1]["status"])):
            chain.append(entry)
            continue
        open_[key] = [entry]
        chains.append(open_[key])
    return [chain for chain in chains if len(chain) > 1]


def backoff(entries: Sequence[Entry]) -> Finding:
    """Retries after a 5xx (or no answer) without Retry-After wait, and wait longer each
    time; gaps after a Retry-After are judged by ``retry_after`` instead."""
    finding = Finding("backoff", "Backs off between retries after a 5xx")
    judged = frozen = 0
    bad: list[int] = []
    for chain in _chains(entries):
        gaps = [
            (later["time"] - earlier["time"], later["seq"])
            for earlier, later in pairwise(chain)
            if (int(earlier["status"]) >= 500 or earlier["status"] == 0)
            and _header(earlier.get("response_headers"), "retry-after") is None
        ]
        if gaps and all(gap == 0 for gap, _ in gaps):
            frozen += 1  # a virtual clock that stood still: waits in real time do not show
            continue
        if not gaps:
            continue
        judged += 1
        too_soon = [seq for gap, seq in gaps if gap < MIN_GAP]
        flat = len(gaps) > 1 and gaps[-1][0] <= gaps[0][0] + CLOCK_SLACK
        if too_soon or flat:
            bad += [e["seq"] for e in chain]
    still = (
        f"; {frozen} retried on a virtual clock that stood still (wait on it to be judged)"
        if frozen
        else ""
    )
    if not judged:
        finding.detail = (
            "no request was retried after a 5xx or a dropped connection "
            '(POST /_sandbox/faults {"inbound": [{"status": 502, "count": 3}]})' + still
        )
        return finding
    finding.ok = not bad
    finding.evidence = bad
    verdict = (
        f"some retried at once (under {MIN_GAP} s) or without growing waits"
        if bad
        else "each waited, longer each time"
    )
    finding.detail = f"{judged} retried request(s) after a 5xx: {verdict}{still}"
    return finding


def trace_id(entries: Sequence[Entry]) -> Finding:
    finding = Finding("trace_id", "Sends x-partner-trace-id on every API call")
    calls = [e for e in entries if _api(e)]
    if not calls:
        finding.detail = "no API call was made"
        return finding
    missing = [e["seq"] for e in calls if not e.get("trace_id")]
    odd = sum(1 for e in calls if e.get("trace_id") and e.get("note"))
    finding.ok = not missing
    finding.evidence = missing
    finding.detail = f"{len(calls) - len(missing)} of {len(calls)} API call(s) carried one" + (
        f"; {odd} were not UUIDs" if odd else ""
    )
    return finding


def idempotency(entries: Sequence[Entry]) -> Finding:
    """A write repeated after a failed answer (5xx, 408, 429, none) must carry an
    Idempotency-Key, the same one both times."""
    finding = Finding("idempotency", "Sends the same Idempotency-Key when it retries a write")
    last: dict[tuple[Any, ...], Entry] = {}
    retried = 0
    bad: list[int] = []
    for entry in entries:
        if not _api(entry) or entry["method"] not in WRITES or entry.get("client_id") is None:
            continue
        body = json.dumps(entry.get("body"), sort_keys=True)
        key = (entry["client_id"], entry["method"], entry["path"], body)
        earlier = last.get(key)
        last[key] = entry
        if earlier is None or not _failed(int(earlier["status"])):
            continue
        retried += 1
        before = _header(earlier.get("headers"), "idempotency-key")
        now = _header(entry.get("headers"), "idempotency-key")
        if not before or not now or before != now:
            bad += [earlier["seq"], entry["seq"]]
    if not retried:
        finding.detail = "no write was retried after a failed answer"
        return finding
    finding.ok = not bad
    finding.evidence = bad
    finding.detail = f"{retried} retried write(s); {len(bad) // 2} without the same Idempotency-Key"
    return finding


def _forged(attempt: Attempt) -> bool:
    return str(attempt["delivery_id"]).startswith(FORGED_PREFIX)


def _answered_or_timed_out(attempt: Attempt) -> bool:
    """An attempt the receiver's speed decided (a refused connection says nothing of it)."""
    return attempt.get("status_code") is not None or attempt["outcome"] == "timeout"


def webhook_deadline(
    attempts: Sequence[Attempt], deadlines: Mapping[str, float], default: float
) -> Finding:
    finding = Finding("webhook_deadline", "Answers webhooks within the delivery deadline")
    sent = [a for a in attempts if _answered_or_timed_out(a) and not _forged(a)]
    if not sent:
        finding.detail = "no webhook was answered or timed out (none sent, or none connected)"
        return finding
    late = [
        a
        for a in sent
        if a["outcome"] == "timeout"
        or (a.get("latency_ms") or 0) > deadlines.get(a["webhook_id"], default) * 1000
    ]
    slowest = max(float(a.get("latency_ms") or 0) for a in sent)
    finding.ok = not late
    finding.attempts = [a["seq"] for a in late]
    finding.detail = (
        f"{len(sent) - len(late)} of {len(sent)} attempt(s) answered in time "
        f"(deadline {default:g} s; slowest answer {slowest:.0f} ms)"
    )
    return finding


def _window(attempt: Attempt) -> tuple[float, float]:
    """When the attempt was in flight: a call the receiver made before answering arrived
    within it (sent_at is taken before sending, latency after the answer)."""
    start = float(attempt["sent_at"])
    return start, start + float(attempt.get("latency_ms") or 0) / 1000


class _Timeline:
    """API calls by sandbox time, for finding those made while an attempt was in flight."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.calls = sorted((e for e in entries if _api(e)), key=lambda e: e["time"])
        self.times = [float(e["time"]) for e in self.calls]

    def during(self, window: tuple[float, float]) -> list[Entry]:
        start = bisect_left(self.times, window[0])
        return self.calls[start : bisect_right(self.times, window[1])]


def _signature(entry: Entry) -> tuple[Any, ...]:
    return (entry["method"], entry["path"], json.dumps(entry.get("body"), sort_keys=True))


def dedupe(entries: Sequence[Entry], attempts: Sequence[Attempt]) -> Finding:
    """When one event reached a subscription twice (a duplicate or a resend), did the
    partner's service act twice? Seen from outside only through the API calls it made while
    each copy was being answered: the same call during the first copy and a later one is
    the event processed twice. Copies answered at overlapping times (a virtual clock stands
    still while they are in flight) or a service that calls nothing while answering cannot
    be judged."""
    finding = Finding("dedupe", "Handles a duplicated webhook once")
    copies: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        code = attempt.get("status_code")
        if not _forged(attempt) and code is not None and 200 <= int(code) < 300:
            copies[(attempt["webhook_id"], attempt["event_id"])].append(attempt)
    twice = [
        sorted(group, key=lambda a: (a["sent_at"], a["seq"]))  # a duplicate may be journaled
        for group in copies.values()  # before the attempt it copies
        if len(group) > 1
    ]
    if not twice:
        finding.detail = (
            "no event was delivered twice to one subscription; set duplicate_rate "
            "(POST /_sandbox/faults) or resend an event to judge it"
        )
        return finding
    acted_twice = deduped = blind = 0
    timeline = _Timeline(entries)
    for group in twice:
        windows = [_window(a) for a in group]
        if any(later[0] < earlier[1] for earlier, later in pairwise(windows)):
            blind += 1
            continue
        first = {_signature(e): e for e in timeline.during(windows[0])}
        if not first:
            blind += 1
            continue
        again = [e for w in windows[1:] for e in timeline.during(w) if _signature(e) in first]
        if again:
            acted_twice += 1
            finding.evidence += [first[_signature(e)]["seq"] for e in again]
            finding.evidence += [e["seq"] for e in again]
            finding.attempts += [a["seq"] for a in group]
        else:
            deduped += 1
            finding.attempts += [group[-1]["seq"]]
    finding.ok = False if acted_twice else (True if deduped else None)
    finding.detail = (
        f"{len(twice)} event(s) delivered more than once: {acted_twice} made the same API "
        f"call again, {deduped} did not, {blind} cannot be judged (copies answered at "
        "overlapping sandbox times, or no API call while answering the first copy)"
    )
    return finding


def signature_checked(attempts: Sequence[Attempt]) -> Finding:
    """A forged delivery (signed with a wrong secret, ``POST
    /_sandbox/subscriptions/{webhook_id}/forged``) must be refused with a 4xx."""
    finding = Finding("signature_checked", "Refuses a webhook with a forged signature")
    forged = [a for a in attempts if _forged(a)]
    if not forged:
        finding.detail = (
            "no forged delivery was sent (POST /_sandbox/subscriptions/{webhook_id}/forged, or "
            "chekt-sandbox report --forge)"
        )
        return finding
    codes = [(a, a.get("status_code")) for a in forged]
    accepted = [a["seq"] for a, code in codes if code is not None and 200 <= code < 300]
    refused = [a["seq"] for a, code in codes if code is not None and 400 <= code < 500]
    finding.ok = False if accepted else (True if refused else None)
    finding.attempts = accepted or refused or [a["seq"] for a in forged]
    finding.detail = (
        f"{len(forged)} forged delivery(ies): {len(accepted)} answered 2xx (accepted), "
        f"{len(refused)} refused with a 4xx, {len(forged) - len(accepted) - len(refused)} "
        "got no verdict (5xx, timeout, no connection)"
    )
    return finding


def _unknown_to_it(attempt: Attempt) -> bool:
    """Whether the attempt carried what the receiver cannot know: an event type not in the
    catalogue or fields not in it (webhook chaos ``unknown_types`` / ``extra_fields``)."""
    marks = str(attempt.get("chaos") or "")
    return "unknown_type" in marks or "extra_fields" in marks


def ignores_unknown(attempts: Sequence[Attempt]) -> Finding:
    """A receiver must take an unknown event type or unknown fields with a 2xx (and ignore
    them): a 4xx or 5xx to them means the next platform release breaks it."""
    finding = Finding("ignores_unknown", "Accepts (and ignores) unknown event types and fields")
    sent = [a for a in attempts if _unknown_to_it(a) and a.get("status_code") is not None]
    if not sent:
        finding.detail = (
            "no unknown event type or field was delivered (POST /_sandbox/faults "
            '{"unknown_types": 0.5, "extra_fields": 0.5})'
        )
        return finding
    refused = [a for a in sent if not 200 <= int(a["status_code"]) < 300]
    finding.ok = not refused
    finding.attempts = [a["seq"] for a in refused or sent]
    finding.detail = (
        f"{len(sent) - len(refused)} of {len(sent)} delivery(ies) with an unknown event type or "
        "field answered 2xx"
    )
    return finding


def report_card(
    entries: Iterable[Entry],
    attempts: Iterable[Attempt],
    *,
    deadline: float,
    deadlines: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Every finding, in a fixed order. ``entries`` and ``attempts`` oldest first;
    ``deadline``: seconds a receiver has to answer (``deadlines``: per subscription)."""
    journal = sorted(entries, key=lambda e: e["seq"])
    sent = sorted(attempts, key=lambda a: a["seq"])
    findings = [
        token_reuse(journal),
        retry_after(journal),
        backoff(journal),
        trace_id(journal),
        idempotency(journal),
        webhook_deadline(sent, deadlines or {}, deadline),
        dedupe(journal, sent),
        signature_checked(sent),
        ignores_unknown(sent),
    ]
    assert tuple(f.id for f in findings) == FINDING_IDS
    return [f.view() for f in findings]
