"""CHeKT's own Node sample client (``chekt/chekt-service-auth0-sample``), replayed request for
request against a real ``chekt-sandbox serve --tls`` process.

The sample is what partners copy, so the sandbox must answer every one of its requests the
way the real server does, over HTTPS, with the issuer the sample derives from its domain
(``https://<domain>/``): the M2M assertion exchange and its verification
(``src/m2m-assertion-service.js``), then the authorization code flow with refresh, revocation
and logout (``src/auth-code-service.js``). Nothing here is a stand-in: the sandbox is the
installed CLI, and TLS is verified against the local CA it creates.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import PIPE, STDOUT, Popen
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import jwt
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CLI = str(Path(sys.executable).with_name("chekt-sandbox"))
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PARTNER_CLAIM = "https://api.chektdev.com/claims/partner"
AUDIENCE = "https://adc-m2m.chektdev.com/"  # the sandbox's API identifier (M2M_AUDIENCE)
M2M_CLIENT = "sample-m2m-client"
M2M_KID = "sample-key-1"
WEB_CLIENT = "sample-web-client"
WEB_SECRET = "sample-web-secret-0123456789abcdef"
REDIRECT_URI = "http://localhost:3000/callback"
RETURN_TO = "http://localhost:3000"  # buildLogoutUrl's default, no trailing slash
# buildAuthorizationUrl's scope, verbatim
SCOPE = (
    "openid profile email offline_access read:dealer update:dealer create:sites read:sites "
    "update:sites delete:sites create:devices read:devices update:devices delete:devices"
)
# what axios 1.x sends besides the body
AXIOS = {"Accept": "application/json, text/plain, */*", "User-Agent": "axios/1.8.4"}
FORM = {**AXIOS, "Content-Type": "application/x-www-form-urlencoded"}


def _querystring(fields: dict[str, str]) -> str:
    """Node's ``querystring.stringify``: encodeURIComponent on keys and values, in order."""
    safe = "-_.!~*'()"
    return "&".join(f"{quote(k, safe=safe)}={quote(v, safe=safe)}" for k, v in fields.items())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _client_assertion(key: rsa.RSAPrivateKey, audience: str) -> str:
    """``createClientAssertionJwt``: jsonwebtoken's header and claim order, expiresIn '5m'."""
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": M2M_KID}
    claims = {
        "iss": M2M_CLIENT,
        "sub": M2M_CLIENT,
        "aud": audience,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "exp": now + 300,
    }
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


def _verify(http: httpx.Client, token: str, *, audience: str, issuer: str, azp: str) -> Any:
    """``verifyAccessToken``: the key by ``kid`` from jwks-rsa, RS256, aud, iss, then azp."""
    kid = jwt.get_unverified_header(token)["kid"]
    jwks = http.get("/.well-known/jwks.json", headers=AXIOS)
    assert jwks.status_code == 200
    key = next(k for k in jwks.json()["keys"] if k["kid"] == kid)
    assert key["kty"] == "RSA" and key["use"] == "sig"
    claims = jwt.decode(
        token, jwt.PyJWK(key).key, algorithms=["RS256"], audience=audience, issuer=issuer
    )
    assert claims["azp"] == azp, "Unauthorized Client"
    return claims


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _output(process: Popen[str]) -> str:
    return process.stdout.read() if process.stdout and process.poll() is not None else ""


@contextmanager
def _serve_tls(tmp_path: Path, config: Path) -> Iterator[tuple[str, ssl.SSLContext]]:
    """``chekt-sandbox serve --tls`` with its state in ``tmp_path``; yields the https base URL
    and an SSL context that trusts only the sandbox's local CA."""
    state = tmp_path / "state"
    port = _free_port()
    env = {**os.environ, "CHEKT_SANDBOX_STATE_DIR": str(state)}
    command = [CLI, "serve", "--tls", "--config", str(config), "--port", str(port)]
    command += ["--db", ":memory:"]
    with Popen(command, env=env, cwd=tmp_path, stdout=PIPE, stderr=STDOUT, text=True) as process:
        try:
            ca = state / "tls" / "ca.pem"
            base = f"https://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            context: ssl.SSLContext | None = None
            while context is None:
                assert process.poll() is None, f"serve exited early:\n{_output(process)}"
                assert time.monotonic() < deadline, "serve --tls did not come up within 20 s"
                if ca.exists():
                    candidate = ssl.create_default_context(cafile=str(ca))
                    try:
                        with httpx.Client(verify=candidate, timeout=1) as probe:
                            probe.get(f"{base}/.well-known/jwks.json").raise_for_status()
                        context = candidate
                        continue
                    except (httpx.TransportError, ssl.SSLError):
                        pass
                time.sleep(0.05)
            yield base, context
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=10)
            assert process.returncode == 0, _output(process)


