"""The user-facing side of the auth server: ``/authorize`` (sign-in and consent),
``/oauth/revoke`` (RFC 7009) and ``/v2/logout``.

Errors about the client or its ``redirect_uri`` are shown on a page and never redirected
(RFC 6749 §4.1.2.1); every other error goes back to the client as ``?error=…&state=…``.
A ``login_hint`` naming a seeded user, or the ``default_user`` setting, signs in without a
page, so a test can simply follow the redirect. ``login_hint`` does so only on a loopback bind
(or with ``login_hint_off_loopback``): anywhere else it would let anyone sign in as anyone.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sandbox.api.common import issuer_of, reply, route, services
from sandbox.api.oauth import basic_form_client
from sandbox.auth import codes
from sandbox.auth.clients import Client, get_client
from sandbox.auth.tokens import TokenInvalid
from sandbox.auth.urls import logout_allowed, redirect_allowed
from sandbox.errors import OAuthError


class PageError(Exception):
    """An authorization error that must not be redirected."""


@dataclass(frozen=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    scope: tuple[str, ...]
    audience: str
    state: str | None
    nonce: str | None
    code_challenge: str | None

    def redirect(self, **params: str) -> RedirectResponse:
        if self.state is not None:
            params["state"] = self.state
        joiner = "&" if "?" in self.redirect_uri else "?"
        return RedirectResponse(self.redirect_uri + joiner + urlencode(params), status_code=302)


class Redirected(Exception):
    def __init__(self, request: AuthorizationRequest, error: str, description: str) -> None:
        super().__init__(description)
        self.response = request.redirect(error=error, error_description=description)


def _parse(request: Request, params: Mapping[str, str]) -> AuthorizationRequest:
    s = services(request)
    client = get_client(s.world, params.get("client_id", ""))
    if client is None:
        raise PageError("Unknown client_id: this application is not registered.")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_allowed(client.redirect_uris, redirect_uri):
        raise PageError(
            "The redirect_uri does not exactly match one registered for this application "
            "(only a loopback http one may differ, in its port), so the sandbox will not "
            "send you there."
        )
    partial = AuthorizationRequest(client, redirect_uri, (), "", params.get("state"), None, None)
    if params.get("response_type") != "code":
        raise Redirected(partial, "unsupported_response_type", "response_type must be code")
    requested = tuple(dict.fromkeys(params.get("scope", "").split()))
    unknown = [x for x in requested if x not in client.scopes and x not in codes.OIDC_SCOPES]
    if unknown:
        raise Redirected(partial, "invalid_scope", f"scope {unknown[0]!r} is not allowed")
    audience = params.get("audience") or s.settings.audience
    if audience not in s.settings.audiences:
        raise Redirected(partial, "invalid_request", f"unknown audience {audience!r}")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is not None and method != "S256":
        raise Redirected(partial, "invalid_request", "code_challenge_method must be S256")
    if challenge is None and method is not None:
        raise Redirected(partial, "invalid_request", "code_challenge_method without a challenge")
    if client.public and challenge is None:
        raise Redirected(partial, "invalid_request", "public clients must use PKCE (S256)")
    return AuthorizationRequest(
        client,
        redirect_uri,
        requested,
        audience,
        params.get("state"),
        params.get("nonce"),
        challenge,
    )


def _grant(request: Request, auth: AuthorizationRequest, user_id: str) -> RedirectResponse:
    s = services(request)
    code = codes.issue_code(
        s.world,
        client_id=auth.client.client_id,
        user_id=user_id,
        redirect_uri=auth.redirect_uri,
        scope=auth.scope,
        audience=auth.audience,
        nonce=auth.nonce,
        code_challenge=auth.code_challenge,
        lifetime=s.settings.code_lifetime,
    )
    return auth.redirect(code=code)


def _error_page(message: str) -> HTMLResponse:
    body = "<!doctype html><title>Sign-in error</title><h1>Sign-in error</h1>"
    body += f"<p>{html.escape(message)}</p>"
    return HTMLResponse(body, status_code=400)


def _consent_page(
    auth: AuthorizationRequest, params: Mapping[str, str], users: list[dict[str, Any]]
) -> HTMLResponse:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items()
    )
    buttons = "".join(
        f'<li><button name="user_id" value="{html.escape(u["user_id"])}">Sign in as '
        f"{html.escape(u['name'])} ({html.escape(u['email'])}, dealer {u['dealer_id']})"
        "</button></li>"
        for u in users
    )
    scopes = html.escape(" ".join(auth.scope) or "(the application's default scopes)")
    body = (
        "<!doctype html><title>CHeKT sandbox sign-in</title>"
        f"<h1>{html.escape(auth.client.name)} asks to access your dealer</h1>"
        f"<p>Scopes: {scopes}</p><form method=post action=/authorize>{hidden}<ul>{buttons}</ul>"
        '<button name="deny" value="1">Deny</button></form>'
    )
    return HTMLResponse(body)


async def authorize(request: Request) -> Response:
    params = dict(request.query_params)
    if request.method == "POST":
        params = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    s = services(request)
    try:
        auth = _parse(request, params)
    except PageError as exc:
        return _error_page(str(exc))
    except Redirected as exc:
        return exc.response
    if request.method == "POST":
        if params.get("deny"):
            return auth.redirect(error="access_denied", error_description="the user declined")
        user = codes.find_user(s.world, params.get("user_id", ""))
        if user is None:
            return _error_page("Choose one of the listed users.")
        return _grant(request, auth, user["user_id"])
    trusted = s.settings.loopback or s.settings.login_hint_off_loopback
    hint = (params.get("login_hint") if trusted else None) or s.settings.default_user
    if hint:
        user = codes.find_user(s.world, hint)
        if user is None:
            return auth.redirect(error="login_required", error_description=f"no user {hint!r}")
        return _grant(request, auth, user["user_id"])
    return _consent_page(auth, params, codes.dealer_admins(s.world))


async def revoke(request: Request) -> Response:
    """RFC 7009: 200 for a well-authenticated client, whether or not the token was valid; a
    token signed by the sandbox for another client is refused and stays valid."""
    s = services(request)
    form, basic = await basic_form_client(request)
    issuer = issuer_of(request)
    client = await s.tokens.authenticate_client(form, basic, issuer, allow_public=True)
    token = form.get("token")
    if not token:
        raise OAuthError("invalid_request", "token is required")
    if not codes.revoke_refresh(s.world, token, client.client_id):
        claims = _signed_claims(request, token)
        if claims and claims.get("azp") != client.client_id:
            raise OAuthError("invalid_grant", "the token was issued to another client")
        if claims.get("jti"):
            codes.revoke_access(s.world, str(claims["jti"]), float(claims["exp"]))
        if claims.get("sid"):
            codes.revoke_family(s.world, str(claims["sid"]))
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


def _signed_claims(request: Request, token: str) -> dict[str, Any]:
    """The claims of a live access token the sandbox signed, minted at any of its origins
    (``localhost`` or ``127.0.0.1``); empty for anything else: forged, expired, not a JWT."""
    import jwt  # PyJWT (and cryptography) load with the first token, not at start

    s = services(request)
    try:
        minted_at = jwt.decode(token, options={"verify_signature": False}).get("iss")
        return s.keys.verify(
            token, now=s.world.now(), issuer=str(minted_at), audiences=s.settings.audiences
        )
    except (jwt.PyJWTError, TokenInvalid):
        return {}


async def logout(request: Request) -> Response:
    """Return to a registered logout URL or, when none is registered, to the origin of one of
    the client's redirect URIs (CHeKT's sample returns to ``http://localhost:3000``)."""
    s = services(request)
    client = get_client(s.world, request.query_params.get("client_id", ""))
    return_to = request.query_params.get("returnTo")
    if return_to is None:
        return reply({"logged_out": True})
    if client is None or not logout_allowed(client.logout_urls, client.redirect_uris, return_to):
        return _error_page("returnTo is not an allowed logout URL of this application.")
    return RedirectResponse(return_to, status_code=302)


routes = [
    route("/authorize", GET=authorize, POST=authorize),
    route("/oauth/revoke", POST=revoke),
    route("/v2/logout", GET=logout),
]
