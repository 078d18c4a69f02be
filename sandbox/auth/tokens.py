"""The sandbox's own signing keys, the access tokens it issues, and the JWKS it publishes.

Keys live in the store so tokens stay valid across a restart of ``serve --db``. Expiry is
checked against the sandbox clock (not PyJWT's wall clock), so a virtual clock can expire a
token without waiting.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.store import Store

if TYPE_CHECKING:  # PyJWT and cryptography load with the first key, not at start (~11 MB)
    from cryptography.hazmat.primitives.asymmetric import rsa

ALGORITHM = "RS256"
_UNTIL = "signing_key_until:"  # store meta: when the last token a demoted key signed expires


class TokenInvalid(Exception):
    """The token is not one this sandbox issued, or is no longer valid."""


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey
    status: str

    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
            "n": _b64(numbers.n),
            "e": _b64(numbers.e),
        }


def _new_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class _KeysAhead:
    """RSA keys made one ahead on a thread: a fresh store's first key is its own, and a test
    process that starts sandbox after sandbox does not wait the 30-200 ms one takes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sandbox-rsa-key")
        self._ahead: Future[str] | None = None

    def take(self) -> str:
        with self._lock:
            if os.getpid() != self._pid:  # a forked child: the pool's thread stayed behind
                self._start()
            ahead, self._ahead = self._ahead, self._pool.submit(_new_pem)
        return ahead.result() if ahead is not None else _new_pem()


@functools.cache
def _keys_ahead() -> _KeysAhead:
    return _KeysAhead()


