"""Run a scenario against a sandbox and a partner's callback URL, step by step.

The runner only uses the public ``Sandbox`` client (the ``/_sandbox`` API) plus plain HTTP
to the partner's receiver for the adversarial steps, so a scenario replayed from the CLI, from
Python or from pytest behaves the same.

It may drive a sandbox someone is developing against, so it touches only what it makes: it
resets nothing unless asked, removes its subscription and restores the fault knobs at the end,
and looks only at its own events and at requests made after it started.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from sandbox.client import Sandbox, SandboxError, describe, describe_attempt, request_differences
from sandbox.scenario.adversarial import attack
from sandbox.scenario.loader import Scenario, Step
from sandbox.webhooks import outbox

DEFAULT_WITHIN = 5.0
INBOUND_PAGE = 1000  # the control API's largest page


class StepFailed(AssertionError):
    """The partner did not do what the step expects."""


@dataclass
class StepResult:
    step: Step
    passed: bool
    seconds: float
    detail: str = ""


@dataclass
class Report:
    scenario: Scenario
    results: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    # the report card of the partner's traffic during the run (GET /_sandbox/report)
    findings: list[dict[str, Any]] = field(default_factory=list)
    secrets: tuple[str, ...] = ()  # never printed: the webhook and client secrets of the run

    @property
    def passed(self) -> bool:
        return (
            bool(self.results)
            and all(r.passed for r in self.results)
            and len(self.results) == len(self.scenario.steps)
        )


class Runner:
    def __init__(
        self,
        sandbox: Sandbox,
        *,
        callback: str | None = None,
        secret: str | None = None,
        speed: float = 1.0,
        progress: Callable[[str], None] | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        reset: bool = False,
    ) -> None:
        self.sandbox = sandbox
        self.callback = callback
        self.secret = secret or "whsec_" + secrets.token_urlsafe(24)
        self.speed = speed
        self.progress = progress or (lambda line: None)
        self.events: list[str] = []
        self.last_events: list[str] = []
        self.due: dict[str, float] = {}  # event id -> when it happens on the sandbox clock
        self.mark = 0  # journal sequence before the last emit: expectations look after it
        self.metrics: dict[str, float] = {}
        self.saved: dict[str, Any] = {}  # call results kept with save_as, used as ${name.field}
        self.client = (client_id, client_secret)  # "as: partner"; None: the seeded partner
        self.reset = reset  # reseed the world first (its seed) instead of using it as it is
        self.webhook_id: str | None = None  # the subscription this run made, removed at the end
        self.start = 0  # journal sequence when the run began: nothing before it counts
        self.inbound_start = 0  # the inbound event seq then (expect_event looks after it)
        self._fetched: list[dict[str, Any]] = []  # delivery attempts read so far, in order
        self._fetched_seq = 0
        self.faults: dict[str, Any] | None = None  # the knobs before a fault step changed them
        self.fault_ids: list[str] = []  # the inbound fault rules this run added

    def run(self, scenario: Scenario) -> Report:
        report = Report(scenario, secrets=tuple(s for s in (self.secret, self.client[1]) if s))
        started = time.perf_counter()
        if self.reset:
            self.sandbox.reset(seed=scenario.seed)
        self._journal_mark()
        self.start = self.mark
        self.inbound_start = self._inbound_mark()
        began = self.sandbox.clock.now()
        try:
            self._build_world(scenario.world)
            if self.callback:
                self.webhook_id = self.sandbox.subscribe(
                    self.callback, secret=self.secret, profile=scenario.profile
                )["webhook_id"]
            self._steps(scenario, report)
        finally:
            self._clean_up()
        with contextlib.suppress(SandboxError):  # an older sandbox has no report card
            report.findings = self.sandbox.report(since_seq=self.start, since=began)["findings"]
        report.seconds = time.perf_counter() - started
        report.metrics = dict(self.metrics)
        return report

    def _steps(self, scenario: Scenario, report: Report) -> None:
        total = len(scenario.steps)
        for step in scenario.steps:
            self.progress(f"[{step.index}/{total}] {step.label} …")
            began = time.perf_counter()
            try:
                args = _substitute(step.args, self.saved)
                detail = getattr(self, f"_{step.keyword}")(args) or ""
                report.results.append(StepResult(step, True, time.perf_counter() - began, detail))
            except (StepFailed, SandboxError, httpx.HTTPError, KeyError) as exc:
                report.results.append(
                    StepResult(step, False, time.perf_counter() - began, str(exc))
                )
                break

    def _clean_up(self) -> None:
        """Leave the sandbox as the run found it, but for the events it emitted."""
        if self.webhook_id is not None:
            self.sandbox.unsubscribe(self.webhook_id)
            self.webhook_id = None
        if self.faults is not None:
            self.sandbox.webhook_chaos(**self.faults)
            self.faults = None
        for fault_id in self.fault_ids:
            with contextlib.suppress(SandboxError):  # gone already: a reset, a DELETE
                self.sandbox.remove_fault(fault_id)
        self.fault_ids = []

    def _attempts(self, **filters: Any) -> list[dict[str, Any]]:
        """Delivery attempts of this run's events, to its own subscription when it made one,
        matching ``filters``. Only attempts not fetched before are asked for: a storm's
        checks poll while thousands are journaled, and the sandbox must keep delivering."""
        scope = {} if self.webhook_id is None else {"webhook_id": self.webhook_id}
        while True:
            fresh = self.sandbox.deliveries(**scope, since_seq=self._fetched_seq)
            self._fetched.extend(fresh)
            if fresh:
                self._fetched_seq = fresh[-1]["seq"]
            if len(fresh) < outbox.ATTEMPTS_PAGE:
                break
        mine = set(self.events)
        return [
            a
            for a in self._fetched
            if a["event_id"] in mine and all(a[k] == v for k, v in filters.items())
        ]

    # ---- setup -----------------------------------------------------------------------------

    def _build_world(self, world: dict[str, Any]) -> None:
        """Create the scenario's resources through the Partner API as the platform partner."""
        if not world:
            return
        auth = {"Authorization": f"Bearer {self.sandbox.token()}"}
        for site in world.get("sites", []):
            dealer = site.get("dealer_id", 1001)
            body = {k: v for k, v in site.items() if k not in ("dealer_id", "devices")}
            path = f"/partner/v1/dealers/{dealer}/sites"
            response = self.sandbox.request("POST", path, json=body, headers=auth, timeout=10)
            if response.status_code != 201:
                raise SandboxError(f"world: creating site {body}: {response.text}")
            if site.get("devices"):
                self.sandbox.request(
                    "POST",
                    f"{path}/{response.json()['site_id']}/devices",
                    json=site["devices"],
                    headers=auth,
                    timeout=10,
                ).raise_for_status()

    # ---- steps -----------------------------------------------------------------------------

    def _emit_call(self, body: dict[str, Any], save_as: str | None = None) -> str:
        answer = self.sandbox.call(
            "POST", "/_sandbox/events", {k: v for k, v in body.items() if v is not None}
        )
        ids = [e["event_id"] for e in answer["events"]]
        self.due.update({e["event_id"]: e["at"] for e in answer["events"]})
        self.events += ids
        self.last_events = ids
        if save_as:
            self.saved[save_as] = _emitted(answer)
        return f"{len(ids)} event(s)"

    def _journal_mark(self) -> None:
        self.mark = int(self.sandbox.call("GET", "/_sandbox/journal")["last_seq"])

    def _emit(self, args: dict[str, Any]) -> str:
        self._journal_mark()
        if "lifecycle" in args:
            body = {"lifecycle": args["lifecycle"], "variant": args.get("variant")}
        else:
            body = {"type": args["type"], "repeat": args.get("repeat"), "rate": args.get("rate")}
        return self._emit_call(
            {**body, "data": args.get("data"), "seed": args.get("seed")}, args.get("save_as")
        )

    def _random(self, args: dict[str, Any]) -> str:
        self._journal_mark()
        return self._emit_call(
            {
                "random": args["count"],
                "types": args.get("types"),
                "seed": args.get("seed"),
                "rate": args.get("rate"),
            }
        )

    def _advance(self, seconds: float) -> str:
        now = self.sandbox.clock.advance(seconds)
        return f"clock at {now:.0f}"

    def _wait(self, seconds: float) -> str:
        time.sleep(seconds / self.speed)
        return f"waited {seconds / self.speed:.2f} s"

    def _fault(self, args: dict[str, Any]) -> str:
        notes = []
        if set(args) - {"inbound"}:
            if self.faults is None:
                self.faults = self.sandbox.webhook_chaos()
            knobs = self.sandbox.webhook_chaos(**{k: v for k, v in args.items() if k != "inbound"})
            notes.append(", ".join(f"{k}={v}" for k, v in knobs.items() if k in args))
        if "inbound" in args:
            rule = self.sandbox.fault(**args["inbound"])
            self.fault_ids.append(rule["id"])
            notes.append(f"inbound rule {rule['id']}")
        return "; ".join(notes)

    def _partner(self) -> tuple[str, str | None]:
        client_id, secret = self.client
        if client_id is None:
            partner = self.sandbox.partner
            return partner["client_id"], partner["client_secret"]
        return client_id, secret

    def _dealer_admin_token(self, user: str | None) -> str:
        """Sign a dealer admin in at /authorize (login_hint) and exchange the code."""
        client_id, secret = self._partner()
        credentials = self.sandbox.credentials
        chosen = next(
            (
                u
                for u in credentials["users"]
                if user in (None, u["email"], u["user_id"], str(u["dealer_id"]))
            ),
            None,
        )
        if chosen is None:
            emails = ", ".join(u["email"] for u in credentials["users"])
            raise StepFailed(f"no dealer admin {user!r}; users: {emails}")
        registered: dict[str, Any] = next(
            (c for c in credentials["clients"] if c["client_id"] == client_id), {}
        )
        redirects = registered.get("redirect_uris") or []
        if not redirects:
            raise StepFailed(f"client {client_id} has no redirect_uris for the dealer sign-in")
        grant = self.sandbox.request(
            "GET",
            "/authorize",
            params={
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirects[0],
                "scope": "openid",
                "login_hint": chosen["email"],
            },
            timeout=10,
        )
        code = parse_qs(urlsplit(grant.headers.get("location", "")).query).get("code")
        if grant.status_code != 302 or not code:
            raise StepFailed(f"dealer sign-in failed: {grant.status_code} {grant.text[:200]}")
        tokens = self.sandbox.request(
            "POST",
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code[0],
                "redirect_uri": redirects[0],
                "client_id": client_id,
                "client_secret": secret or "",
            },
            timeout=10,
        )
        if tokens.status_code != 200:
            raise StepFailed(f"code exchange failed: {tokens.text[:200]}")
        return str(tokens.json()["access_token"])

    def _call(self, args: dict[str, Any]) -> str:
        who = args.get("as", "partner")
        if who == "api_key":
            credential = self.sandbox.api_key
        elif who == "dealer_admin":
            credential = self._dealer_admin_token(args.get("user"))
        else:
            credential = self.sandbox.token(*self._partner())
        response = self.sandbox.request(
            args["method"],
            args["path"],
            json=args.get("json"),
            headers={"Authorization": f"Bearer {credential}"},
            timeout=10,
        )
        if args.get("save_as") and response.content:
            self.saved[args["save_as"]] = response.json()
        expected = args.get("expect_status")
        if expected is not None and response.status_code != expected:
            raise StepFailed(
                f"{args['method']} {args['path']} answered "
                f"{response.status_code}, expected {expected}: {response.text[:300]}"
            )
        if expected is None and response.status_code >= 400:
            raise StepFailed(
                f"{args['method']} {args['path']} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        return f"{response.status_code}"

    def _matches(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        match = {k: v for k, v in args.items() if k in ("json", "headers", "query", "status")}
        return [
            e
            for e in self.sandbox.requests(since_seq=self.mark)
            if not request_differences(e, args.get("method"), args.get("path"), match)
        ]

    def _expect_request(self, args: dict[str, Any]) -> str:
        within = args.get("within", DEFAULT_WITHIN)
        times = args.get("times")
        deadline = time.monotonic() + within
        while True:
            hits = self._matches(args)
            enough = len(hits) >= (times or 1)
            if enough or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if len(hits) != times if times is not None else not hits:
            want = f"{times} time(s)" if times is not None else "at least once"
            seen = [describe(e) for e in self.sandbox.requests(since_seq=self.mark)[-5:]]
            raise StepFailed(
                f"expected {args.get('method', 'a request')} {args.get('path', '')} "
                f"{want} within {within:g} s, saw {len(hits)}; latest: "
                f"{'; '.join(seen) or 'no requests at all'}"
            )
        return f"{len(hits)} matching request(s)"

    def _expect_no_request(self, args: dict[str, Any]) -> str:
        time.sleep(args.get("within", 1.0) / self.speed)
        hits = self._matches(args)
        if hits:
            first = hits[0]
            raise StepFailed(
                f"expected no {args.get('method', 'request')} "
                f"{args.get('path', '')}, saw {len(hits)}: first {describe(first)}"
            )
        return "none, as expected"

    def _expect_delivery(self, args: dict[str, Any]) -> str:
        """Every event of the last emit that is due by now was answered as expected."""
        within = args.get("within", DEFAULT_WITHIN)
        if not self.last_events:
            raise StepFailed("expect_delivery needs an emit step before it")
        now = self.sandbox.clock.now()
        wanted = [e for e in self.last_events if self.due.get(e, 0.0) <= now]
        deadline = time.monotonic() + within
        while True:
            by_event: dict[str, list[dict[str, Any]]] = {}
            for attempt in self._attempts():
                by_event.setdefault(attempt["event_id"], []).append(attempt)
            missing = [
                e for e in wanted if not any(_answered(a, args) for a in by_event.get(e, []))
            ]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if missing:
            seen = (
                "; ".join(describe_attempt(a) for a in by_event.get(missing[0], [])[-3:])
                or "no attempt yet"
            )
            raise StepFailed(
                f"{len(missing)} of {len(wanted)} event(s) not answered as expected "
                f"within {within:g} s; {missing[0]}: {seen}"
            )
        return f"{len(wanted)} event(s) answered as expected"

    def _expect_alarm(self, args: dict[str, Any]) -> str:
        """The record shows what the partner's service did to the alarm (the check is
        ``Sandbox.expect_alarm``'s; a miss raises with the alarm and its audit trail)."""
        options = {
            k: args[k] for k in ("state", "annotated", "verdict", "by", "within") if k in args
        }
        alarm = self.sandbox.expect_alarm(str(args["alarm"]), **options)
        notes = alarm.get("annotations") or []
        return f"alarm {alarm['alarm_id']} is {alarm['state']}, {len(notes)} annotation(s)"

    def _expect_event(self, args: dict[str, Any]) -> str:
        """An event came into CHeKT (a bridge post, a Partner Event API call) since the run
        began, and the alarm it raised is in ``state`` when one is named (the wait is
        ``Sandbox.expect_event``'s)."""
        options = {k: args[k] for k in ("channel", "event_type", "state") if k in args}
        event = self.sandbox.expect_event(
            args.get("source"),
            within=args.get("within", DEFAULT_WITHIN),
            since_seq=self.inbound_start,
            **options,
        )
        if args.get("save_as"):
            self.saved[args["save_as"]] = event
        alarm = event.get("alarm")
        made = f", alarm {alarm['alarm_id']} {alarm['state']}" if alarm else ""
        return f"{event['source']} event #{event['seq']} on channel {event['channel']}{made}"

    def _inbound_mark(self) -> int:
        """The newest inbound event's seq: expect_event looks only after it."""
        newest = 0
        while True:
            page = self.sandbox.inbound(since_seq=newest, limit=INBOUND_PAGE)
            if page:
                newest = page[-1]["seq"]
            if len(page) < INBOUND_PAGE:
                return newest

    def _adversarial(self, args: dict[str, Any]) -> str:
        if not self.callback:
            raise StepFailed("adversarial steps need the partner's --callback URL")
        kind = args["kind"]
        expect = args.get(
            "expect",
            "accept" if kind in ("replayed_event", "duplicate", "out_of_order") else "reject",
        )
        self._journal_mark()
        try:
            answers = attack(
                kind,
                self.callback,
                self.secret,
                args.get("event_type", "alarm.created"),
                self.sandbox.clock.now(),
            )
        except httpx.ConnectError:
            raise StepFailed(f"{kind}: connection refused by {self.callback}") from None
        statuses = [r.status_code for r in answers]
        wanted = range(200, 300) if expect == "accept" else range(400, 500)
        wrong = [r for r in answers if r.status_code not in wanted]
        if wrong:
            body = " ".join(wrong[0].text.split())[:200]
            raise StepFailed(
                f"{kind}: the receiver answered {statuses}, expected it to {expect}; "
                f"first wrong answer: {wrong[0].status_code} {body}".rstrip()
            )
        effect = args.get("side_effect")
        if effect:
            time.sleep(effect.get("within", 1.0) / self.speed)
            hits = self._matches(effect)
            if len(hits) != effect.get("times", 1):
                raise StepFailed(
                    f"{kind}: expected {effect.get('times', 1)} "
                    f"{effect.get('method', '')} {effect.get('path', '')} call(s) as "
                    f"a side effect, saw {len(hits)} (did it dedupe?)"
                )
        return f"{kind}: answered {statuses}"

    def _check(self, args: dict[str, Any]) -> str:
        """Checks on the journal; deliveries still in flight get a few seconds to land."""
        deadline = time.monotonic() + DEFAULT_WITHIN
        while True:
            try:
                return self._check_once(args)
            except StepFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _check_once(self, args: dict[str, Any]) -> str:
        notes = []
        if "requests" in args:
            notes.append(self._check_requests(args["requests"]))
        if "deliveries" in args:
            notes.append(self._check_deliveries(args["deliveries"]))
        if "latency" in args:
            notes.append(self._check_latency(args["latency"]))
        return "; ".join(notes)

    def _check_requests(self, rules: dict[str, Any]) -> str:
        match = {"status": rules["status"]} if "status" in rules else {}
        hits = [
            e
            for e in self.sandbox.requests(since_seq=self.start)
            if not request_differences(e, rules.get("method"), rules.get("path"), match)
        ]
        _bounds("requests", len(hits), rules)
        return f"{len(hits)} request(s)"

    def _check_deliveries(self, rules: dict[str, Any]) -> str:
        attempts = self._attempts(**({"outcome": rules["outcome"]} if "outcome" in rules else {}))
        _bounds("deliveries", len(attempts), rules)
        if rules.get("every_event"):
            covered = {a["event_id"] for a in attempts}
            missing = [e for e in self.events if e not in covered]
            if missing:
                raise StepFailed(
                    f"{len(missing)} event(s) have no such delivery, e.g. {missing[0]}"
                )
        return f"{len(attempts)} attempt(s)"

    def _check_latency(self, rules: dict[str, Any]) -> str:
        firsts = [a for a in self._attempts() if a["attempt"] == 1]
        if not firsts:
            raise StepFailed("no deliveries to measure")
        latencies = sorted(
            (a["sent_at"] - a["scheduled_at"]) * 1000 + (a["latency_ms"] or 0) for a in firsts
        )
        figures = {
            "p50_ms": statistics.median(latencies),
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "max_ms": latencies[-1],
        }
        self.metrics.update({f"delivery_{k}": round(v, 2) for k, v in figures.items()})
        for name, limit in rules.items():
            if figures[name] > limit:
                raise StepFailed(
                    f"delivery latency {name} is {figures[name]:.1f} ms, above {limit} ms"
                )
        return ", ".join(f"{k} {v:.1f}" for k, v in figures.items())


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][\w.]*)\}")


