"""Tier 3: signed-JWT client authentication (RFC 7523, hardened per RFC 8725).

A partner registers a public key (PEM) or a JWKS URL and signs a short-lived assertion
instead of holding a secret. Every rule is enforced: the key and algorithm registered for
that client only, ``iss`` = ``sub`` = client id, ``aud`` = our issuer exactly, a lifetime of
at most 300 s with 60 s of skew, and a ``jti`` used once (atomically, in the store, so it
survives a restart). ``jku``/``x5u``/``jwk`` headers are never followed.
"""

from __future__ import annotations

import base64
import hashlib
import math
import sqlite3
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from sandbox import jsontext
from sandbox.net import DestinationPolicy
from sandbox.world import World

if TYPE_CHECKING:  # PyJWT and cryptography load with the first assertion or key, not at start
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_LIFETIME = 300
SKEW = 60
JWKS_REFETCH = 30.0
_CURVES = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class AssertionRejected(Exception):
    """The assertion does not authenticate any client."""


def algorithm_for(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError("RSA keys must be at least 2048 bits")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _CURVES:
        return _CURVES[key.curve.name]
    raise ValueError("only RSA (2048+ bits) and EC P-256/384/521 public keys are accepted")


def load_public_pem(pem: str) -> tuple[PublicKey, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None
    alg = algorithm_for(key)
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return key, alg


def thumbprint(key: PublicKey) -> str:
    """A stable key id for a key registered without one."""
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:12]).decode().rstrip("=")


def register_key(
    world: World,
    client_id: str,
    *,
    pem: str | None = None,
    jwks_url: str | None = None,
    kid: str | None = None,
    source: str,
) -> dict[str, Any]:
    """Store a client's assertion key (PEM) or JWKS URL; returns what was registered."""
    if pem is not None:
        key, alg = load_public_pem(pem)
        row = {
            "client_id": client_id,
            "kid": kid or thumbprint(key),
            "alg": alg,
            "public_pem": pem,
            "jwks_url": None,
            "source": source,
        }
    elif jwks_url is not None:
        row = {
            "client_id": client_id,
            "kid": "",
            "alg": "",
            "public_pem": None,
            "jwks_url": jwks_url,
            "source": source,
        }
    else:
        raise ValueError("register a public key (PEM) or a JWKS URL")
    world.store.execute(
        "INSERT INTO client_keys (client_id, kid, alg, public_pem, jwks_url, source) "
        "VALUES (:client_id, :kid, :alg, :public_pem, :jwks_url, :source) "
        "ON CONFLICT(client_id, kid) DO UPDATE SET alg = excluded.alg, "
        "public_pem = excluded.public_pem, jwks_url = excluded.jwks_url, source = excluded.source",
        row,
    )
    return row


@dataclass
class _JwksCache:
    keys: dict[str, tuple[PublicKey, str]] = field(default_factory=dict)
    loaded: bool = False
    refetched_at: float = float("-inf")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _pick(keys: dict[str, tuple[PublicKey, str]], kid: str | None) -> tuple[PublicKey, str] | None:
    if kid is not None:
        return keys.get(kid)
    return next(iter(keys.values())) if len(keys) == 1 else None