class KeyRing:
    """The published signing keys; exactly one is ``current`` and signs new tokens, unless
    auth chaos made an ``unpublished`` key (signing, but absent from the JWKS until
    :meth:`publish` or the next rotation)."""

    def __init__(self, store: Store, now: float) -> None:
        self._store = store
        self._keys: dict[str, SigningKey] = {}
        self._created = now
        self._load()

    def _ensure(self) -> None:
        """The first key is made on first use, not at start: an RSA key takes 30-200 ms to
        generate, and a sandbox that only ever sees API keys never needs one."""
        if any(k.status == "current" for k in self._keys.values()):
            return
        store = self._store
        with store.transaction():  # the store's lock, the only one: two first uses make one key
            if store.scalar("SELECT 1 FROM signing_keys WHERE status = 'current'") is None:
                self._add("current", self._created, _keys_ahead().take())
        self._load()

    def _load(self) -> None:
        rows = self._store.all(
            "SELECT * FROM signing_keys WHERE status != 'retired' ORDER BY created_at"
        )
        keys = {}
        if rows:  # a fresh store has none: cryptography loads with the first key
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa
        for row in rows:
            # its own key, from its own store: OpenSSL's checks of an RSA key cost ~40 ms
            private = serialization.load_pem_private_key(
                row["private_pem"].encode(), None, unsafe_skip_rsa_key_validation=True
            )
            assert isinstance(private, rsa.RSAPrivateKey)
            keys[row["kid"]] = SigningKey(row["kid"], private, row["status"])
        self._keys = keys

    def rotate(self, now: float, keep_for: float) -> dict[str, Any]:
        """previous -> retired (once every token it signed has expired), current -> previous,
        next (or an unpublished key) -> current, and a new next.

        A key that stops signing stays published for ``keep_for`` seconds (the token
        lifetime), however many rotations follow, so no unexpired token loses its key."""
        self._ensure()
        store = self._store
        with store.transaction():
            for row in store.all("SELECT kid FROM signing_keys WHERE status = 'previous'"):
                if self._published_until(row["kid"]) <= now:
                    store.execute(
                        "UPDATE signing_keys SET status = 'retired' WHERE kid = ?", (row["kid"],)
                    )
            demoted = self.current.kid
            store.set_meta(_UNTIL + demoted, repr(now + keep_for))
            store.execute("UPDATE signing_keys SET status = 'previous' WHERE status = 'current'")
            if not self._promote_unpublished():
                store.execute("UPDATE signing_keys SET status = 'current' WHERE status = 'next'")
            if store.scalar("SELECT 1 FROM signing_keys WHERE status = 'current'") is None:
                self._add("current", now)
            if store.scalar("SELECT 1 FROM signing_keys WHERE status = 'next'") is None:
                self._add("next", now)
        self._load()
        return self.statuses()

    def statuses(self) -> dict[str, str]:
        self._ensure()
        return {key.kid: key.status for key in self._keys.values()}

    def _promote_unpublished(self) -> bool:
        found = self._store.scalar("SELECT 1 FROM signing_keys WHERE status = 'unpublished'")
        if found is not None:
            self._store.execute(
                "UPDATE signing_keys SET status = 'current' WHERE status = 'unpublished'"
            )
        return found is not None

    def sign_unpublished(self, now: float) -> str:
        """From now on new tokens are signed by a fresh key the JWKS does not list (a partner
        must refetch the JWKS, fail, and cope); its kid."""
        self._ensure()
        with self._store.transaction():
            self._store.execute("DELETE FROM signing_keys WHERE status = 'unpublished'")
            self._add("unpublished", now)
        self._load()
        return self.signer.kid

    def publish(self, now: float, keep_for: float) -> dict[str, str]:
        """Publish the unpublished key: it becomes current, the current one previous."""
        self._ensure()
        store = self._store
        with store.transaction():
            if store.scalar("SELECT 1 FROM signing_keys WHERE status = 'unpublished'") is None:
                return self.statuses()
            store.set_meta(_UNTIL + self.current.kid, repr(now + keep_for))
            store.execute("UPDATE signing_keys SET status = 'previous' WHERE status = 'current'")
            self._promote_unpublished()
        self._load()
        return self.statuses()

    def _published_until(self, kid: str) -> float:
        """When the last token a previous key signed expires (0: unknown, an older store)."""
        return float(self._store.get_meta(_UNTIL + kid) or 0)

    def _add(self, status: str, now: float, pem: str | None = None) -> None:
        pem = pem or _new_pem()
        self._store.insert(
            "signing_keys",
            {
                "kid": "sbx-" + hashlib.sha256(pem.encode()).hexdigest()[:16],
                "alg": ALGORITHM,
                "private_pem": pem,
                "status": status,
                "created_at": now,
            },
        )

    @property
    def current(self) -> SigningKey:
        self._ensure()
        return next(k for k in self._keys.values() if k.status == "current")

    @property
    def signer(self) -> SigningKey:
        """The key new tokens are signed with: an unpublished one, else the current one."""
        self._ensure()
        unpublished = [k for k in self._keys.values() if k.status == "unpublished"]
        return unpublished[0] if unpublished else self.current

    def signs_with(self, kid: str, now: float) -> bool:
        """Whether ``kid`` is a key of this sandbox that may sign a live token."""
        key = self._keys.get(kid)
        return key is not None and (key.status == "unpublished" or self.publishes(kid, now))

    def jwks(self, now: float) -> dict[str, Any]:
        """The next and current keys, and every previous key that may have signed a token
        that has not expired yet."""
        self._ensure()
        return {"keys": [key.jwk() for key in self._keys.values() if self.publishes(key.kid, now)]}

    def publishes(self, kid: str, now: float) -> bool:
        """Whether the JWKS lists ``kid`` now (without building it: the journal asks this of
        every bearer token it records)."""
        key = self._keys.get(kid)
        if key is None or key.status == "unpublished":
            return False
        return key.status != "previous" or self._published_until(kid) > now

    def sign(self, claims: dict[str, Any]) -> str:
        import jwt

        key = self.signer
        return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})

    def verify(
        self, token: str, *, now: float, issuer: str, audiences: tuple[str, ...]
    ) -> dict[str, Any]:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid("the token is not a well-formed JWT") from exc
        key = self._keys.get(str(header.get("kid")))
        if key is None or header.get("alg") != ALGORITHM:
            raise TokenInvalid("the token was not signed by a key this sandbox publishes")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private.public_key(),
                algorithms=[ALGORITHM],
                audience=list(audiences),
                issuer=issuer,
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["exp", "iat", "iss", "aud", "sub"],
                },
            )
        except jwt.InvalidAudienceError as exc:
            raise TokenInvalid("the token's audience is not this API") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenInvalid(f"the token was not issued by {issuer}") from exc
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"the token is invalid: {exc}") from exc
        if not isinstance(claims["exp"], int | float) or claims["exp"] <= now:
            raise TokenInvalid("the token has expired")
        return claims


def access_token_claims(
    *,
    issuer: str,
    subject: str,
    audience: str,
    client_id: str,
    scopes: tuple[str, ...],
    now: float,
    lifetime: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    issued = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "azp": client_id,
        "scope": " ".join(scopes),
        "iat": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
    }
    claims.update(extra or {})
    return claims