def _lookup(saved: dict[str, Any], dotted: str) -> Any:
    value: Any = saved
    for part in dotted.split("."):
        if isinstance(value, list) and part.isascii() and part.isdigit():
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(f"${{{dotted}}}: nothing saved under that name (use save_as)")
    return value


def _substitute(value: Any, saved: dict[str, Any]) -> Any:
    """Replace ``${name.field}`` with values saved by earlier ``call`` steps. A string that is
    only a placeholder takes the saved value's own type (so ids stay integers)."""
    if isinstance(value, dict):
        return {k: _substitute(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, saved) for v in value]
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return _lookup(saved, whole.group(1))
        return _PLACEHOLDER.sub(lambda m: str(_lookup(saved, m.group(1))), value)
    return value


def _emitted(answer: dict[str, Any]) -> dict[str, Any]:
    """What ``emit: {save_as: name}`` keeps: ``${name.alarm_id}`` (the alarm the first event
    is about), ``${name.event_ids.0}``, ``${name.events.0.type}`` …"""
    saved = {"event_ids": answer["event_ids"], "events": answer["events"]}
    alarm_ids = [e["alarm_id"] for e in answer["events"] if e.get("alarm_id")]
    return {**saved, "alarm_id": alarm_ids[0]} if alarm_ids else saved


def _answered(attempt: dict[str, Any], args: dict[str, Any]) -> bool:
    """Whether one attempt is the answer an expect_delivery step wants."""
    if "attempt" in args and attempt["attempt"] != args["attempt"]:
        return False
    status = attempt["status_code"]
    if args.get("rejected"):
        return status is not None and 400 <= status < 500
    if "status" in args and status != args["status"]:
        return False
    if "outcome" in args:
        return bool(attempt["outcome"] == args["outcome"])
    return "status" in args or attempt["outcome"] == "delivered"


def _bounds(what: str, count: int, rules: dict[str, Any]) -> None:
    if "count" in rules and count != rules["count"]:
        raise StepFailed(f"expected {rules['count']} {what}, found {count}")
    if "min" in rules and count < rules["min"]:
        raise StepFailed(f"expected at least {rules['min']} {what}, found {count}")
    if "max" in rules and count > rules["max"]:
        raise StepFailed(f"expected at most {rules['max']} {what}, found {count}")
