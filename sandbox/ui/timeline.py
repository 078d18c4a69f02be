"""The Deliveries view's geometry: each recent event, one lane per delivery, each attempt a
mark placed on the event's own time axis (sandbox clock), and the next scheduled retry.
Positions are SVG attributes, not inline styles, so the strict CSP holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.store import Row
from sandbox.webhooks import outbox
from sandbox.world import World

EVENTS = 30  # events shown
WIDTH = 640
LEFT = 12
RIGHT = 12
LANE = 22
MIN_SPAN = 60.0  # seconds an axis spans at least
OUTCOME_CLASS = {"delivered": "ok", "failed": "fail", "timeout": "fail"}


def _x(at: float, start: float, span: float) -> float:
    return round(LEFT + (at - start) / span * (WIDTH - LEFT - RIGHT), 1)


def timelines(
    world: World, view: Callable[[Row], dict[str, Any]], limit: int = EVENTS
) -> list[dict[str, Any]]:
    """What the template draws, newest event first; ``view`` exports an attempt (redacted,
    as ``GET /_sandbox/deliveries`` does)."""
    events = outbox.recent_events(world, limit)
    if not events:
        return []
    deliveries = outbox.deliveries_of(world, [e["event_id"] for e in events])
    attempts = outbox.attempts_of(world, [d["delivery_id"] for d in deliveries])
    by_delivery: dict[str, list[dict[str, Any]]] = {}
    for row in attempts:
        by_delivery.setdefault(row["delivery_id"], []).append(view(row))
    lanes: dict[str, list[Row]] = {}
    for delivery in deliveries:
        lanes.setdefault(delivery["event_id"], []).append(delivery)
    return [_event(event, lanes.get(event["event_id"], []), by_delivery) for event in events]


def _event(
    event: Row, deliveries: list[Row], by_delivery: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    start = min([float(event["created_at"]), *(float(d["first_at"]) for d in deliveries)])
    times = [start + MIN_SPAN]
    for delivery in deliveries:
        times += [a["sent_at"] for a in by_delivery.get(delivery["delivery_id"], [])]
        if delivery["state"] == "pending" and delivery["next_at"] is not None:
            times.append(float(delivery["next_at"]))
    end = max(times)
    span = end - start
    lanes = []
    for index, delivery in enumerate(deliveries):
        y = LANE // 2 + index * LANE
        tried = by_delivery.get(delivery["delivery_id"], [])
        marks = [
            {
                "x": _x(a["sent_at"], start, span),
                "y": y,
                "kind": OUTCOME_CLASS.get(a["outcome"], "other"),
                "attempt": a,
            }
            for a in tried
        ]
        pending = delivery["state"] == "pending" and delivery["next_at"] is not None
        lanes.append(
            {
                "delivery": dict(delivery),
                "y": y,
                "url": tried[-1]["url"] if tried else None,
                "marks": marks,
                "next": {"x": _x(float(delivery["next_at"]), start, span), "y": y}
                if pending
                else None,
            }
        )
    return {
        "event": dict(event),
        "start": start,
        "end": end,
        "width": WIDTH,
        "height": max(LANE, LANE * len(deliveries)),
        "lanes": lanes,
    }
