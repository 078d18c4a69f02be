"""Who is calling: turns an ``Authorization`` header into a ``Principal`` or a 401.

The bearer value decides the tier: ``chekt_test_…`` is an API key, anything else must be a
JWT this sandbox issued. Verified JWTs are cached (keyed by issuer and token, honouring ``exp``)
because RSA verification on every request would cost most of the throughput.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sandbox.auth import chaos, codes
from sandbox.auth.assertions import JWT_BEARER_GRANT
from sandbox.auth.clients import get_api_key, get_client
from sandbox.auth.keys import LIVE_PREFIX, TEST_PREFIX, is_well_formed
from sandbox.auth.tokens import KeyRing, TokenInvalid
from sandbox.errors import PermissionDenied, Unauthorized
from sandbox.settings import Settings
from sandbox.world import World

_CACHE_LIMIT = 10_000
# what a cached verdict rests on: keys, clients, their connections, revocations
CREDENTIAL_TABLES = (
    "signing_keys",
    "clients",
    "client_keys",
    "api_keys",
    "connections",
    "token_families",
    "revoked_tokens",
    "token_cutoffs",
)

# how a request proved who it is: the journal's ``tier`` (a client secret or a token made
# with one, an assertion or a token made with one, a user token, an API key, a bridge's
# local API token)
TIERS = ("api_key", "secret", "assertion", "user", "bridge")


def _unverified_claims(token: str) -> dict[str, object]:
    import jwt  # loaded with the first token, not at start (PyJWT brings in cryptography)

    try:
        return dict(jwt.decode(token, options={"verify_signature": False}))
    except jwt.PyJWTError:
        return {}


@dataclass(frozen=True)
class Principal:
    client_id: str
    kind: str  # dealer_app | platform_partner
    tier: str  # one of TIERS
    scopes: frozenset[str]
    dealer_id: int | None  # set when the credential reaches exactly one dealer
    expires_at: float | None = None
    user_id: str | None = None  # user tokens (authorization code flow)
    user_role: str | None = None
    user_dealer_id: int | None = None  # the signed-in user's dealer (what connect links)

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise PermissionDenied(f"this credential lacks the {scope!r} scope", scope=scope)


class Guard:
    def __init__(self, world: World, keys: KeyRing, settings: Settings) -> None:
        self.world = world
        self.keys = keys
        self.settings = settings
        self._verified: dict[str | tuple[str, str], Principal] = {}
        # any write to what a verdict rests on forgets every cached verdict
        world.store.watch(CREDENTIAL_TABLES, self._verified.clear)

    def _cached(self, cache_key: str | tuple[str, str], now: float) -> Principal | None:
        cached = self._verified.get(cache_key)
        if cached is not None and (cached.expires_at is None or cached.expires_at > now):
            return cached
        return None

    def _remember(self, cache_key: str | tuple[str, str], principal: Principal) -> Principal:
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        self._verified[cache_key] = principal
        return principal

    def holds(self, principal: Principal) -> bool:
        """Whether ``principal``, which the guard gave at the store's current data version,
        would still be given: nothing it rests on was written since, so only its expiry on
        the clock the guard checks it against can have ended it."""
        if principal.expires_at is None:
            return True
        now = self.world.now() if principal.tier == "api_key" else self.world.signing_now()
        return principal.expires_at > now

    def authenticate(self, authorization: str | None, issuer: Callable[[], str]) -> Principal:
        """``issuer`` is asked only for JWTs (building it costs more than an API key check)."""
        if not authorization:
            raise Unauthorized("send Authorization: Bearer <API key or access token>")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized(
                "the Authorization header must be 'Bearer <API key or access token>'",
                code="invalid_token",
                error="invalid_request",
            )
        if credential.startswith(LIVE_PREFIX):
            raise Unauthorized(
                "production (chekt_live_) credentials are never accepted by the sandbox",
                code="live_credentials_not_accepted",
                error="invalid_token",
            )
        if credential.startswith(TEST_PREFIX):
            return self._api_key(credential)
        return self._jwt(credential, issuer())

    def _api_key(self, key: str) -> Principal:
        cached = self._cached(key, self.world.now())
        if cached is not None:
            return cached
        record = get_api_key(self.world, key) if is_well_formed(key) else None
        if record is None:
            raise Unauthorized(
                "the API key is unknown, malformed or revoked",
                code="invalid_api_key",
                error="invalid_token",
            )
        principal = Principal(
            client_id=record["client_id"],
            kind="dealer_app",
            tier="api_key",
            scopes=frozenset(record["scopes"].split()),
            dealer_id=record["dealer_id"],
            expires_at=record["expires_at"],
        )
        return self._remember(key, principal)

    def _jwt(self, token: str, issuer: str) -> Principal:
        now = self.world.signing_now()
        cache_key = (issuer, token)
        cached = self._cached(cache_key, now)
        if cached is not None:
            return cached
        try:
            claims = self.keys.verify(
                token, now=now, issuer=issuer, audiences=self.settings.audiences
            )
        except TokenInvalid as exc:
            raise Unauthorized(str(exc), code="invalid_token", error="invalid_token") from None
        client = get_client(self.world, str(claims.get("azp", "")))
        if client is None:
            raise Unauthorized(
                "the client this token was issued to no longer exists",
                code="invalid_token",
                error="invalid_token",
            )
        if codes.is_revoked(self.world, claims):
            raise Unauthorized("the token was revoked", code="invalid_token", error="invalid_token")
        if chaos.expired_early(self.world, claims):
            raise Unauthorized("the token has expired", code="invalid_token", error="invalid_token")
        scopes = frozenset(str(claims.get("scope", "")).split())
        subject = str(claims["sub"])
        if subject.endswith("@clients"):
            principal = Principal(
                client_id=client.client_id,
                kind=client.kind,
                tier=self._machine_tier(client.client_secret),
                scopes=scopes,
                dealer_id=client.dealer_id,
                expires_at=float(claims["exp"]),
            )
        else:
            user = codes.find_user(self.world, subject)
            if user is None:
                raise Unauthorized(
                    "the user of this token no longer exists",
                    code="invalid_token",
                    error="invalid_token",
                )
            principal = Principal(
                client_id=client.client_id,
                kind=client.kind,
                tier="user",
                scopes=scopes,
                # a user token reaches what its application does, never more: a dealer app's
                # dealer, or the dealers connected to a platform partner
                dealer_id=client.dealer_id,
                expires_at=float(claims["exp"]),
                user_id=subject,
                user_role=user["role"],
                user_dealer_id=user["dealer_id"],
            )
        return self._remember(cache_key, principal)

    @staticmethod
    def _machine_tier(client_secret: str | None) -> str:
        """A client-credentials token says nothing of how it was obtained: a client holding a
        secret is counted as ``secret``, one with only an assertion key as ``assertion``."""
        return "secret" if client_secret else "assertion"

    def claimed(self, authorization: str) -> tuple[str | None, str | None]:
        """The client and tier a refused bearer credential claimed (for the journal), read
        without verifying anything."""
        credential = authorization.partition(" ")[2].strip()
        if credential.startswith((TEST_PREFIX, LIVE_PREFIX)):
            record = get_api_key(self.world, credential) if is_well_formed(credential) else None
            return (record["client_id"] if record else None), "api_key"
        claims = _unverified_claims(credential)
        client_id = claims.get("azp")
        if not isinstance(client_id, str):
            return None, None
        if not str(claims.get("sub", "")).endswith("@clients"):
            return client_id, "user"
        client = get_client(self.world, client_id)
        return client_id, self._machine_tier(client.client_secret if client else None)

    def test_credential(self, value: str) -> bool:
        """Whether ``value`` is a credential this sandbox issued or registered (a ``chekt_test_``
        key, a client's secret, a token it signed, a code or refresh token it handed out):
        the only credentials the journal keeps for ``reveal=true``."""
        if value.startswith(TEST_PREFIX):
            return True
        if value.startswith(LIVE_PREFIX):
            return False
        if value.startswith("eyJ") and value.count(".") == 2:
            import jwt

            try:
                kid = jwt.get_unverified_header(value).get("kid")
            except jwt.PyJWTError:
                return False
            return self.keys.signs_with(str(kid), self.world.now())
        digest = hashlib.sha256(value.encode()).hexdigest()
        store = self.world.store
        return any(
            store.scalar(sql, (arg,)) is not None
            for sql, arg in (
                ("SELECT 1 FROM clients WHERE client_secret = ?", value),
                ("SELECT 1 FROM auth_codes WHERE code_hash = ?", digest),
                ("SELECT 1 FROM refresh_tokens WHERE token_hash = ?", digest),
            )
        )


def claimed_at_token(
    form: Mapping[str, str], basic: tuple[str, str] | None
) -> tuple[str | None, str]:
    """The client and tier a token request claims, before (or without) any check passing:
    failed requests are journaled under the client they named."""
    grant_type = form.get("grant_type")
    assertion = form.get("client_assertion") or (
        form.get("assertion") if grant_type == JWT_BEARER_GRANT else None
    )
    if assertion:
        issuer = _unverified_claims(assertion).get("iss")
        return (issuer if isinstance(issuer, str) else form.get("client_id")), "assertion"
    client_id = basic[0] if basic is not None else form.get("client_id")
    tier = "user" if grant_type in ("authorization_code", "refresh_token") else "secret"
    return client_id, tier