class AssertionVerifier:
    def __init__(self, world: World, policy: DestinationPolicy) -> None:
        self.world = world
        self.policy = policy
        self._jwks: dict[str, _JwksCache] = {}

    async def _jwks_key(self, url: str, kid: str | None) -> tuple[PublicKey, str] | None:
        import jwt

        from sandbox.outbound import fetch_json

        cache = self._jwks.setdefault(url, _JwksCache())
        found = _pick(cache.keys, kid)
        if found is not None:
            return found
        if cache.loaded:
            if time.monotonic() - cache.refetched_at < JWKS_REFETCH:
                return None  # unknown kids refetch at most once per 30 s
            cache.refetched_at = time.monotonic()
        cache.loaded = True
        try:
            document = await fetch_json(url, self.policy)
        except Exception as exc:  # refused, unreachable, not JSON: the client's problem
            raise AssertionRejected(f"the client's JWKS could not be fetched: {exc}") from None
        cache.keys = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            try:
                key = jwt.PyJWK(entry).key
                cache.keys[str(entry.get("kid", ""))] = (key, algorithm_for(key))
            except (jwt.PyJWTError, ValueError, TypeError):
                continue
        return _pick(cache.keys, kid)

    async def _key(self, client_id: str, kid: str | None) -> tuple[PublicKey, str]:
        rows = self.world.store.all("SELECT * FROM client_keys WHERE client_id = ?", (client_id,))
        if not rows:
            raise AssertionRejected(f"client {client_id!r} has no registered assertion key")
        for row in rows:
            if row["public_pem"] is not None and (
                (kid is None and len(rows) == 1) or row["kid"] == kid
            ):
                return load_public_pem(row["public_pem"])
        for row in rows:
            if row["jwks_url"] is not None:
                found = await self._jwks_key(row["jwks_url"], kid)
                if found is not None:
                    return found
        raise AssertionRejected(f"no key {kid!r} is registered for client {client_id!r}")

    async def verify(self, assertion: str, issuer: str) -> tuple[str, dict[str, Any]]:
        """The client id the assertion authenticates, and its claims."""
        import jwt

        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            jsontext.check([header, unverified])  # e.g. an iss no database can hold
        except (jwt.PyJWTError, ValueError):
            raise AssertionRejected("the assertion is not a well-formed JWT") from None
        client_id = unverified.get("iss")
        if not isinstance(client_id, str) or not client_id:
            raise AssertionRejected("the assertion has no iss (the client id)")
        if unverified.get("sub") != client_id:
            raise AssertionRejected("the assertion's sub must equal its iss (the client id)")
        kid = header.get("kid")
        key, alg = await self._key(client_id, kid if isinstance(kid, str) else None)
        if header.get("alg") != alg:
            raise AssertionRejected(f"this client's key signs with {alg}, not {header.get('alg')}")
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key,
                algorithms=[alg],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.PyJWTError:
            raise AssertionRejected("the assertion's signature does not verify") from None
        self._check_claims(claims, issuer)
        self._use_jti(client_id, claims)
        return client_id, claims

    def _check_claims(self, claims: dict[str, Any], issuer: str) -> None:
        now = self.world.signing_now()  # a skewed sandbox judges assertions by its own time
        aud = claims.get("aud")
        if not (aud == issuer or aud == [issuer]):
            raise AssertionRejected(f"the assertion's aud must be exactly {issuer!r}")
        raw_exp = claims.get("exp")
        if not _finite(raw_exp):
            raise AssertionRejected("the assertion needs a finite numeric exp")
        exp = float(cast(float, raw_exp))
        if exp <= now - SKEW:
            raise AssertionRejected("the assertion has expired")
        for name in ("iat", "nbf"):
            value = claims.get(name)
            if value is None:
                continue
            if not _finite(value):
                raise AssertionRejected(f"the assertion's {name} must be a finite number")
            if value > now + SKEW:
                raise AssertionRejected(f"the assertion's {name} is in the future")
        start = claims.get("iat", now)
        if exp - start > MAX_LIFETIME:
            raise AssertionRejected(f"an assertion may live at most {MAX_LIFETIME} s")
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            raise AssertionRejected("the assertion needs a jti")

    def _use_jti(self, client_id: str, claims: dict[str, Any]) -> None:
        now = self.world.now()
        store = self.world.store
        try:
            with store.transaction():
                store.execute("DELETE FROM assertion_jtis WHERE expires_at < ?", (now - SKEW,))
                store.insert(
                    "assertion_jtis",
                    {
                        "client_id": client_id,
                        "jti": claims["jti"],
                        "expires_at": float(claims["exp"]) + SKEW,
                    },
                )
        except sqlite3.IntegrityError:
            raise AssertionRejected("this assertion's jti was already used") from None
