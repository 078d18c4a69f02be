"""The record half of ``Sandbox``: read the alarms and the audit log, make an app's API key,
and assert on what a partner's service did to CHeKT (``expect_alarm``) and on the events it
sent into CHeKT (``expect_event``, ``bridge_posts``), not only on what it sent. A thin client
of ``/_sandbox/alarms``, ``/_sandbox/audit``, ``/_sandbox/api-keys`` and ``/_sandbox/inbound``.

The check itself (:class:`AlarmExpectation`) is pure: the client polls the record and the
expectation judges one reading, so a scenario step and a Python test judge alike.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sandbox.client_calls import ControlCalls
from sandbox.errors import ExpectationFailed
from sandbox.logs import printable
from sandbox.world.alarms import MOVES, STATES, VERDICTS

# the audit action that puts an alarm in each state
ACTION_FOR = {"created": "alarm.created", **{state: event for event, (state, _) in MOVES.items()}}
ANNOTATED = "alarm.annotated"
POLL = 0.05  # seconds between two readings of the record


def acted(entry: Mapping[str, Any], by: str) -> bool:
    """Whether an audit entry was made by ``by``: an actor id (a client id, a user id), the
    name it acted under (a user's client), or a kind of actor (``app``, ``operator`` …)."""
    return by in (entry.get("actor_id"), entry.get("actor_name"), entry.get("actor_kind"))


def actor(entry: Mapping[str, Any]) -> str:
    return f"{entry['actor_kind']} {entry['actor_id']}"


@dataclass(frozen=True)
class AlarmExpectation:
    """What an alarm should look like: exactly in ``state``, annotated (with ``verdict``) or
    not, and moved (and annotated) by ``by``. ``verdict`` implies ``annotated``."""

    state: str | None = None
    annotated: bool | None = None
    verdict: str | None = None
    by: str | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {self.state!r}")
        if self.verdict is not None and self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {self.verdict!r}")
        if self.verdict is not None:
            if self.annotated is False:
                raise ValueError("a verdict needs an annotation: drop annotated=False")
            object.__setattr__(self, "annotated", True)

    def __str__(self) -> str:
        """``acknowledged and annotated (intruder) by app``: what was expected, for a
        message."""
        parts = [self.state] if self.state else []
        if self.annotated:
            parts.append(f"annotated ({self.verdict})" if self.verdict else "annotated")
        elif self.annotated is False:
            parts.append("not annotated")
        by = f" by {self.by}" if self.by and (self.state or self.annotated) else ""
        return " and ".join(parts) + by if parts else "there"

    def problems(self, alarm: Mapping[str, Any], trail: Sequence[Mapping[str, Any]]) -> list[str]:
        """Why ``alarm`` (with its audit ``trail``, oldest first) is not as expected."""
        found = self._state_problems(alarm, trail)
        notes = list(alarm.get("annotations") or [])
        if self.annotated is False and notes:
            found.append(f"it has {len(notes)} annotation(s)")
        if self.annotated:
            found += self._note_problems(notes, trail)
        return found

    def _state_problems(
        self, alarm: Mapping[str, Any], trail: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        if self.state is None:
            return []
        if alarm["state"] != self.state:
            return [f"it is {alarm['state']}"]
        if self.by is None:
            return []
        action = ACTION_FOR[self.state]
        moves = [t for t in trail if t["action"] == action]
        if not moves:
            return [f"the audit log has no {action} for it"]
        if not acted(moves[-1], self.by):
            return [f"{action} was made by {actor(moves[-1])}"]
        return []

    def _note_problems(
        self, notes: list[Mapping[str, Any]], trail: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        if not notes:
            return ["it has no annotation"]
        fitting = [n for n in notes if self.verdict in (None, n["verdict"])]
        if not fitting:
            verdicts = ", ".join(str(n["verdict"]) for n in notes)
            return [f"no annotation has verdict {self.verdict} (verdicts: {verdicts})"]
        if self.by is None or any(n.get("author") == self.by for n in fitting):
            return []
        if any(t["action"] == ANNOTATED and acted(t, self.by) for t in trail):
            return []
        authors = ", ".join(sorted({str(n.get("author")) for n in fitting}))
        return [f"it was annotated by {authors}"]


def describe_alarm(alarm: Mapping[str, Any], trail: Sequence[Mapping[str, Any]]) -> str:
    """An alarm as a failure message shows it: its state, annotations and audit trail."""
    lines = [
        f"alarm {alarm['alarm_id']}: {alarm['state']} (site {alarm['site_id']}, device "
        f"{alarm.get('device_id') or '-'}, {alarm['priority']} {alarm['trigger']}), created "
        f"{alarm['created_at']}, updated {alarm['updated_at']}"
    ]
    notes = alarm.get("annotations") or []
    lines.append("  annotations:" + ("" if notes else " none"))
    for note in notes:
        confidence = f" {note['confidence']}" if note.get("confidence") is not None else ""
        lines.append(
            f"    {note['created_at']}  {note['verdict']}{confidence} from {note['source']} "
            f"by {note.get('author') or '-'}" + (f": {note['note']}" if note.get("note") else "")
        )
    lines.append("  audit trail:" + ("" if trail else " empty"))
    for entry in trail:
        lines.append(
            f"    {entry['at']}  {entry['action']:<22} by {actor(entry)} via {entry['surface']}"
            + (f" ({entry['request_id']})" if entry.get("request_id") else "")
        )
    return printable("\n".join(lines), lines=True)


class RecordCalls(ControlCalls):
    """Mixed into ``Sandbox``, whose ``call`` reaches the control API."""

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        raise NotImplementedError  # pragma: no cover - Sandbox provides it

    @property
    def credentials(self) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - Sandbox provides it

    @property
    def bridges(self) -> list[dict[str, Any]]:
        """Every bridge: ``bridge_id``, ``dealer_id``, ``site_id``, ``channels``, ``url`` (the
        bridges' local API) and ``api_token``, plus the Event API's ids of its site and
        cameras."""
        return list(self.credentials["bridges"])

    def bridge_posts(
        self, channel: int | str | None = None, **filters: Any
    ) -> list[dict[str, Any]]:
        """Journal entries of events posted to the bridges' local API (accepted or not), on
        ``channel`` when given (sent as a number or a string alike)."""
        posts = self.requests(surface="bridge", path="/api/v1/events", method="POST", **filters)
        if channel is None:
            return posts
        return [p for p in posts if _channel_of(p.get("body")) == str(channel).strip()]

    def alarms(self, **filters: Any) -> list[dict[str, Any]]:
        """Alarms of every dealer, newest first; filters: ``state``, ``site_id``, ``dealer_id``,
        ``device_id``, ``priority``, ``limit``, ``offset``."""
        return list(self.call("GET", "/_sandbox/alarms", params=filters))

    def alarm(self, alarm_id: str) -> dict[str, Any]:
        """One alarm as the record holds it: state, the time of each step, annotations."""
        return dict(self.call("GET", f"/_sandbox/alarms/{quote(str(alarm_id), safe='')}"))

    def audit(self, **filters: Any) -> list[dict[str, Any]]:
        """Audit entries, oldest first; filters: ``target`` (``"alarm A-10293"``),
        ``actor_id``, ``actor_kind``, ``action``, ``surface``, ``dealer_id``, ``since_seq``,
        ``limit``."""
        return list(self.call("GET", "/_sandbox/audit", params=filters))

    def create_api_key(
        self,
        dealer_id: int,
        scopes: Sequence[str],
        name: str | None = None,
        webhook: str | Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new app with one key for ``dealer_id``: ``{key, client_id, scopes, ...}``.
        ``webhook`` (a URL, or ``{url, events, secret, profile}``) subscribes the app; it
        hears what its scopes allow."""
        body: dict[str, Any] = {"dealer_id": dealer_id, "scopes": list(scopes)}
        if name is not None:
            body["name"] = name
        if webhook is not None:
            body["webhook"] = {"url": webhook} if isinstance(webhook, str) else dict(webhook)
        return dict(self.call("POST", "/_sandbox/api-keys", body))

    def expect_alarm(
        self,
        alarm_id: str,
        *,
        state: str | None = None,
        within: float = 30.0,
        annotated: bool | None = None,
        by: str | None = None,
        verdict: str | None = None,
    ) -> dict[str, Any]:
        """Wait up to ``within`` seconds (wall time, as every wait here: a virtual clock only
        moves when told) until the alarm is exactly in ``state``, is annotated (with an
        annotation of ``verdict``) or not, and its move and annotation were made by ``by`` (a
        client or user id, or a kind of actor such as ``app``); returns the alarm. Raises
        :class:`ExpectationFailed` showing its state, annotations and audit trail."""
        expected = AlarmExpectation(state, annotated, verdict, by)
        alarm_id = str(alarm_id)
        deadline = time.monotonic() + within
        while True:
            alarm = self.alarm(alarm_id)
            trail = self.audit(target=f"alarm {alarm_id}", limit=1000) if by else []
            problems = expected.problems(alarm, trail)
            if not problems:
                return alarm
            if time.monotonic() >= deadline:
                trail = trail or self.audit(target=f"alarm {alarm_id}", limit=1000)
                raise ExpectationFailed(
                    f"alarm {alarm_id} was not {expected} within {within:g} s: "
                    f"{'; '.join(problems)}\n{describe_alarm(alarm, trail)}"
                )
            time.sleep(POLL)

    def inbound(self, **filters: Any) -> list[dict[str, Any]]:
        """Events that came into CHeKT, oldest first; filters: ``source`` (``event_api`` or
        ``bridge``), ``channel``, ``site_id``, ``event_type``, ``since_seq``, ``limit``."""
        return list(self.call("GET", "/_sandbox/inbound", params=filters))

    def expect_event(
        self,
        source: str | None = None,
        *,
        channel: int | None = None,
        event_type: str | None = None,
        within: float = 5.0,
        since_seq: int = 0,
        state: str | None = None,
    ) -> dict[str, Any]:
        """Wait up to ``within`` seconds until an event came in (from ``source``, on
        ``channel``, of ``event_type``, after ``since_seq``); returns the first such, with
        the alarm it raised under ``alarm``. ``state``: that alarm must also be (or become,
        within the same time) exactly in this state."""
        filters = {
            k: v
            for k, v in (("source", source), ("channel", channel), ("event_type", event_type))
            if v is not None
        }
        deadline = time.monotonic() + within
        while True:
            found = self.inbound(since_seq=since_seq, limit=1, **filters)
            if found:
                break
            if time.monotonic() >= deadline:
                seen = self.inbound(since_seq=since_seq)[-5:]
                latest = "; ".join(
                    f"#{e['seq']} {e['source']} channel {e['channel']} {e['event_type']}"
                    for e in seen
                )
                raise ExpectationFailed(
                    f"no inbound event matching {filters or 'anything'} within {within:g} s; "
                    f"latest: {latest or 'none came in'}"
                )
            time.sleep(POLL)
        event = dict(found[0])
        alarm_id = event.get("alarm_id")
        if state is not None and alarm_id is None:
            raise ExpectationFailed(f"inbound event #{event['seq']} raised no alarm")
        if alarm_id is not None:
            left = max(0.0, deadline - time.monotonic())
            event["alarm"] = (
                self.expect_alarm(alarm_id, state=state, within=left)
                if state is not None
                else self.alarm(alarm_id)
            )
        return event


def _channel_of(body: Any) -> str | None:
    channel = body.get("target_channel") if isinstance(body, Mapping) else None
    return None if channel is None or isinstance(channel, bool) else str(channel).strip()
