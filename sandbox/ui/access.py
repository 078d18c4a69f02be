"""Who may use the dashboard, and how its pages defend themselves: the control API's rules
in a browser's terms.

*Access*: open on a loopback bind, as the control API is; on any other bind the admin token
is typed once into a login form and kept as an HttpOnly, SameSite=Strict cookie holding a
keyed hash of it (never the token itself, never in a URL). *Forged forms*: every
state-changing request carries a per-browser CSRF token (a cookie, echoed in a header or a
form field) on top of the app's Origin check (:mod:`sandbox.api.browser`). *Injection*:
every page is sent with a strict Content-Security-Policy (scripts and styles only from the
sandbox's own files, nothing inline) and every value is escaped by the templates.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.api.common import services
from sandbox.errors import PermissionDenied

PREFIX = "/_sandbox/ui"
SESSION_COOKIE = "chekt_ui_session"
CSRF_COOKIE = "chekt_ui_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class ForgedRequest(PermissionDenied):
    code = "csrf_token_mismatch"


class Protected:
    """ASGI wrapper of every dashboard route: the security headers on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_protected(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_protected)


def session_value(admin_token: str) -> str:
    """What the session cookie holds: a keyed hash of the admin token, so the cookie alone
    never discloses the token (and changes when the token does)."""
    return hmac.new(admin_token.encode(), b"chekt-sandbox dashboard", hashlib.sha256).hexdigest()


def signed_in(request: Request) -> bool:
    """Loopback bind: always. Otherwise: the session cookie matches the admin token."""
    settings = services(request).settings
    if settings.loopback:
        return True
    if not settings.admin_token:
        return False
    given = request.cookies.get(SESSION_COOKIE, "")
    return secrets.compare_digest(given.encode(), session_value(settings.admin_token).encode())


def token_matches(request: Request, given: str) -> bool:
    """``given`` is the admin token (the login form)."""
    expected = services(request).settings.admin_token
    return bool(expected) and secrets.compare_digest(given.encode(), str(expected).encode())


def csrf_token(request: Request) -> str:
    """This browser's CSRF token: the cookie's, or a new one (the page's answer sets it)."""
    known = request.cookies.get(CSRF_COOKIE)
    if known and len(known) == 43:
        return known
    fresh: str | None = getattr(request.state, "csrf", None)
    if fresh is None:
        fresh = request.state.csrf = secrets.token_urlsafe(32)
    return fresh


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    """A dashboard cookie: HttpOnly, SameSite=Strict, Secure over TLS, for its pages only."""
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=PREFIX,
    )


async def form(request: Request) -> dict[str, str]:
    """A posted form (urlencoded, as htmx and plain forms send it), its CSRF token checked."""
    raw = await request.body()
    fields = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    given = request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD, "")
    known = request.cookies.get(CSRF_COOKIE, "")
    if not known or not secrets.compare_digest(given.encode(), known.encode()):
        raise ForgedRequest(
            "this form did not carry this browser's CSRF token; reload the page and try again"
        )
    return fields
