"""``POST /oauth/token`` grant logic: client credentials, the RFC 7523 jwt-bearer grant,
authorization code and refresh token.

Client authentication is by ``client_id``/``client_secret`` in the form, by HTTP Basic
(never both, §2.3), or by a signed ``client_assertion`` (RFC 7523 §2.2, as CHeKT's
sample sends it, with no ``client_id``). Errors are RFC 6749 §5.2 ``OAuthError``s; the
``auth0`` error style renames ``invalid_client`` to Auth0's ``access_denied``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from sandbox.auth import chaos, codes
from sandbox.auth.assertions import (
    ASSERTION_TYPE,
    JWT_BEARER_GRANT,
    AssertionRejected,
    AssertionVerifier,
)
from sandbox.auth.clients import Client, get_client
from sandbox.auth.keys import LIVE_PREFIX
from sandbox.auth.tokens import KeyRing, access_token_claims
from sandbox.errors import OAuthError
from sandbox.settings import Settings
from sandbox.world import World


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from an HTTP Basic header, form-decoded per §2.3.1."""
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(
            "invalid_request", "the Basic authorization header is not valid base64"
        ) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_request", "the Basic credentials must be client_id:client_secret")
    return unquote_plus(client_id), unquote_plus(secret)


class TokenEndpoint:
    def __init__(
        self, world: World, keys: KeyRing, settings: Settings, assertions: AssertionVerifier
    ) -> None:
        self.world = world
        self.keys = keys
        self.settings = settings
        self.assertions = assertions

    def _invalid_client(self, description: str, basic: bool = False) -> OAuthError:
        error = "access_denied" if self.settings.error_style == "auth0" else "invalid_client"
        return OAuthError(error, description, status=401, basic_challenge=basic)

    async def authenticate_client(
        self,
        form: Mapping[str, str],
        basic: tuple[str, str] | None,
        issuer: str,
        *,
        allow_public: bool = False,
    ) -> Client:
        """Secret (body or Basic), signed assertion, or — for public clients — nothing."""
        if "client_assertion" in form or "client_assertion_type" in form:
            return await self._by_assertion(form, basic, issuer)
        if basic is not None and ("client_secret" in form or "client_id" in form):
            raise OAuthError(
                "invalid_request",
                "send client credentials either in the Authorization header or in the body, "
                "not both",
            )
        client_id, secret = (
            basic if basic is not None else (form.get("client_id"), form.get("client_secret"))
        )
        if secret is not None and secret.startswith(LIVE_PREFIX):
            raise OAuthError(
                "live_credentials_not_accepted",
                "production (chekt_live_) credentials are never accepted by the sandbox",
                status=401,
                basic_challenge=basic is not None,
            )
        if not client_id:
            raise self._invalid_client("client authentication is required", basic is not None)
        client = get_client(self.world, client_id)
        if not secret and client is not None and client.public:
            if allow_public:
                return client
            raise OAuthError(
                "unauthorized_client",
                f"{client_id} is a public client: it may only use authorization_code with PKCE",
            )
        if not secret:
            raise self._invalid_client("client_secret is required", basic is not None)
        if (
            client is None
            or client.client_secret is None
            or not secrets.compare_digest(client.client_secret.encode(), secret.encode())
        ):
            raise self._invalid_client("unknown client or wrong secret", basic is not None)
        return client

    async def _by_assertion(
        self, form: Mapping[str, str], basic: tuple[str, str] | None, issuer: str
    ) -> Client:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
        if not form.get("client_assertion"):
            raise OAuthError("invalid_request", "client_assertion is empty")
        if "client_secret" in form or basic is not None:
            raise OAuthError(
                "invalid_request", "use a client_assertion or a client secret, not both"
            )
        client_id = await self._verify(form["client_assertion"], issuer, "invalid_client")
        if form.get("client_id") not in (None, client_id):
            raise self._invalid_client("client_id does not match the assertion's issuer")
        client = get_client(self.world, client_id)
        if client is None:
            raise self._invalid_client("the assertion names an unknown client")
        return client

    async def _verify(self, assertion: str, issuer: str, error: str) -> str:
        if assertion.count(".") == 2 and LIVE_PREFIX in _unverified_issuers(assertion):
            raise OAuthError(
                "live_credentials_not_accepted",
                "production (chekt_live_) credentials are never accepted by the sandbox",
                status=401,
            )
        try:
            client_id, _ = await self.assertions.verify(assertion, issuer)
        except AssertionRejected as exc:
            if error == "invalid_client":
                raise self._invalid_client(str(exc)) from None
            raise OAuthError(error, str(exc)) from None
        return client_id

    def _audience(self, form: Mapping[str, str], default: str | None = None) -> str:
        audience = form.get("audience") or default or self.settings.audience
        if audience not in self.settings.audiences:
            raise OAuthError(
                "invalid_request",
                f"unknown audience {audience!r}; this sandbox serves {self.settings.audience!r}",
            )
        return audience

    def _scopes(self, form: Mapping[str, str], client: Client) -> tuple[str, ...]:
        requested = form.get("scope")
        if requested is None or not requested.strip():
            return client.scopes
        asked = tuple(dict.fromkeys(requested.split()))
        refused = [s for s in asked if s not in client.scopes]
        if refused:
            raise OAuthError(
                "invalid_scope", f"scope {refused[0]!r} is not granted to client {client.client_id}"
            )
        return asked

    def _partner_claim(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The custom partner claim, copied into the token (a JSON object when it is one)."""
        raw = form.get(self.settings.partner_claim)
        if raw is None:
            return {}
        value: Any = raw
        with contextlib.suppress(ValueError):
            parsed = json.loads(raw)
            if isinstance(parsed, dict | list | int | float) and not isinstance(parsed, bool):
                value = parsed
        return {self.settings.partner_claim: value}

    async def grant(
        self, form: Mapping[str, str], basic: tuple[str, str] | None, issuer: str
    ) -> tuple[str, dict[str, Any]]:
        """The client the tokens went to (for the journal) and the token response."""
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant_type == "client_credentials":
            client = await self.authenticate_client(form, basic, issuer)
            return client.client_id, self._machine_token(client, form, issuer)
        if grant_type in ("authorization_code", "refresh_token"):
            client = await self.authenticate_client(form, basic, issuer, allow_public=True)
            if not client.redirect_uris:
                raise OAuthError(
                    "unauthorized_client",
                    f"client {client.client_id} has no redirect_uris, so it cannot use "
                    f"{grant_type}",
                )
            return client.client_id, self._user_grant(client, grant_type, form, issuer)
        if grant_type == JWT_BEARER_GRANT:
            if not form.get("assertion"):
                raise OAuthError("invalid_request", "assertion is required")
            client_id = await self._verify(form["assertion"], issuer, "invalid_grant")
            bearer = get_client(self.world, client_id)
            if bearer is None:
                raise OAuthError("invalid_grant", "the assertion names an unknown client")
            return bearer.client_id, self._machine_token(bearer, form, issuer)
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def _user_grant(
        self, client: Client, grant_type: str, form: Mapping[str, str], issuer: str
    ) -> dict[str, Any]:
        if grant_type == "authorization_code":
            if not form.get("code"):
                raise OAuthError("invalid_request", "code is required")
            family = codes.exchange_code(
                self.world,
                client_id=client.client_id,
                code=form["code"],
                redirect_uri=form.get("redirect_uri"),
                verifier=form.get("code_verifier"),
            )
            return self._user_tokens(client, family, issuer)
        if not form.get("refresh_token"):
            raise OAuthError("invalid_request", "refresh_token is required")
        family = codes.use_refresh(
            self.world, client_id=client.client_id, token=form["refresh_token"]
        )
        return self._user_tokens(client, family, issuer)

    def _machine_token(
        self, client: Client, form: Mapping[str, str], issuer: str
    ) -> dict[str, Any]:
        audience = self._audience(form)
        scopes = self._scopes(form, client)
        claims = access_token_claims(
            issuer=issuer,
            subject=f"{client.client_id}@clients",
            audience=audience,
            client_id=client.client_id,
            scopes=scopes,
            now=chaos.issue_time(self.world, client.client_id),
            lifetime=self.settings.token_lifetime,
            extra={"gty": "client-credentials", **self._partner_claim(form)},
        )
        return {
            "access_token": self.keys.sign(claims),
            "token_type": "Bearer",
            "expires_in": self.settings.token_lifetime,
            "scope": " ".join(scopes),
        }

    def _user_tokens(self, client: Client, family: codes.Family, issuer: str) -> dict[str, Any]:
        now = chaos.issue_time(self.world, client.client_id)
        user = codes.find_user(self.world, family.user_id)
        if user is None:
            raise OAuthError("invalid_grant", "the user of this grant no longer exists")
        claims = access_token_claims(
            issuer=issuer,
            subject=family.user_id,
            audience=family.audience,
            client_id=client.client_id,
            scopes=family.scope,
            now=now,
            lifetime=self.settings.token_lifetime,
            extra={"sid": family.family_id},
        )
        body: dict[str, Any] = {
            "access_token": self.keys.sign(claims),
            "token_type": "Bearer",
            "expires_in": self.settings.token_lifetime,
            "scope": " ".join(family.scope),
        }
        if "offline_access" in family.scope:
            body["refresh_token"] = codes.issue_refresh(self.world, family.family_id)
        if "openid" in family.scope:
            id_claims: dict[str, Any] = {
                "iss": issuer,
                "sub": family.user_id,
                "aud": client.client_id,
                "azp": client.client_id,
                "iat": int(now),
                "exp": int(now) + self.settings.token_lifetime,
                "email": user["email"],
                "name": user["name"],
                "sid": family.family_id,
            }
            if family.nonce is not None:
                id_claims["nonce"] = family.nonce
            body["id_token"] = self.keys.sign(id_claims)
        return body


def _unverified_issuers(assertion: str) -> str:
    """The assertion's iss and sub, unverified: enough to spot a production credential."""
    import jwt  # PyJWT (and cryptography) load with the first token, not at start

    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    return f"{claims.get('iss', '')} {claims.get('sub', '')}"
