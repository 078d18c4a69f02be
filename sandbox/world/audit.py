"""The audit log: every change to the record, with who made it, through which surface and
under which request id (CHeKT logs "every action with the app name and the request ID").

An :class:`Actor` travels with each domain call; the row is written in the same transaction
as the change it describes, so the log and the record never disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sandbox.store import Row
from sandbox.world.context import World

ACTOR_KINDS = ("app", "client", "user", "operator", "sandbox", "device")
SURFACES = ("v1", "dealer", "partner", "control", "schedule", "seed", "event_api", "bridge")


@dataclass(frozen=True)
class Actor:
    """Who did something: an app's key, a partner's client, a signed-in user, a simulated
    operator or the sandbox's own control API."""

    kind: str
    id: str
    surface: str
    name: str | None = None
    request_id: str | None = None

    def dumps(self) -> str:
        return self._text

    @cached_property
    def _text(self) -> str:  # made once: a batch logs thousands of happenings by one actor
        fields = (self.kind, self.id, self.surface, self.name, self.request_id)
        return json.dumps(dict(zip(_FIELDS, fields, strict=True)), separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | None) -> Actor:
        return cls(**json.loads(text)) if text else SANDBOX


_FIELDS = ("kind", "id", "surface", "name", "request_id")
SANDBOX = Actor("sandbox", "sandbox", "control", "the sandbox's control API")
SEED = Actor("sandbox", "seed", "seed", "the seeded history")


def entry(
    world: World,
    actor: Actor,
    action: str,
    target: str,
    *,
    dealer_id: int | None,
    event_id: str | None = None,
    at: float | None = None,
) -> Row:
    """An audit row, for :func:`write` or for a batch written together
    (:class:`sandbox.world.events.Journal`)."""
    return {
        "at": world.now() if at is None else at,
        "dealer_id": dealer_id,
        "actor_kind": actor.kind,
        "actor_id": actor.id,
        "actor_name": actor.name,
        "surface": actor.surface,
        "action": action,
        "target": target,
        "event_id": event_id,
        "request_id": actor.request_id,
    }


def write(
    world: World,
    actor: Actor,
    action: str,
    target: str,
    *,
    dealer_id: int | None,
    event_id: str | None = None,
    at: float | None = None,
) -> None:
    world.store.insert(
        "audit", entry(world, actor, action, target, dealer_id=dealer_id, event_id=event_id, at=at)
    )


AUDIT_FILTERS = ("dealer_id", "actor_kind", "actor_id", "surface", "action", "target")


def entries(world: World, filters: dict[str, Any], after: int = 0, limit: int = 1000) -> list[Row]:
    """Audit rows after ``after`` (their ``seq``), oldest first, matching ``filters``."""
    assert set(filters) <= set(AUDIT_FILTERS), filters  # names are checked by the surfaces
    where = " AND ".join([*(f"{name} = ?" for name in filters), "seq > ?"])
    rows = world.store.all(
        f"SELECT * FROM audit WHERE {where} ORDER BY seq LIMIT ?",
        [*filters.values(), after, limit],
    )
    return [{**row, "at": world.stamp(row["at"])} for row in rows]
