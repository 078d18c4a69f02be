"""The authorization code flow's state: codes, refresh-token families and revocation.

A code is single use and short-lived; using it a second time revokes everything issued from
its first use (RFC 6749 §4.1.2). Refresh tokens rotate; presenting an already-rotated one
revokes the whole family (RFC 9700 §4.14). Only hashes of codes and refresh tokens are stored.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sandbox.errors import OAuthError
from sandbox.store import Row
from sandbox.world import World

OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 §4.1


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def pkce_s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class Family:
    family_id: str
    client_id: str
    user_id: str
    scope: tuple[str, ...]
    audience: str
    nonce: str | None


def _family(row: Row) -> Family:
    return Family(
        row["family_id"],
        row["client_id"],
        row["user_id"],
        tuple(row["scope"].split()),
        row["audience"],
        row["nonce"],
    )


def find_user(world: World, hint: str) -> Row | None:
    return world.store.one(
        "SELECT * FROM users WHERE user_id = ? OR lower(email) = lower(?)", (hint, hint)
    )


def dealer_admins(world: World) -> list[Row]:
    """The users the sign-in page offers."""
    return world.store.all(
        "SELECT user_id, name, email, dealer_id FROM users WHERE role = 'dealer_admin' "
        "ORDER BY dealer_id"
    )


def issue_code(
    world: World,
    *,
    client_id: str,
    user_id: str,
    redirect_uri: str,
    scope: tuple[str, ...],
    audience: str,
    nonce: str | None,
    code_challenge: str | None,
    lifetime: int,
) -> str:
    code = secrets.token_urlsafe(32)
    world.store.insert(
        "auth_codes",
        {
            "code_hash": _hash(code),
            "client_id": client_id,
            "user_id": user_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scope),
            "audience": audience,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "family_id": "fam_" + secrets.token_hex(12),
            "expires_at": world.now() + lifetime,
        },
    )
    return code


def exchange_code(
    world: World, *, client_id: str, code: str, redirect_uri: str | None, verifier: str | None
) -> Family:
    """Every check runs before the code is marked used, so a wrong client or verifier
    cannot burn (or, on reuse, revoke) a legitimate flow's code."""
    with world.store.transaction():
        row = world.store.one("SELECT * FROM auth_codes WHERE code_hash = ?", (_hash(code),))
        if row is None or row["client_id"] != client_id:
            raise OAuthError("invalid_grant", "the authorization code is unknown")
        _check_code(world, row, redirect_uri, verifier)
        if row["used_at"] is None:
            world.store.execute(
                "UPDATE auth_codes SET used_at = ? WHERE code_hash = ?",
                (world.now(), row["code_hash"]),
            )
    if row["used_at"] is not None:
        revoke_family(world, row["family_id"])
        raise OAuthError(
            "invalid_grant",
            "the authorization code was already used; the tokens issued from it are revoked",
        )
    world.store.insert(
        "token_families",
        {
            "family_id": row["family_id"],
            "client_id": client_id,
            "user_id": row["user_id"],
            "scope": row["scope"],
            "audience": row["audience"],
            "nonce": row["nonce"],
        },
    )
    return _family(row)


def _check_code(world: World, row: Row, redirect_uri: str | None, verifier: str | None) -> None:
    if row["used_at"] is None and row["expires_at"] <= world.now():
        raise OAuthError("invalid_grant", "the authorization code has expired")
    if redirect_uri != row["redirect_uri"]:
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    if row["code_challenge"] is not None:
        if not verifier:
            raise OAuthError("invalid_grant", "code_verifier is required (PKCE was used)")
        if not _VERIFIER.fullmatch(verifier):
            raise OAuthError(
                "invalid_grant", "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]"
            )
        if not secrets.compare_digest(pkce_s256(verifier), row["code_challenge"]):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
    elif verifier:
        raise OAuthError("invalid_grant", "code_verifier sent, but no code_challenge was")


def issue_refresh(world: World, family_id: str) -> str:
    token = "rt_" + secrets.token_urlsafe(32)
    world.store.insert("refresh_tokens", {"token_hash": _hash(token), "family_id": family_id})
    return token


def use_refresh(world: World, *, client_id: str, token: str) -> Family:
    """Rotate a refresh token; another client presenting it changes nothing."""
    with world.store.transaction():
        row = _refresh_row(world, token)
        if row is None or row["client_id"] != client_id:
            raise OAuthError("invalid_grant", "the refresh token is unknown")
        if row["revoked_at"] is not None:
            raise OAuthError("invalid_grant", "the refresh token was revoked")
        if row["used_at"] is None:
            world.store.execute(
                "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?",
                (world.now(), _hash(token)),
            )
    if row["used_at"] is not None:
        revoke_family(world, row["family_id"])
        raise OAuthError(
            "invalid_grant", "the refresh token was already used; its family is revoked"
        )
    return _family(row)


def _refresh_row(world: World, token: str) -> Row | None:
    return world.store.one(
        "SELECT r.used_at, f.* FROM refresh_tokens r JOIN token_families f "
        "USING (family_id) WHERE r.token_hash = ?",
        (_hash(token),),
    )


def revoke_family(world: World, family_id: str) -> None:
    world.store.execute(
        "UPDATE token_families SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
        (world.now(), family_id),
    )


def revoke_refresh(world: World, token: str, client_id: str) -> bool:
    """Revoke the family of a refresh token issued to ``client_id``; False when the token is
    unknown. Another client's token is refused (RFC 7009 §2.1)."""
    row = _refresh_row(world, token)
    if row is None:
        return False
    if row["client_id"] != client_id:
        raise OAuthError("invalid_grant", "the token was issued to another client")
    revoke_family(world, row["family_id"])
    return True


def revoke_access(world: World, jti: str, expires_at: float) -> None:
    world.store.execute(
        "INSERT OR IGNORE INTO revoked_tokens (jti, expires_at) VALUES (?, ?)", (jti, expires_at)
    )


def revoke_client(world: World, client_id: str) -> None:
    """Revoke what a client was issued: its token families and its codes. Its access tokens
    die with it, and stay dead if the client_id is registered again (see is_revoked)."""
    world.store.execute(
        "UPDATE token_families SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL",
        (world.now(), client_id),
    )
    world.store.execute("DELETE FROM auth_codes WHERE client_id = ?", (client_id,))


def is_revoked(world: World, claims: dict[str, Any]) -> bool:
    if (
        world.store.scalar("SELECT 1 FROM revoked_tokens WHERE jti = ?", (claims.get("jti"),))
        is not None
    ):
        return True
    registered = world.store.scalar(
        "SELECT created_at FROM clients WHERE client_id = ?", (claims.get("azp"),)
    )
    if registered is not None and claims.get("iat", 0) < int(registered):
        return True  # issued to an earlier client of the same id (iat has whole seconds)
    sid = claims.get("sid")
    return (
        sid is not None
        and world.store.scalar(
            "SELECT 1 FROM token_families WHERE family_id = ? AND revoked_at IS NOT NULL", (sid,)
        )
        is not None
    )
