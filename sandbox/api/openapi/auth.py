"""The auth server's operations: the token endpoint with every grant it serves, discovery,
the browser flow (authorize, logout) and revocation. A confidential client may send its id and
secret in an HTTP Basic header instead of the form (then the form carries neither)."""

from __future__ import annotations

from typing import Any

from sandbox.api.openapi.schema import TEXT, json_content, named, obj, query

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FORM = "application/x-www-form-urlencoded"
OAUTH_ERROR = named(
    "OAuthError",
    obj(("error",), error={"type": "string"}, error_description={"type": "string"}),
)
_SECRET = {"client_id": TEXT, "client_secret": TEXT}
SCOPE = {"type": "string", "pattern": "^[!-~]+( [!-~]+)*$"}  # space-separated


def _grant(title: str, name: str, required: tuple[str, ...], **fields: Any) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "additionalProperties": False,
        "required": ["grant_type", *required],
        "properties": {"grant_type": {"const": name}, **fields},
    }


def _token_form() -> dict[str, Any]:
    assertion = {"client_assertion_type": {"const": ASSERTION_TYPE}, "client_assertion": TEXT}
    optional = {"scope": SCOPE, "audience": TEXT}
    return {
        "oneOf": [
            _grant(
                "ClientSecretGrant",
                "client_credentials",
                ("client_id", "client_secret"),
                **_SECRET,
                **optional,
            ),
            # the client's id and secret in an HTTP Basic Authorization header instead
            _grant("BasicAuthGrant", "client_credentials", (), **optional),
            _grant(
                "ClientAssertionGrant",
                "client_credentials",
                ("client_assertion_type", "client_assertion"),
                **assertion,
                **optional,
            ),
            _grant(
                "AuthorizationCodeGrant",
                "authorization_code",
                ("code", "redirect_uri"),
                code=TEXT,
                redirect_uri=TEXT,
                code_verifier=TEXT,
                **_SECRET,
            ),
            _grant(
                "RefreshTokenGrant",
                "refresh_token",
                ("refresh_token",),
                refresh_token=TEXT,
                **_SECRET,
            ),
            _grant("JwtBearerGrant", JWT_BEARER, ("assertion",), assertion=TEXT, **optional),
        ]
    }


def _tokens() -> dict[str, Any]:
    return named(
        "Tokens",
        obj(
            ("access_token", "token_type", "expires_in"),
            access_token={"type": "string"},
            token_type={"const": "Bearer"},
            expires_in={"type": "integer"},
            scope={"type": "string"},
            refresh_token={"type": "string"},
            id_token={"type": "string"},
        ),
    )


def _page(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _authorize_params() -> list[dict[str, Any]]:
    text = {"type": "string"}
    return [
        query("response_type", {"const": "code"}, "the only response type", required=True),
        query("client_id", TEXT, "the application", required=True),
        query("redirect_uri", TEXT, "one of the application's callback URLs", required=True),
        query("scope", text, "space-separated: openid profile email offline_access, API scopes"),
        query("state", text, "returned unchanged with the code"),
        query("nonce", text, "copied into the id_token"),
        query("audience", text, "the API the tokens are for"),
        query("code_challenge", text, "PKCE (required for public clients)"),
        query("code_challenge_method", {"const": "S256"}, "PKCE method"),
        query("login_hint", text, "sign this dealer admin in without showing the page"),
    ]


def paths() -> dict[str, Any]:
    tag = ["Auth server"]
    redirect = {"description": "back to the application's redirect_uri with a code or an error"}
    return {
        "/oauth/token": {
            "post": {
                "tags": tag,
                "summary": "Issue tokens: client secret, signed assertion, authorization code, "
                "refresh token, RFC 7523 jwt-bearer",
                "requestBody": {"required": True, "content": {FORM: {"schema": _token_form()}}},
                "responses": {
                    "200": {"description": "tokens", **json_content(_tokens())},
                    "default": {"description": "RFC 6749 error", **json_content(OAUTH_ERROR)},
                },
            },
            "options": {
                "tags": tag,
                "summary": "CORS preflight for browser apps",
                "responses": {"204": {"description": "allowed"}},
            },
        },
        "/oauth/revoke": {
            "post": {
                "tags": tag,
                "summary": "Revoke a refresh or access token (RFC 7009)",
                "requestBody": {
                    "required": True,
                    "content": {
                        FORM: {
                            "schema": {
                                "title": "RevokeRequest",
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["token"],
                                "properties": {
                                    "token": TEXT,
                                    "token_type_hint": {
                                        "title": "TokenTypeHint",
                                        "enum": ["refresh_token", "access_token"],
                                    },
                                    **_SECRET,
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "revoked, or was not a token of this client"},
                    "default": {"description": "RFC 6749 error", **json_content(OAUTH_ERROR)},
                },
            }
        },
        "/authorize": {
            method: {
                "tags": tag,
                "summary": "Sign a dealer admin in and return a code (consent page)",
                **(
                    {"parameters": _authorize_params()}
                    if method == "get"
                    else {  # the consent page's form: the same fields, plus the choice
                        "requestBody": {
                            "required": True,
                            "content": {
                                FORM: {"schema": {"title": "ConsentForm", "type": "object"}}
                            },
                        }
                    }
                ),
                "responses": {
                    "200": _page("the consent page: pick a dealer admin"),
                    "302": redirect,
                    "400": _page("an error page: the request cannot be redirected"),
                },
            }
            for method in ("get", "post")
        },
        "/v2/logout": {
            "get": {
                "tags": tag,
                "summary": "Sign out, then go to one of the application's logout URLs",
                "parameters": [
                    query("client_id", {"type": "string"}, "the application"),
                    query("returnTo", {"type": "string"}, "one of its allowed logout URLs"),
                ],
                "responses": {
                    "200": {
                        "description": "signed out",
                        **json_content(
                            named("LoggedOut", obj(("logged_out",), logged_out={"type": "boolean"}))
                        ),
                    },
                    "302": {"description": "signed out, on to returnTo"},
                    "400": _page("returnTo is not allowed"),
                },
            }
        },
        "/.well-known/jwks.json": {
            "get": {
                "tags": tag,
                "summary": "The keys tokens are signed with (previous, current, next)",
                "responses": {
                    "200": {
                        "description": "JWKS",
                        **json_content(
                            named(
                                "Jwks",
                                obj(
                                    ("keys",),
                                    keys={
                                        "type": "array",
                                        "items": named("Jwk", {"type": "object"}),
                                    },
                                ),
                            )
                        ),
                    }
                },
            }
        },
        "/.well-known/openid-configuration": {
            "get": {
                "tags": tag,
                "summary": "Discovery: the endpoints and what they support",
                "responses": {
                    "200": {
                        "description": "OpenID provider metadata",
                        **json_content(
                            named(
                                "OpenIdConfiguration",
                                obj(
                                    ("issuer", "token_endpoint", "jwks_uri"),
                                    issuer={"type": "string"},
                                    token_endpoint={"type": "string"},
                                    jwks_uri={"type": "string"},
                                ),
                            )
                        ),
                    }
                },
            }
        },
    }
