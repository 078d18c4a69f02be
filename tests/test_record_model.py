"""A stateful model of the operational record: alarms driven at random through every door.

Hypothesis mixes emitted happenings (``POST /_sandbox/events``: a new alarm at a site of
dealer 1001 or of another dealer, a move or a verification request about a named alarm, an
unknown one or whichever can take it, a whole lifecycle whose later steps wait on the clock)
with an app's ``/v1`` commands (acknowledge, escalate, annotate, dispatch, resolve), legal or
not. A plain model predicts each answer (2xx, 404, 409) from the state machine of CONTRACT
§5.5, and after every step the four views of the record must agree with it and with each
other: the alarm itself, ``/v1/events``, the audit log, and the signed webhooks the app's
receiver got.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import hypothesis.strategies as st
import pytest
from helpers import Settings, live_server
from hypothesis import settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from one_hop import TestClient
from receiver import Receiver, wait_for

from sandbox import VirtualClock, create_app
from sandbox.auth.clients import APPS_SCOPES
from sandbox.webhooks import verify_signature

START = 1_900_000_000.0
DEALER = 1001
APPS = list(APPS_SCOPES)
SITES = {10001: 1001, 10002: 1001, 10006: 1002, 10011: 1003}  # of the seeded world
A_SITE = st.sampled_from((10001, 10001, 10002, 10006, 10011))  # mostly the app's dealer's
# the happening, the state it leads to, the states it may leave (sandbox/world/alarms.py)
MOVES = {
    "alarm.acknowledged": ("acknowledged", {"created"}),
    "alarm.escalated": ("escalated", {"created", "acknowledged"}),
    "alarm.dispatched": ("dispatched", {"acknowledged", "escalated"}),
    "alarm.resolved": ("resolved", {"created", "acknowledged", "escalated", "dispatched"}),
}
OPEN = {"created", "acknowledged", "escalated", "dispatched"}
MENTION = "verification.requested"  # names an open alarm, moves nothing
EMITTED_MOVES = ("alarm.acknowledged", "alarm.dispatched", "alarm.resolved", MENTION)
UNSENT = {"alarm.escalated"}  # in the record, but CHeKT has no webhook for it
LIFECYCLE = (("alarm.acknowledged", 40), ("alarm.dispatched", 90), ("alarm.resolved", 360))
COMMANDS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "acknowledge": ("alarm.acknowledged", {"reason": "seen on video"}),
    "escalate": ("alarm.escalated", {"reason": "no answer"}),
    "annotate": (None, {"source": "ai", "verdict": "intruder", "confidence": 0.9}),
    "dispatch": ("alarm.dispatched", {"responder_type": "guard"}),
    "resolve": ("alarm.resolved", {"resolution": "handled"}),
}
UNKNOWN = "A-1"  # alarm numbers start at 10001


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Happening:
    event_type: str
    at: float
    event_id: str | None  # None until the record shows it (a /v1 command answers the alarm)


@dataclass
class Alarm:
    alarm_id: str
    number: int
    site_id: int
    dealer_id: int
    born: float
    state: str = "created"
    reached: dict[str, float] = field(default_factory=dict)  # state -> when
    updated: float = 0.0
    happenings: list[Happening] = field(default_factory=list)
    # the audit trail: (action, happening or None, surface); a void step is its own entry
    trail: list[tuple[str, Happening | None, str]] = field(default_factory=list)
    annotations: int = 0


@dataclass
class Scheduled:
    at: float
    order: int
    alarm_id: str
    event_type: str
    event_id: str


@pytest.fixture(scope="module")
def hooks() -> Iterator[tuple[Receiver, str]]:
    rx = Receiver()
    with live_server(rx.app) as url:
        yield rx, url


@pytest.fixture(scope="module")
def sandbox() -> Iterator[TestClient]:
    app = create_app(Settings(webhook_timeout=1.0), clock=VirtualClock(start=START))
    with TestClient(app) as client:
        yield client
    app.state.services.close()


class RecordMachine(RuleBasedStateMachine):
    def __init__(self, client: TestClient, rx: Receiver, url: str) -> None:
        super().__init__()
        self.client, self.rx = client, rx
        assert client.post("/_sandbox/reset").status_code == 200
        self.path = f"/model-{uuid.uuid4().hex[:12]}"
        made = client.post(
            "/_sandbox/api-keys",
            json={"dealer_id": DEALER, "scopes": APPS, "webhook": {"url": url + self.path}},
        )
        assert made.status_code == 201, made.text
        self.app = made.json()
        self.auth = {"Authorization": f"Bearer {self.app['key']}"}
        self.now = float(client.get("/_sandbox/clock").json()["now"])
        self.start = self.now
        newest = client.get("/_sandbox/alarms", params={"limit": 1}).json()[0]
        self.seeded = int(newest["alarm_id"][2:])  # the seeded past is all resolved
        self.numbered = self.seeded  # the highest alarm number (the order they were made in)
        self.handed = self.seeded  # the number in the id last given to an unnamed new alarm
        self.alarms: dict[str, Alarm] = {}
        self.scheduled: list[Scheduled] = []
        self.order = 0
        self.audit_seq = self._audit_tail()
        self.first_seq = self.audit_seq
        self.touched: set[str] = set()
        self.verified: set[tuple[str, str]] = set()  # (event id, delivery id) checked signatures

    # ---- plumbing -------------------------------------------------------------------------

    def call(self, method: str, path: str, status: int, code: str | None = None, **kw: Any) -> Any:
        response = self.client.request(method, path, **kw)
        where = f"{method} {path} {kw.get('json')}: {response.status_code} {response.text}"
        assert response.status_code == status, where
        if code is not None:
            assert response.json()["error"]["code"] == code, where
        return response.json() if response.content else None

    def _audit_tail(self) -> int:
        seq = 0
        while page := self.call("GET", "/_sandbox/audit", 200, params={"since_seq": seq}):
            seq = page[-1]["seq"]
        return seq

    def _new_audit(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.call(
            "GET", "/_sandbox/audit", 200, params={"since_seq": self.audit_seq}
        )
        return rows

    def _next_id(self) -> str:
        """The id an unnamed new alarm gets: after every alarm and every id handed out, and
        past any id a caller named."""
        last = max(self.numbered, self.handed)
        while f"A-{last + 1}" in self.alarms:
            last += 1
        return f"A-{last + 1}"

    def _born(self, site_id: int, event_id: str, alarm_id: str | None = None) -> Alarm:
        if alarm_id is None:
            alarm_id = self._next_id()
            self.handed = int(alarm_id[2:])
        self.numbered += 1
        alarm = Alarm(alarm_id, self.numbered, site_id, SITES[site_id], self.now)
        alarm.reached["created"], alarm.updated = self.now, self.now
        self.alarms[alarm.alarm_id] = alarm
        self._happen(alarm, "alarm.created", event_id, self.now, "control")
        return alarm

    def _happen(
        self, alarm: Alarm, event_type: str, event_id: str | None, at: float, surface: str
    ) -> None:
        happening = Happening(event_type, at, event_id)
        alarm.happenings.append(happening)
        alarm.trail.append((event_type, happening, surface))
        if event_type in MOVES:
            alarm.state = MOVES[event_type][0]
            alarm.reached[alarm.state] = alarm.updated = at
        self.touched.add(alarm.alarm_id)

    def _allows(self, alarm: Alarm, event_type: str) -> bool:
        return alarm.state in (MOVES[event_type][1] if event_type in MOVES else OPEN)

    def _takes(self, alarm: Alarm, event_type: str | None) -> bool:
        """Whether a /v1 command may act on ``alarm`` (None: an annotation)."""
        return alarm.state != "resolved" if event_type is None else self._allows(alarm, event_type)

    def _pick_alarm(self, data: st.DataObject) -> str:
        return str(data.draw(st.sampled_from([UNKNOWN, *sorted(self.alarms)]), label="alarm"))

    # ---- emitted happenings -----------------------------------------------------------

    @rule(site=A_SITE, name=st.sampled_from((None, None, "ahead", "taken")), data=st.data())
    def emit_alarm(self, site: int, name: str | None, data: st.DataObject) -> None:
        """A new alarm; now and then with an id of its own: one the sandbox would hand out
        soon (it must then skip it), or one that is taken (409)."""
        body: dict[str, Any] = {"type": "alarm.created", "data": {"site_id": site}}
        alarm_id = None
        if name == "ahead":
            ahead = data.draw(st.integers(0, 2), label="ahead")
            alarm_id = f"A-{int(self._next_id()[2:]) + ahead}"
        elif name == "taken":
            alarm_id = data.draw(st.sampled_from([f"A-{self.seeded}", *sorted(self.alarms)]))
        if alarm_id is not None:
            body["data"]["alarm_id"] = alarm_id
            if alarm_id in self.alarms or int(alarm_id[2:]) <= self.seeded:
                self.call("POST", "/_sandbox/events", 409, "conflict", json=body)
                return
        [event_id] = self.call("POST", "/_sandbox/events", 202, json=body)["event_ids"]
        self._born(site, event_id, alarm_id)

    @rule(
        event_type=st.sampled_from((*EMITTED_MOVES, "alarm.escalated")),
        how=st.sampled_from(("named", "at a site", "any")),
        seed=st.integers(0, 2**16),
        data=st.data(),
    )
    def emit_move(self, event_type: str, how: str, seed: int, data: st.DataObject) -> None:
        """A move or a verification request, about a named alarm (maybe unknown) or one the
        sandbox picks; ``alarm.escalated`` is the record's, never emitted: always a 422."""
        # seeded: the alarm the sandbox picks is the same when Hypothesis replays a run
        body: dict[str, Any] = {"type": event_type, "data": {}, "seed": seed}
        if how == "named":
            alarm_id = self._pick_alarm(data)
            body["data"]["alarm_id"] = alarm_id
            named = self.alarms.get(alarm_id)
            if event_type == "alarm.escalated":
                self.call("POST", "/_sandbox/events", 422, "validation_failed", json=body)
            elif named is None:
                self.call("POST", "/_sandbox/events", 404, "alarm_not_found", json=body)
            elif not self._allows(named, event_type):
                self.call("POST", "/_sandbox/events", 409, "invalid_transition", json=body)
            else:
                [event_id] = self.call("POST", "/_sandbox/events", 202, json=body)["event_ids"]
                self._happen(named, event_type, event_id, self.now, "control")
            return
        site = data.draw(A_SITE, label="site") if how != "any" else None
        if site is not None:
            body["data"]["site_id"] = site
        able = sorted(
            (a for a in self.alarms.values() if site in (None, a.site_id)),
            key=lambda a: -a.number,
        )
        able = [a for a in able if self._allows(a, event_type)]
        if event_type == "alarm.escalated":
            self.call("POST", "/_sandbox/events", 422, "validation_failed", json=body)
            return
        if not able:
            self.call("POST", "/_sandbox/events", 409, "no_alarm", json=body)
            return
        [event_id] = self.call("POST", "/_sandbox/events", 202, json=body)["event_ids"]
        [entry] = [row for row in self._new_audit() if row["event_id"] == event_id]
        picked = entry["target"].removeprefix("alarm ")
        assert picked in [a.alarm_id for a in able[:20]], (picked, event_type, site)
        self._happen(self.alarms[picked], event_type, event_id, self.now, "control")

    @rule(
        site=A_SITE,
        variant=st.sampled_from(("handled", "false-positive", "escalated")),
    )
    def emit_lifecycle(self, site: int, variant: str) -> None:
        body = {"lifecycle": "alarm", "variant": variant, "data": {"site_id": site}}
        ids = self.call("POST", "/_sandbox/events", 202, json=body)["event_ids"]
        steps = [s for s in LIFECYCLE if not (variant == "false-positive" and s[1] == 90)]
        assert len(ids) == 1 + len(steps), ids
        alarm = self._born(site, ids[0])
        for (event_type, offset), event_id in zip(steps, ids[1:], strict=True):
            self.order += 1
            self.scheduled.append(
                Scheduled(self.now + offset, self.order, alarm.alarm_id, event_type, event_id)
            )

    @precondition(lambda self: self.scheduled)
    @rule(seconds=st.sampled_from((15, 45, 100, 400)))
    def advance(self, seconds: int) -> None:
        moved = self.call("POST", "/_sandbox/clock/advance", 200, json={"seconds": seconds})
        self.now += seconds
        assert moved["now"] == self.now
        due = sorted((s for s in self.scheduled if s.at <= self.now), key=lambda s: (s.at, s.order))
        for step in due:
            self.scheduled.remove(step)
            alarm = self.alarms[step.alarm_id]
            if self._allows(alarm, step.event_type):
                self._happen(alarm, step.event_type, step.event_id, step.at, "schedule")
            else:  # the record no longer allows it: void, audited, never listed or sent
                alarm.trail.append((f"{step.event_type} (void", None, "schedule"))
                self.touched.add(alarm.alarm_id)

    # ---- the app's /v1 commands ------------------------------------------------------

    @precondition(lambda self: any(a.dealer_id == DEALER for a in self.alarms.values()))
    @rule(command=st.sampled_from(sorted(COMMANDS)), data=st.data())
    def command(self, command: str, data: st.DataObject) -> None:
        """A command on one of the app's dealer's alarms: 200, or 409 when the state
        machine does not allow it."""
        event_type, body = COMMANDS[command]
        mine = [alarm for _, alarm in sorted(self.alarms.items()) if alarm.dealer_id == DEALER]
        legal = [alarm for alarm in mine if self._takes(alarm, event_type)]
        refused = [a for a in mine if a.state != "resolved" and a not in legal]  # not history
        pools = {name: p for name, p in (("legal", legal), ("refused", refused)) if p}
        pool = pools[data.draw(st.sampled_from(sorted(pools)))] if pools else mine
        alarm = self.alarms[data.draw(st.sampled_from([a.alarm_id for a in pool]), label="alarm")]
        path = f"/v1/alarms/{alarm.alarm_id}/{command}"
        if not self._takes(alarm, event_type):
            self.call("POST", path, 409, "invalid_transition", json=body, headers=self.auth)
            return
        shown = self.call("POST", path, 200, json=body, headers=self.auth)
        if event_type is None:
            alarm.annotations += 1
            alarm.updated = self.now
            alarm.trail.append(("alarm.annotated", None, "v1"))
            self.touched.add(alarm.alarm_id)
        else:
            self._happen(alarm, event_type, None, self.now, "v1")
        assert shown["state"] == alarm.state and len(shown["annotations"]) == alarm.annotations

    @rule(command=st.sampled_from(sorted(COMMANDS)), data=st.data())
    def command_out_of_reach(self, command: str, data: st.DataObject) -> None:
        """Another dealer's alarm answers exactly as an absent one, and stays as it was."""
        theirs = sorted(a for a, alarm in self.alarms.items() if alarm.dealer_id != DEALER)
        alarm_id = data.draw(st.sampled_from([UNKNOWN, *theirs]), label="alarm")
        path = f"/v1/alarms/{alarm_id}/{command}"
        body = COMMANDS[command][1]
        error = self.call("POST", path, 404, "alarm_not_found", json=body, headers=self.auth)
        assert error["error"]["message"] == f"alarm {alarm_id} was not found"

    # ---- the check after every step -------------------------------------------------------

    @invariant()
    def the_record_agrees(self) -> None:
        self._check_alarms()
        self._check_events()
        self._check_audit()
        self._check_webhooks()
        self.touched.clear()
        assert self.client.app.state.server_errors == []  # type: ignore[attr-defined]

    def _check_alarms(self) -> None:
        newest = {"limit": len(self.alarms) + 1}  # ours, and the last of the seeded past
        listed = self.call("GET", "/_sandbox/alarms", 200, params=newest)
        ours = {a["alarm_id"]: a for a in listed if int(a["alarm_id"][2:]) > self.seeded}
        assert sorted(ours) == sorted(self.alarms) and listed[-1]["alarm_id"] == f"A-{self.seeded}"
        for alarm_id, alarm in self.alarms.items():
            assert ours[alarm_id]["state"] == alarm.state, alarm_id
        for alarm_id in sorted(self.touched):
            alarm = self.alarms[alarm_id]
            path = f"/v1/alarms/{alarm_id}"
            if alarm.dealer_id == DEALER:
                shown = self.call("GET", path, 200, headers=self.auth)
            else:
                self.call("GET", path, 404, "alarm_not_found", headers=self.auth)
                shown = self.call("GET", f"/_sandbox/alarms/{alarm_id}", 200)
            expected = {
                "state": alarm.state,
                "site_id": alarm.site_id,
                "dealer_id": alarm.dealer_id,
                "created_at": stamp(alarm.born),
                "updated_at": stamp(alarm.updated),
                **{
                    f"{state}_at": stamp(alarm.reached[state]) if state in alarm.reached else None
                    for state in ("acknowledged", "escalated", "dispatched", "resolved")
                },
            }
            assert {k: shown[k] for k in expected} == expected, alarm_id
            assert len(shown["annotations"]) == alarm.annotations, alarm_id

    def _check_events(self) -> None:
        """Each of the dealer's alarms' happenings, in order, with their times; an id the
        model did not know yet (a /v1 command's) is learned here and held to from then on."""
        page = self.call(
            "GET",
            "/v1/events",
            200,
            headers=self.auth,
            params={"since": stamp(self.start), "limit": 1000},
        )
        assert not page["page"]["has_more"]
        seen: dict[str, list[dict[str, Any]]] = {}
        for row in page["data"]:
            seen.setdefault(row["data"]["alarm_id"], []).append(row)
        mine = {a.alarm_id: a for a in self.alarms.values() if a.dealer_id == DEALER}
        assert set(seen) == {a for a, alarm in mine.items() if alarm.happenings}
        for alarm_id, listed in seen.items():
            expected = mine[alarm_id].happenings
            got = [(e["type"], e["created_at"]) for e in listed]
            assert got == [(h.event_type, stamp(h.at)) for h in expected], alarm_id
            for row, happening in zip(listed, expected, strict=True):
                if happening.event_id is None:
                    happening.event_id = row["id"]
                assert row["id"] == happening.event_id, alarm_id
        numbers = [e["event_id"] for e in page["data"]]
        assert numbers == sorted(set(numbers))

    def _check_audit(self) -> None:
        """One entry per happening (same event id), per annotation and per void step, and
        nothing else since the example began."""
        since = {"since_seq": self.first_seq, "limit": 1000}
        rows = self.call("GET", "/_sandbox/audit", 200, params=since)
        by_target: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_target.setdefault(row["target"], []).append(row)
        assert set(by_target) == {f"alarm {a}" for a in self.alarms}, sorted(by_target)
        for alarm_id in self.touched:
            asked = self.call("GET", "/_sandbox/audit", 200, params={"target": f"alarm {alarm_id}"})
            assert asked == by_target[f"alarm {alarm_id}"]
        for alarm_id, alarm in self.alarms.items():
            trail = by_target[f"alarm {alarm_id}"]
            assert len(trail) == len(alarm.trail), (alarm_id, trail)
            for row, (action, happening, surface) in zip(trail, alarm.trail, strict=True):
                assert row["action"].startswith(action) and row["surface"] == surface, row
                assert row["dealer_id"] == alarm.dealer_id, row
                if surface == "v1":
                    assert row["actor_id"] == self.app["client_id"], row
                if happening is None:
                    assert (row["event_id"] is None) == (action == "alarm.annotated"), row
                    continue
                if happening.event_id is None:  # another dealer's alarms never move by /v1
                    happening.event_id = row["event_id"]
                assert row["event_id"] == happening.event_id, row
                assert row["at"] == stamp(happening.at), row
        self.audit_seq = rows[-1]["seq"] if rows else self.first_seq

    def _check_webhooks(self) -> None:
        """The app heard exactly the dealer's alarm happenings CHeKT sends, each signed."""
        sent = {
            h.event_id: (a.alarm_id, h)
            for a in self.alarms.values()
            if a.dealer_id == DEALER
            for h in a.happenings
            if h.event_type not in UNSENT
        }
        wait_for(lambda: len(self.rx.at(self.path)) >= len(sent))
        got = self.rx.at(self.path)
        bodies = [json.loads(r.body) for r in got]
        assert Counter(b["id"] for b in bodies) == Counter(list(sent))
        for received, body in zip(got, bodies, strict=True):
            alarm_id, happening = sent[body["id"]]
            assert (body["type"], body["data"]["alarm_id"]) == (happening.event_type, alarm_id)
            assert received.headers["x-chekt-event-id"] == body["id"]
            key = (body["id"], received.headers["x-chekt-delivery-id"])
            if key not in self.verified:
                verify_signature(
                    self.app["webhook"]["secret"],
                    received.headers,
                    received.body,
                    now=happening.at,
                )
                self.verified.add(key)


EXAMPLES = int(os.environ.get("CHEKT_SANDBOX_FUZZ_EXAMPLES", "12"))  # make fuzz: more


def test_the_record_follows_its_model(sandbox: TestClient, hooks: tuple[Receiver, str]) -> None:
    rx, url = hooks
    run_state_machine_as_test(
        lambda: RecordMachine(sandbox, rx, url),
        settings=settings(max_examples=EXAMPLES, stateful_step_count=25, deadline=None),
    )
