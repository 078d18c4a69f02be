"""Auth chaos, each one call: a client's access tokens expire now, an API key is revoked
now. (The other two, signing with a key not yet published and a skewed stamping clock, live
with the key ring, :class:`sandbox.auth.tokens.KeyRing`, and the world's ``skew``.)

"Expire now" is a cutoff per client: tokens whose ``iat`` is before it count as expired.
``iat`` has whole seconds, so the cutoff is the next whole second and a token issued to the
client in the same second as the cutoff is stamped with it (its ``iat`` at most 1 s ahead):
tokens from before the call are dead, tokens from after it work.
"""

from __future__ import annotations

import math
from typing import Any

from sandbox.auth.clients import get_api_key, get_client
from sandbox.errors import NotFound
from sandbox.world import World


def expire_tokens(world: World, client_id: str) -> int:
    """Every access token issued to ``client_id`` until now expires; the cutoff (unix s)."""
    if get_client(world, client_id) is None:
        raise NotFound(f"client {client_id!r} was not found")
    before = math.floor(world.signing_now()) + 1
    world.store.execute(
        "INSERT INTO token_cutoffs (client_id, before) VALUES (?, ?) "
        "ON CONFLICT(client_id) DO UPDATE SET before = MAX(before, excluded.before)",
        (client_id, before),
    )
    return before


def cutoff(world: World, client_id: str) -> int | None:
    value = world.store.scalar("SELECT before FROM token_cutoffs WHERE client_id = ?", (client_id,))
    return None if value is None else int(value)


def issue_time(world: World, client_id: str) -> float:
    """When a token issued to ``client_id`` now says it was issued: the stamping clock, or
    the client's cutoff when that is later (see the module docstring)."""
    now = world.signing_now()
    before = cutoff(world, client_id)
    return now if before is None else max(now, float(before))


def expired_early(world: World, claims: dict[str, Any]) -> bool:
    before = cutoff(world, str(claims.get("azp", "")))
    return before is not None and claims.get("iat", 0) < before


def revoke_api_key(world: World, key: str) -> dict[str, Any]:
    """The key stops working now (a rotated key's 24 h grace ends too)."""
    row = get_api_key(world, key)
    if row is None:
        raise NotFound("no such API key (or it already expired)")
    now = world.now()
    world.store.execute("UPDATE api_keys SET expires_at = ? WHERE key = ?", (now, key))
    return {"client_id": row["client_id"], "dealer_id": row["dealer_id"], "revoked_at": now}
