"""Negative cases of the auth server and the resource server that the happy-path suites leave
out: every malformed, confused or hostile credential a partner's client (or an attacker) can
send. Each case pins the status, the error code and the challenge header, and no request may
ever make the sandbox answer 5xx, because a partner debugging their client has to be able to
trust the error they see."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlencode

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from helpers import REDIRECT, Api, Settings, live_server, rsa_key
from one_hop import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox import VirtualClock, create_app
from sandbox.settings import ClientSpec

if TYPE_CHECKING:
    from httpx2 import Response

ISSUER = "http://testserver/"
TOKEN = "/oauth/token"
SITES = "/partner/v1/dealers/1001/sites"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
KID = "partner-key-1"
RSA_KEY = rsa_key()
SECRET = "secret-partner-secret-0123456789"
WEB_SECRET = "web-partner-secret-0123456789"
ODD_SECRET = "an odd+secret with/ spaces&=signs"  # needs form-encoding inside HTTP Basic


def _public(encoding: serialization.Encoding, form: serialization.PublicFormat) -> bytes:
    return RSA_KEY.public_key().public_bytes(encoding, form)


PEM = _public(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


SETTINGS = Settings(
    clients=(
        ClientSpec(  # secret only, no redirect_uris: client credentials only
            client_id="secret-partner",
            client_secret=SECRET,
            dealer_ids=(1001,),
            scopes=("read:dealer", "read:sites"),
        ),
        ClientSpec(  # assertion only, no secret
            client_id="assertion-partner",
            dealer_ids=(1001,),
            scopes=("read:sites",),
            public_key=PEM.decode(),
            key_id=KID,
        ),
        ClientSpec(
            client_id="spa-partner",
            public=True,
            redirect_uris=("http://localhost:5173/cb",),
        ),
        ClientSpec(  # a second confidential client sharing the seeded partner's redirect
            client_id="web-partner",
            client_secret=WEB_SECRET,
            redirect_uris=(REDIRECT,),
        ),
        ClientSpec(client_id="odd-partner", client_secret=ODD_SECRET, dealer_ids=(1001,)),
    )
)


@pytest.fixture
def settings() -> Settings:
    return SETTINGS


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Api]:
    """One app for the whole module: every case here only reads the world or spends
    single-use values (codes, jtis) it made itself, and a fresh app per case costs 0.1 s."""
    with TestClient(create_app(SETTINGS)) as client:
        yield Api(client)


@pytest.fixture
def api(sandbox: Api) -> Iterator[Api]:
    """The module's sandbox, plus: this case made it log no unhandled exception."""
    errors: list[Exception] = sandbox.client.app.state.server_errors  # type: ignore[attr-defined]
    before = len(errors)
    yield sandbox
    assert errors[before:] == []


# ---------------------------------------------------------------- helpers


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _claims(
    client_id: str = "assertion-partner", now: float | None = None, **over: Any
) -> dict[str, Any]:
    """The claims CHeKT's sample signs; ``None`` drops a claim."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "iat": issued,
        "exp": issued + 300,
        "jti": str(uuid.uuid4()),
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWT assembled by hand (PyJWT refuses to build the forged ones)."""
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


def _rs256(claims: dict[str, Any], kid: Any = KID, key: rsa.RSAPrivateKey = RSA_KEY) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    signing_input = _unsigned(header, claims).rsplit(".", 1)[0]
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _hs256(secret: bytes, claims: dict[str, Any] | None = None) -> str:
    signing_input = _unsigned(
        {"alg": "HS256", "typ": "JWT", "kid": KID}, claims or _claims()
    ).rsplit(".", 1)[0]
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _assertion_form(signed: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
        **extra,
    }


def _no_5xx(response: Response) -> Response:
    assert response.status_code < 500, response.text
    return response


def _oauth_error(response: Response, status: int, error: str) -> None:
    """RFC 6749 §5.2: the status, ``{error, error_description}`` and no caching."""
    _no_5xx(response)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert response.headers["cache-control"] == "no-store"


