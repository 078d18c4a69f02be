"""``Idempotency-Key`` bookkeeping: the first response to (client, method, path, key) is
kept for the configured window and replayed for the same payload; a different payload under
the same key is a 409."""

from __future__ import annotations

import re

from sandbox.errors import Conflict, ValidationFailed
from sandbox.world.context import World

_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def begin(
    world: World, client_id: str, method: str, path: str, key: str, fingerprint: str, ttl: int
) -> tuple[int, bytes] | None:
    """Claim the key. Returns the stored ``(status, body)`` to replay, or None to proceed."""
    if not _KEY.fullmatch(key):
        raise ValidationFailed(
            "Idempotency-Key", "Idempotency-Key must be 1-255 visible ASCII characters"
        )
    now = world.now()
    with world.store.transaction():
        world.store.execute("DELETE FROM idempotency WHERE created_at <= ?", (now - ttl,))
        row = world.store.one(
            "SELECT fingerprint, status, body FROM idempotency "
            "WHERE client_id = ? AND method = ? AND path = ? AND key = ?",
            (client_id, method, path, key),
        )
        if row is None:
            world.store.insert(
                "idempotency",
                {
                    "client_id": client_id,
                    "method": method,
                    "path": path,
                    "key": key,
                    "fingerprint": fingerprint,
                    "created_at": now,
                },
            )
            return None
    if row["fingerprint"] != fingerprint:
        raise Conflict(
            "this Idempotency-Key was already used with a different request body",
            code="idempotency_conflict",
        )
    if row["status"] is None:
        raise Conflict(
            "a request with this Idempotency-Key is still being processed",
            code="idempotency_conflict",
        )
    return int(row["status"]), bytes(row["body"])


def finish(
    world: World, client_id: str, method: str, path: str, key: str, status: int, body: bytes
) -> None:
    world.store.execute(
        "UPDATE idempotency SET status = ?, body = ? "
        "WHERE client_id = ? AND method = ? AND path = ? AND key = ?",
        (status, body, client_id, method, path, key),
    )


def abandon(world: World, client_id: str, method: str, path: str, key: str) -> None:
    """Forget a claim whose request failed, so a corrected retry can use the key."""
    world.store.execute(
        "DELETE FROM idempotency WHERE client_id = ? AND method = ? AND path = ? AND key = ? "
        "AND status IS NULL",
        (client_id, method, path, key),
    )
