"""The judging half of ``Sandbox``: the report card of the partner's client and receiver,
coverage of the documented surface, and the forged delivery the card's
``signature_checked`` needs. A thin client of ``/_sandbox/report``, ``/_sandbox/coverage``
and ``/_sandbox/subscriptions/{webhook_id}/forged``.

    sandbox.forge_delivery(webhook_id)      # a 2xx back: the receiver does not verify
    card = sandbox.report()
    assert card["ok"], [f for f in card["findings"] if f["ok"] is False]
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sandbox.client_calls import ControlCalls


def _filters(client_id: str | None, since_seq: int | None, since: float | None) -> dict[str, Any]:
    given = {"client_id": client_id, "since_seq": since_seq, "since": since}
    return {name: value for name, value in given.items() if value is not None}


class InsightCalls(ControlCalls):
    """Mixed into ``Sandbox``, whose ``call`` reaches the control API."""

    def report(
        self,
        client_id: str | None = None,
        *,
        since_seq: int | None = None,
        since: float | None = None,
    ) -> dict[str, Any]:
        """The report card: ``{"ok", "failed", "passed", "findings": [{"id", "ok", "title",
        "detail", "evidence", "attempts"}]}``; ``ok`` of a finding is None when nothing in
        the traffic could judge it."""
        params = _filters(client_id, since_seq, since)
        return dict(self.call("GET", "/_sandbox/report", params=params))

    def finding(self, finding_id: str, **filters: Any) -> dict[str, Any]:
        """One finding of the report card, by id (``token_reuse``, ``retry_after``, ...)."""
        for found in self.report(**filters)["findings"]:
            if found["id"] == finding_id:
                return dict(found)
        raise KeyError(finding_id)

    def coverage(
        self,
        client_id: str | None = None,
        *,
        since_seq: int | None = None,
        since: float | None = None,
    ) -> dict[str, Any]:
        """Which documented operations (``operations``, ``covered`` of ``total``), event
        types, error codes and auth tiers the traffic exercised."""
        params = _filters(client_id, since_seq, since)
        return dict(self.call("GET", "/_sandbox/coverage", params=params))

    def forge_delivery(self, webhook_id: str) -> dict[str, Any]:
        """Send the subscription its latest delivery again, signed with a wrong secret;
        the attempt, with ``verdict`` accepted (2xx), refused (4xx) or no_verdict."""
        path = f"/_sandbox/subscriptions/{quote(webhook_id, safe='')}/forged"
        return dict(self.call("POST", path))
