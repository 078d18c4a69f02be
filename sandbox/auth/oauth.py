"""``POST /oauth/token`` grant logic (RFC 6749 §4.4 client credentials, for now).

Client authentication is by ``client_id``/``client_secret`` in the form or by HTTP Basic —
never both (§2.3). Errors are RFC 6749 §5.2 ``OAuthError``s; the ``auth0`` error style
renames ``invalid_client`` to Auth0's ``access_denied``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

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
    return unquote(client_id), unquote(secret)


class TokenEndpoint:
    def __init__(self, world: World, keys: KeyRing, settings: Settings) -> None:
        self.world = world
        self.keys = keys
        self.settings = settings

    def _invalid_client(self, description: str, basic: bool) -> OAuthError:
        error = "access_denied" if self.settings.error_style == "auth0" else "invalid_client"
        return OAuthError(error, description, status=401, basic_challenge=basic)

    def authenticate_client(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> Client:
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
            )
        if not client_id:
            raise self._invalid_client("client authentication is required", basic is not None)
        if not secret:
            raise self._invalid_client("client_secret is required", basic is not None)
        client = get_client(self.world, client_id)
        if (
            client is None
            or client.client_secret is None
            or not secrets.compare_digest(client.client_secret.encode(), secret.encode())
        ):
            raise self._invalid_client("unknown client or wrong secret", basic is not None)
        return client

    def _audience(self, form: Mapping[str, str]) -> str:
        audience = form.get("audience") or self.settings.audience
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

    def grant(
        self, form: Mapping[str, str], basic: tuple[str, str] | None, issuer: str
    ) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant_type != "client_credentials":
            raise OAuthError(
                "unsupported_grant_type", f"grant_type {grant_type!r} is not supported"
            )
        client = self.authenticate_client(form, basic)
        audience = self._audience(form)
        scopes = self._scopes(form, client)
        now = self.world.now()
        claims = access_token_claims(
            issuer=issuer,
            subject=f"{client.client_id}@clients",
            audience=audience,
            client_id=client.client_id,
            scopes=scopes,
            now=now,
            lifetime=self.settings.token_lifetime,
            extra={"gty": "client-credentials"},
        )
        return {
            "access_token": self.keys.sign(claims),
            "token_type": "Bearer",
            "expires_in": self.settings.token_lifetime,
            "scope": " ".join(scopes),
        }
