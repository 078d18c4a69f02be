"""The auth server surface: ``/oauth/token`` and the ``/.well-known`` documents."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import issuer_of, parse_json, reply, route, services
from sandbox.auth.clients import PARTNER_SCOPES
from sandbox.auth.codes import OIDC_SCOPES
from sandbox.auth.guard import claimed_at_token
from sandbox.auth.oauth import basic_credentials
from sandbox.errors import BadRequest, OAuthError

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM = "application/x-www-form-urlencoded"


async def _form(request: Request) -> dict[str, str]:
    """The token request's parameters; each may appear once (RFC 6749 §3.2)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if content_type == FORM:
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise OAuthError("invalid_request", "the form body is not valid UTF-8") from None
    elif content_type == "application/json" and services(request).settings.error_style == "auth0":
        # Auth0 (CHeKT's real token server) also takes JSON; RFC 6749 says forms only
        try:
            data = parse_json(raw)
        except BadRequest as exc:
            raise OAuthError("invalid_request", exc.message) from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise OAuthError("invalid_request", "a JSON token request must be an object of strings")
        pairs = list(data.items())
    else:
        raise OAuthError("invalid_request", f"send the token request as {FORM} (RFC 6749 §4.4.2)")
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise OAuthError("invalid_request", f"parameter {key!r} is repeated")
        form[key] = value
    return form


async def basic_form_client(request: Request) -> tuple[dict[str, str], tuple[str, str] | None]:
    return await _form(request), basic_credentials(request.headers.get("authorization"))


_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    # Auth0-Client: the telemetry header Auth0's browser SDK (auth0-spa-js) sends
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Auth0-Client",
    "Access-Control-Max-Age": "600",
}


async def token(request: Request) -> Response:
    s = services(request)
    try:
        form, basic = await basic_form_client(request)
        # for the journal: the client it claims, even when the request fails
        request.state.client_id, request.state.tier = claimed_at_token(form, basic)
        request.state.client_id, body = await s.tokens.grant(form, basic, issuer_of(request))
    except OAuthError as exc:
        exc.cors = True
        raise
    return reply(body, headers={**_NO_STORE, **_CORS})


async def preflight(request: Request) -> Response:
    """CORS preflight for browser (SPA, PKCE) clients of the token endpoint."""
    return Response(status_code=204, headers=_CORS)


async def jwks(request: Request) -> Response:
    s = services(request)
    return reply(s.keys.jwks(s.world.now()), headers={"Cache-Control": "max-age=300"})


async def openid_configuration(request: Request) -> Response:
    issuer = issuer_of(request)
    return reply(
        {
            "issuer": issuer,
            "authorization_endpoint": issuer + "authorize",
            "token_endpoint": issuer + "oauth/token",
            "revocation_endpoint": issuer + "oauth/revoke",
            "end_session_endpoint": issuer + "v2/logout",
            "jwks_uri": issuer + ".well-known/jwks.json",
            "grant_types_supported": [
                "client_credentials",
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
            ],
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "client_secret_basic",
                "private_key_jwt",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": [*PARTNER_SCOPES, *OIDC_SCOPES],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
    )


routes = [
    route("/oauth/token", POST=token, OPTIONS=preflight),
    route("/.well-known/jwks.json", GET=jwks),
    route("/.well-known/openid-configuration", GET=openid_configuration),
]