def test_the_node_sample_against_serve_tls(tmp_path: Path) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = tmp_path / "sandbox.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "clients": [
                    {
                        "client_id": M2M_CLIENT,
                        "kind": "platform_partner",
                        "dealer_ids": [1001],
                        "public_key": public_pem.decode(),
                        "key_id": M2M_KID,
                    },
                    {
                        "client_id": WEB_CLIENT,
                        "client_secret": WEB_SECRET,
                        "kind": "platform_partner",
                        # no logout_urls: returnTo may be the origin of a redirect URI
                        "redirect_uris": [REDIRECT_URI],
                    },
                ]
            }
        )
    )
    with (
        _serve_tls(tmp_path, config) as (base, context),
        httpx.Client(base_url=base, verify=context, timeout=10) as http,
    ):
        domain = urlsplit(base).netloc  # M2M_AUTH0_DOMAIN / AUTH0_DOMAIN
        issuer = f"https://{domain}/"  # assertionAudience, and the issuer the sample verifies
        assert http.get("/.well-known/openid-configuration").json()["issuer"] == issuer

        # (1) requestAccessTokenWithAssertion: no client_id, the partner claim as JSON text
        assertion = _client_assertion(private_key, issuer)
        assert jwt.decode(assertion, options={"verify_signature": False})["aud"] == issuer
        body = _querystring(
            {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
                "audience": AUDIENCE,
                PARTNER_CLAIM: json.dumps(
                    {"dealer_id": "1234567890", "site_id": "1234567890"}, separators=(",", ":")
                ),
            }
        )
        m2m = http.post("/oauth/token", content=body, headers=FORM)
        assert m2m.status_code == 200, m2m.text
        token_info = m2m.json()
        assert token_info["token_type"] == "Bearer" and token_info["expires_in"] == 3600
        assert "refresh_token" not in token_info and "id_token" not in token_info

        # (2) verifyAccessToken: JWKS by kid, RS256, aud, iss, azp; the claim as an object
        claims = _verify(
            http, token_info["access_token"], audience=AUDIENCE, issuer=issuer, azp=M2M_CLIENT
        )
        assert claims["sub"] == f"{M2M_CLIENT}@clients"
        assert claims["gty"] == "client-credentials"
        assert claims[PARTNER_CLAIM] == {"dealer_id": "1234567890", "site_id": "1234567890"}

        # (3) /login -> /authorize (no state, no PKCE) -> /callback -> requestAccessToken
        admin = next(
            u
            for u in http.get("/_sandbox/credentials").json()["users"]
            if u["role"] == "dealer_admin"
        )
        query = _querystring(
            {
                "response_type": "code",
                "client_id": WEB_CLIENT,
                "redirect_uri": REDIRECT_URI,
                "scope": SCOPE,
                "audience": AUDIENCE,
                "login_hint": admin["email"],  # the sandbox's non-interactive sign-in
            }
        )
        authorized = http.get(f"/authorize?{query}", follow_redirects=False)
        assert authorized.status_code == 302, authorized.text
        location = urlsplit(authorized.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
        callback = parse_qs(location.query)
        assert set(callback) == {"code"}, callback  # no state was sent, none comes back
        tokens = http.post(
            "/oauth/token",
            content=_querystring(
                {
                    "grant_type": "authorization_code",
                    "client_id": WEB_CLIENT,
                    "client_secret": WEB_SECRET,
                    "code": callback["code"][0],
                    "redirect_uri": REDIRECT_URI,
                }
            ),
            headers=FORM,
        )
        assert tokens.status_code == 200, tokens.text
        first = tokens.json()
        assert first["refresh_token"] and first["id_token"]
        assert set(first["scope"].split()) == set(SCOPE.split())
        user_claims = _verify(
            http, first["access_token"], audience=AUDIENCE, issuer=issuer, azp=WEB_CLIENT
        )
        assert user_claims["sub"] == admin["user_id"]
        id_claims = _verify(
            http, first["id_token"], audience=WEB_CLIENT, issuer=issuer, azp=WEB_CLIENT
        )
        assert id_claims["sub"] == admin["user_id"] and id_claims["email"] == admin["email"]
        assert "nonce" not in id_claims

        # (4) refreshAccessToken: the sample stores the rotated refresh token
        refreshed = http.post(
            "/oauth/token",
            content=_querystring(
                {
                    "grant_type": "refresh_token",
                    "client_id": WEB_CLIENT,
                    "client_secret": WEB_SECRET,
                    "refresh_token": first["refresh_token"],
                }
            ),
            headers=FORM,
        )
        assert refreshed.status_code == 200, refreshed.text
        second = refreshed.json()
        assert second["refresh_token"] != first["refresh_token"] and second["id_token"]
        _verify(http, second["access_token"], audience=AUDIENCE, issuer=issuer, azp=WEB_CLIENT)

        # (5) revokeRefreshToken, then /refresh with the revoked token fails
        revoked = http.post(
            "/oauth/revoke",
            content=_querystring(
                {
                    "client_id": WEB_CLIENT,
                    "client_secret": WEB_SECRET,
                    "token": second["refresh_token"],
                }
            ),
            headers=FORM,
        )
        assert revoked.status_code == 200, revoked.text
        again = http.post(
            "/oauth/token",
            content=_querystring(
                {
                    "grant_type": "refresh_token",
                    "client_id": WEB_CLIENT,
                    "client_secret": WEB_SECRET,
                    "refresh_token": second["refresh_token"],
                }
            ),
            headers=FORM,
        )
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"

        # (6) buildLogoutUrl: the sample interpolates returnTo without encoding it
        logout = http.get(
            f"/v2/logout?client_id={WEB_CLIENT}&returnTo={RETURN_TO}", follow_redirects=False
        )
        assert logout.status_code == 302, logout.text
        assert logout.headers["location"] == RETURN_TO