def _resource_error(response: Response, status: int, code: str, challenge: str | None) -> None:
    """The CHeKT envelope and, where due, the RFC 6750 challenge."""
    _no_5xx(response)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["request_id"] == response.headers["x-request-id"]
    if challenge is not None:
        assert response.headers["www-authenticate"].startswith('Bearer realm="chekt"')
        assert f'error="{challenge}"' in response.headers["www-authenticate"]


def _challenge(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode()).digest())


# ---------------------------------------------------------------- client authentication

Build = Callable[[Api], tuple[dict[str, str], dict[str, str]]]
SECRET_FORM = {
    "grant_type": "client_credentials",
    "client_id": "secret-partner",
    "client_secret": SECRET,
}


CLIENT_AUTH: dict[str, tuple[Build, int, str, bool]] = {
    # name: (form and headers, status, error, Basic challenge expected)
    "unknown client over Basic": (
        lambda api: ({"grant_type": "client_credentials"}, _basic("nobody", "x")),
        401,
        "invalid_client",
        True,
    ),
    "wrong secret in the body": (
        lambda api: ({**SECRET_FORM, "client_secret": SECRET + "x"}, {}),
        401,
        "invalid_client",
        False,
    ),
    "Basic header that is not base64": (
        lambda api: ({"grant_type": "client_credentials"}, {"Authorization": "Basic %%not*b64"}),
        400,
        "invalid_request",
        False,
    ),
    "Basic header without a colon": (
        lambda api: (
            {"grant_type": "client_credentials"},
            {"Authorization": "Basic " + base64.b64encode(SECRET.encode()).decode()},
        ),
        400,
        "invalid_request",
        False,
    ),
    "Basic and a client_assertion at once": (
        lambda api: (_assertion_form(_rs256(_claims())), _basic("secret-partner", SECRET)),
        400,
        "invalid_request",
        False,
    ),
    "body client_id differs from the Basic user": (
        lambda api: (
            {"grant_type": "client_credentials", "client_id": "assertion-partner"},
            _basic("secret-partner", SECRET),
        ),
        400,
        "invalid_request",
        False,
    ),
    "a secret for an assertion-only client (body)": (
        lambda api: ({**SECRET_FORM, "client_id": "assertion-partner"}, {}),
        401,
        "invalid_client",
        False,
    ),
    "a secret for an assertion-only client (Basic)": (
        lambda api: ({"grant_type": "client_credentials"}, _basic("assertion-partner", SECRET)),
        401,
        "invalid_client",
        True,
    ),
    "an assertion for a secret-only client": (
        lambda api: (_assertion_form(_rs256(_claims("secret-partner"))), {}),
        401,
        "invalid_client",
        False,
    ),
    "public client using client_credentials": (
        lambda api: ({"grant_type": "client_credentials", "client_id": "spa-partner"}, {}),
        400,
        "unauthorized_client",
        False,
    ),
    "client without redirect_uris using authorization_code": (
        lambda api: ({**SECRET_FORM, "grant_type": "authorization_code", "code": "c"}, {}),
        400,
        "unauthorized_client",
        False,
    ),
    "client without redirect_uris using refresh_token": (
        lambda api: ({**SECRET_FORM, "grant_type": "refresh_token", "refresh_token": "rt_x"}, {}),
        400,
        "unauthorized_client",
        False,
    ),
    "assertion client asking for a scope outside its set": (
        lambda api: (_assertion_form(_rs256(_claims()), scope="read:sites delete:sites"), {}),
        400,
        "invalid_scope",
        False,
    ),
    "secret client asking for a scope that does not exist": (
        lambda api: ({**SECRET_FORM, "scope": "read:sites admin"}, {}),
        400,
        "invalid_scope",
        False,
    ),
    "an access token offered as a client_assertion": (
        lambda api: (_assertion_form(api.token()), {}),
        401,
        "invalid_client",
        False,
    ),
    "an access token offered as a jwt-bearer grant": (
        lambda api: ({"grant_type": JWT_BEARER, "assertion": api.token()}, {}),
        400,
        "invalid_grant",
        False,
    ),
}


@pytest.mark.parametrize("case", list(CLIENT_AUTH))
def test_client_authentication_failures(api: Api, case: str) -> None:
    build, status, error, basic_challenge = CLIENT_AUTH[case]
    form, headers = build(api)
    response = api.client.post(TOKEN, data=form, headers=headers)
    _oauth_error(response, status, error)
    if basic_challenge:  # RFC 6749 §5.2: the scheme the client used
        assert response.headers["www-authenticate"].startswith("Basic")
    else:
        assert "www-authenticate" not in response.headers


def test_basic_credentials_are_form_decoded(api: Api) -> None:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic, so '+' is a space."""
    encoded = _basic(quote_plus("odd-partner"), quote_plus(ODD_SECRET))
    response = api.client.post(TOKEN, data={"grant_type": "client_credentials"}, headers=encoded)
    assert _no_5xx(response).status_code == 200, response.text


def test_get_on_the_token_endpoint_is_405(api: Api) -> None:
    response = _no_5xx(api.client.get(TOKEN, params=SECRET_FORM))
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    assert "access_token" not in response.text


def test_json_token_request_is_refused_by_default(api: Api) -> None:
    _oauth_error(api.client.post(TOKEN, json=SECRET_FORM), 400, "invalid_request")


def test_json_token_request_is_accepted_with_the_auth0_style(settings: Settings) -> None:
    auth0 = Settings(error_style="auth0", clients=settings.clients)
    with TestClient(create_app(auth0)) as client:
        response = client.post(TOKEN, json=SECRET_FORM)
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        sites = client.get(SITES, headers=Api.bearer(token))
        assert sites.status_code == 200
        assert client.app.state.server_errors == []  # type: ignore[attr-defined]


REPEATED: dict[str, list[tuple[str, str]]] = {
    "grant_type": [
        ("grant_type", "client_credentials"),
        ("grant_type", "client_credentials"),
        ("client_id", "secret-partner"),
        ("client_secret", SECRET),
    ],
    "client_secret": [
        ("grant_type", "client_credentials"),
        ("client_id", "secret-partner"),
        ("client_secret", SECRET),
        ("client_secret", "another"),
    ],
    "scope": [
        *SECRET_FORM.items(),
        ("scope", "read:sites"),
        ("scope", "read:dealer"),
    ],
    "client_assertion_type": [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", "assertion-goes-here"),
    ],
}


@pytest.mark.parametrize("case", list(REPEATED))
def test_repeated_parameters_are_invalid_request(api: Api, case: str) -> None:
    pairs = [(k, _rs256(_claims()) if v == "assertion-goes-here" else v) for k, v in REPEATED[case]]
    response = api.client.post(TOKEN, content=urlencode(pairs), headers=FORM)
    _oauth_error(response, 400, "invalid_request")
    assert "repeated" in response.json()["error_description"]


# ---------------------------------------------------------------- authorization code


def test_code_redeemed_by_another_client_is_invalid_grant(api: Api) -> None:
    code = api.code(api.partner["client_id"], scope="read:dealer")
    stolen = api.client.post(
        TOKEN,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "web-partner",
            "client_secret": WEB_SECRET,
        },
    )
    _oauth_error(stolen, 400, "invalid_grant")
    assert "access_token" not in stolen.text


VERIFIER = secrets.token_urlsafe(48)  # 64 characters of [A-Za-z0-9-_]


@pytest.mark.parametrize(
    ("challenge", "verifier"),
    [
        (_challenge(VERIFIER), None),
        (_challenge(VERIFIER), secrets.token_urlsafe(48)),
        (_challenge("a" * 42), "a" * 42),  # one short of RFC 7636's 43
        (_challenge("a" * 129), "a" * 129),  # one past 128
        (_challenge("+" * 43), "+" * 43),  # outside [A-Za-z0-9-._~]
        (_challenge("a b" * 15), "a b" * 15),
        (_challenge("\u00e9" * 43), "\u00e9" * 43),
        (None, VERIFIER),  # a verifier for a code that had no challenge
    ],
    ids=["missing", "wrong", "too short", "too long", "plus", "space", "non-ascii", "unasked"],
)
def test_bad_code_verifiers_are_invalid_grant(
    api: Api, challenge: str | None, verifier: str | None
) -> None:
    pkce = {} if challenge is None else {"code_challenge": challenge}
    if challenge is not None:
        pkce["code_challenge_method"] = "S256"
    code = api.code(api.partner["client_id"], scope="read:dealer", **pkce)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": api.partner["client_id"],
        "client_secret": api.partner["client_secret"],
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    _oauth_error(api.client.post(TOKEN, data=form), 400, "invalid_grant")


# ---------------------------------------------------------------- malformed assertions

NESTED = "[" * 50_000 + "]" * 50_000
MALFORMED: dict[str, str] = {
    "two segments": _b64(b'{"alg":"RS256"}') + "." + _b64(b"{}"),
    "bad base64": "!!!." + "@@@@" + ".####",
    "header not JSON": _b64(b"not json at all") + "." + _b64(b"{}") + ".c2ln",
    "header a JSON array": _b64(b'["RS256"]') + "." + _b64(b"{}") + ".c2ln",
    "payload not an object": _b64(b'{"alg":"RS256","kid":"partner-key-1"}')
    + "."
    + _b64(b"42")
    + ".c2ln",
    "64 KiB of junk": "A" * 65_536,
    "64 KiB of junk in three segments": ".".join(secrets.token_urlsafe(16_384) for _ in range(3)),
    "deeply nested JSON header": _b64(NESTED.encode()) + "." + _b64(b"{}") + ".c2ln",
    "deeply nested JSON payload": _b64(b'{"alg":"RS256"}') + "." + _b64(NESTED.encode()) + ".c2ln",
}


@pytest.mark.latency
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_assertions_are_refused_quickly(api: Api, case: str) -> None:
    form = _assertion_form(MALFORMED[case])
    started = time.perf_counter()
    response = api.client.post(TOKEN, data=form)
    elapsed = time.perf_counter() - started
    _oauth_error(response, 401, "invalid_client")
    assert elapsed < 0.1, f"{case}: {elapsed * 1000:.0f} ms"


def _public_forms() -> dict[str, bytes]:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key())
    return {
        "DER (SubjectPublicKeyInfo)": _public(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "DER (PKCS#1)": _public(serialization.Encoding.DER, serialization.PublicFormat.PKCS1),
        "PEM (PKCS#1)": _public(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        "JWK (JSON)": jwk.encode(),
        "JWK (JSON, with kid)": json.dumps({**json.loads(jwk), "kid": KID}).encode(),
    }


FORGED: dict[str, Callable[[], str]] = {
    "alg None": lambda: _unsigned({"alg": "None", "typ": "JWT", "kid": KID}, _claims()),
    "alg NONE": lambda: _unsigned({"alg": "NONE", "typ": "JWT", "kid": KID}, _claims()),
    "alg none with a signature": lambda: _unsigned(
        {"alg": "none", "typ": "JWT", "kid": KID}, _claims(), b"signature"
    ),
    "alg missing": lambda: _unsigned({"typ": "JWT", "kid": KID}, _claims()),
    "RS256 with an empty signature": lambda: _rs256(_claims()).rsplit(".", 1)[0] + ".",
    **{
        f"HS256 keyed with the public key as {name}": (lambda raw=raw: _hs256(raw))
        for name, raw in _public_forms().items()
    },
}


@pytest.mark.parametrize("case", list(FORGED))
def test_unsigned_and_algorithm_confused_assertions(api: Api, case: str) -> None:
    _oauth_error(
        api.client.post(TOKEN, data=_assertion_form(FORGED[case]())), 401, "invalid_client"
    )


AUDIENCES: dict[str, Any] = {
    "missing": None,
    "double slash": "http://testserver//",
    "https scheme": "https://testserver/",
    "a path": "http://testserver/x",
    "upper case": "HTTP://TESTSERVER/",
    "two audiences": [ISSUER, "https://api.chektdev.com/"],
    "empty list": [],
}


@pytest.mark.parametrize("case", list(AUDIENCES))
def test_audience_must_be_exactly_the_issuer(api: Api, case: str) -> None:
    claims = _claims()
    if AUDIENCES[case] is None:
        del claims["aud"]
    else:
        claims["aud"] = AUDIENCES[case]
    response = api.client.post(TOKEN, data=_assertion_form(_rs256(claims)))
    _oauth_error(response, 401, "invalid_client")


NON_FINITE: dict[str, dict[str, Any]] = {
    "iat NaN hides a ten-year lifetime": {
        "iat": float("nan"),
        "exp": time.time() + 10 * 365 * 86400,
    },
    "exp NaN": {"exp": float("nan")},
    "exp Infinity, iat NaN": {"exp": float("inf"), "iat": float("nan")},
    "nbf NaN": {"nbf": float("nan")},
}


@pytest.mark.parametrize("case", list(NON_FINITE))
def test_non_finite_time_claims_are_refused(api: Api, case: str) -> None:
    """JSON parsers accept NaN/Infinity; every comparison with NaN is false, so a
    naive ``exp - iat > 300`` check lets an unbounded assertion through."""
    response = api.client.post(TOKEN, data=_assertion_form(_rs256(_claims(**NON_FINITE[case]))))
    _oauth_error(response, 401, "invalid_client")


def test_expiry_boundary_with_sixty_seconds_of_skew(settings: Settings) -> None:
    now = 1_800_000_000
    with TestClient(create_app(settings, clock=VirtualClock(start=now))) as client:
        late = _claims(now=now - 359)  # exp = now - 59: within the skew
        too_late = _claims(now=now - 361)  # exp = now - 61: beyond it
        accepted = client.post(TOKEN, data=_assertion_form(_rs256(late)))
        refused = client.post(TOKEN, data=_assertion_form(_rs256(too_late)))
        assert client.app.state.server_errors == []  # type: ignore[attr-defined]
    assert accepted.status_code == 200, accepted.text
    _oauth_error(refused, 401, "invalid_client")
    assert "expired" in refused.json()["error_description"]


HOSTILE_KIDS = {
    "path traversal": "../../etc/passwd",
    "SQL": "' OR 1=1 --",
    "10 KB": "k" * 10_240,
    "NUL byte": "partner-key-1\x00",
    "JNDI": "${jndi:ldap://127.0.0.1/a}",
    "a near miss": "partner-key-1 ",
}


@pytest.mark.parametrize("case", list(HOSTILE_KIDS))
def test_hostile_kids_are_invalid_client(api: Api, case: str) -> None:
    signed = _rs256(_claims(), kid=HOSTILE_KIDS[case])  # the right key: only the kid is wrong
    _oauth_error(api.client.post(TOKEN, data=_assertion_form(signed)), 401, "invalid_client")


@pytest.mark.parametrize("case", list(HOSTILE_KIDS))
def test_hostile_kids_at_the_resource_server(api: Api, case: str) -> None:
    head, payload, signature = api.token().split(".")
    header = {**json.loads(base64.urlsafe_b64decode(head + "==")), "kid": HOSTILE_KIDS[case]}
    forged = f"{_b64(json.dumps(header).encode())}.{payload}.{signature}"
    response = api.client.get(SITES, headers=api.bearer(forged))
    _resource_error(response, 401, "invalid_token", "invalid_token")


def test_unknown_kids_refetch_a_jwks_at_most_once_per_30_s(settings: Settings) -> None:
    fetches: list[float] = []
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))

    async def jwks(request: Request) -> JSONResponse:
        fetches.append(time.monotonic())
        return JSONResponse({"keys": [{**jwk, "kid": "k1", "use": "sig"}]})

    with live_server(Starlette(routes=[Route("/jwks.json", jwks)])) as url:
        spec = ClientSpec(client_id="jwks-partner", dealer_ids=(1001,), jwks_url=f"{url}/jwks.json")
        with TestClient(create_app(Settings(clients=(spec,)))) as client:
            known = client.post(TOKEN, data=_assertion_form(_rs256(_claims("jwks-partner"), "k1")))
            assert known.status_code == 200, known.text
            assert len(fetches) == 1
            started = time.monotonic()
            for _ in range(100):
                signed = _rs256(_claims("jwks-partner"), kid=secrets.token_hex(8))
                response = client.post(TOKEN, data=_assertion_form(signed))
                _oauth_error(response, 401, "invalid_client")
            assert time.monotonic() - started < 30
            assert len(fetches) <= 2, f"{len(fetches) - 1} refetches for 100 unknown kids"
            again = client.post(TOKEN, data=_assertion_form(_rs256(_claims("jwks-partner"), "k1")))
            assert again.status_code == 200
            assert len(fetches) <= 2
            assert client.app.state.server_errors == []  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the resource server


def test_client_assertion_offered_as_a_bearer_token(api: Api) -> None:
    response = api.client.get(SITES, headers=api.bearer(_rs256(_claims())))
    _resource_error(response, 401, "invalid_token", "invalid_token")


def test_hs256_token_keyed_with_the_sandboxs_own_public_key(api: Api) -> None:
    token = api.token()
    kid = jwt.get_unverified_header(token)["kid"]
    published = next(k for k in api.client.get("/.well-known/jwks.json").json()["keys"])
    assert published["kid"] == kid
    pem = jwt.PyJWK(published).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    signing_input = f"{head}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    response = api.client.get(SITES, headers=api.bearer(f"{signing_input}.{_b64(mac)}"))
    _resource_error(response, 401, "invalid_token", "invalid_token")


@pytest.mark.parametrize(
    ("path", "name"),
    [
        (SITES, "access_token"),
        ("/partner/v1/dealers/1001", "access_token"),
        (SITES, "access%5Ftoken"),  # the same parameter, percent-encoded
        ("/partner/v1/dealers/1001", "access%5Ftoken"),
    ],
)
def test_token_in_header_and_query_is_invalid_request(api: Api, path: str, name: str) -> None:
    token = api.token()
    response = api.client.get(f"{path}?{name}={token}", headers=api.bearer(token))
    _resource_error(response, 400, "invalid_request", "invalid_request")
    assert token not in response.text


@pytest.mark.parametrize(
    ("minted_at", "used_at"),
    [("localhost", "testserver"), ("testserver", "testserver:8080")],
)
def test_token_of_another_issuer_origin_is_refused(api: Api, minted_at: str, used_at: str) -> None:
    minted = api.client.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": api.partner["client_id"],
            "client_secret": api.partner["client_secret"],
        },
        headers={"Host": minted_at},
    )
    assert minted.status_code == 200
    token = minted.json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == f"http://{minted_at}/"
    response = api.client.get(SITES, headers={**api.bearer(token), "Host": used_at})
    _resource_error(response, 401, "invalid_token", "invalid_token")


# ---------------------------------------------------------------- production credentials

LIVE = "chekt_live_" + "Q7" * 20


def _live_secret_basic(api: Api) -> Response:
    return api.client.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers=_basic("secret-partner", LIVE)
    )


def _live_secret_at_revoke(api: Api) -> Response:
    form = {"client_id": "secret-partner", "client_secret": LIVE, "token": "anything"}
    return api.client.post("/oauth/revoke", data=form)


def _live_assertion(**claims: str) -> Callable[[Api], Response]:
    def send(api: Api) -> Response:
        return api.client.post(TOKEN, data=_assertion_form(_rs256(_claims(**claims))))

    return send


def _live_jwt_bearer(api: Api) -> Response:
    signed = _rs256(_claims(LIVE))
    return api.client.post(TOKEN, data={"grant_type": JWT_BEARER, "assertion": signed})


LIVE_ENTRIES: dict[str, tuple[Callable[[Api], Response], str | None]] = {
    # name: (request, WWW-Authenticate scheme due)
    "client_secret over Basic": (_live_secret_basic, "Basic"),
    "client_secret at /oauth/revoke": (_live_secret_at_revoke, None),
    "assertion iss and sub": (_live_assertion(iss=LIVE, sub=LIVE), None),
    "assertion iss": (_live_assertion(iss=LIVE), None),
    "assertion sub": (_live_assertion(sub=LIVE), None),
    "jwt-bearer grant iss and sub": (_live_jwt_bearer, None),
}


@pytest.mark.parametrize("case", list(LIVE_ENTRIES))
def test_live_credentials_are_refused_at_every_entry(api: Api, case: str) -> None:
    send, scheme = LIVE_ENTRIES[case]
    response = send(api)
    _oauth_error(response, 401, "live_credentials_not_accepted")
    if scheme is not None:
        assert response.headers.get("www-authenticate", "").startswith(scheme)
    assert LIVE not in response.text
    assert all(LIVE not in value for value in response.headers.values())
