"""Guards against a web page the developer happens to visit (pure ASGI middleware).

*DNS rebinding*: a page rebinds its own name to 127.0.0.1 and reads the sandbox as if it were
its own origin; its requests still carry ``Host: <its name>``, so only a ``Host`` that names
this sandbox is served. *Cross-site requests*: a page cannot read the answers, but a form post
could still reset the world or rotate keys, so a state-changing request to the control and
auth routes whose ``Origin`` (or, without one, ``Sec-Fetch-Site``) names another site is
refused. The token and revoke endpoints stay open cross-origin: browser SPAs call them by
design (CORS). Requests without these headers (curl, SDKs, servers) pass.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.api.middleware import send_error
from sandbox.errors import PermissionDenied
from sandbox.settings import Settings

GUARDED = ("/_sandbox", "/oauth/", "/authorize", "/v2/", "/.well-known/")
CORS_OPEN = frozenset({"/oauth/token", "/oauth/revoke"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PAGES = frozenset({"/authorize", "/v2/logout"})  # may answer HTML: never inside a frame
NO_FRAMES = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
]
_FIX = "add it to the allowed_hosts setting (config file, or CHEKT_SANDBOX_ALLOWED_HOSTS)"
_CACHE_LIMIT = 256


class HostNotAllowed(PermissionDenied):
    code = "host_not_allowed"


class CrossSiteRequest(PermissionDenied):
    code = "cross_site_request"


def host_name(value: str) -> str:
    """The name in a ``Host`` value: no port, no IPv6 brackets, lower case, no final dot."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    name, colon, port = value.rpartition(":")
    return (name if colon and port.isdigit() else value).rstrip(".")


class HostPolicy:
    """The names this sandbox answers to: loopback, its host, its issuer's host and
    ``allowed_hosts`` (``*`` allows every name)."""

    def __init__(self, settings: Settings) -> None:
        issuer = urlsplit(settings.issuer).hostname if settings.issuer else None
        names = {settings.host, issuer or "", *settings.allowed_hosts}
        self.names = {host_name(n) for n in names if n}
        self.anything = "*" in self.names

    def allows(self, name: str) -> bool:
        if self.anything or name in self.names:
            return True
        if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    def foreign_origin(self, origin: str) -> bool:
        if origin == "null":  # sandboxed frames, file: pages
            return True
        try:
            name = urlsplit(origin).hostname
        except ValueError:
            return True
        return name is None or not self.allows(host_name(name))


class HostVerdicts:
    """``HostPolicy.allows`` for raw ``Host`` values, each judged once."""

    def __init__(self, settings: Settings) -> None:
        self.policy = HostPolicy(settings)
        self._seen: dict[bytes, bool] = {}

    def __call__(self, raw: bytes) -> bool:
        verdict = self._seen.get(raw)
        if verdict is None:
            if len(self._seen) >= _CACHE_LIMIT:
                self._seen.clear()
            verdict = self._seen[raw] = self.policy.allows(host_name(raw.decode("latin-1")))
        return verdict


class BrowserGuard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = HostVerdicts(settings)
        self.policy = self.hosts.policy

    def _problem(self, scope: Scope) -> PermissionDenied | None:
        host = None
        for key, value in scope["headers"]:
            if key == b"host":
                host = value
                break
        if host is not None and not self.hosts(host):
            return HostNotAllowed(
                f"the Host {host.decode('latin-1')!r} does not name this sandbox, so the "
                f"request is refused (a guard against DNS rebinding); if you reach the "
                f"sandbox under that name, {_FIX}"
            )
        path = scope["path"]
        if scope["method"] in SAFE_METHODS or path in CORS_OPEN or not path.startswith(GUARDED):
            return None
        return self._cross_site(dict(scope["headers"]))

    def _cross_site(self, headers: dict[bytes, bytes]) -> PermissionDenied | None:
        origin = headers.get(b"origin")
        if origin is not None:
            foreign = self.policy.foreign_origin(origin.decode("latin-1"))
            why = f"Origin {origin.decode('latin-1')!r}"
        else:
            foreign = headers.get(b"sec-fetch-site") == b"cross-site"
            why = "Sec-Fetch-Site: cross-site"
        if not foreign:
            return None
        return CrossSiteRequest(
            f"a page on another site may not change the sandbox ({why}); call this from "
            f"your own code or a page on the sandbox's host; to trust that page's host, {_FIX}"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is not None:
            request_id = scope.get("state", {}).get("request_id", "req_unknown")
            await send_error(send, problem, request_id, close=True)
            return
        if scope["path"] not in PAGES:
            await self.app(scope, receive, send)
            return

        async def send_unframed(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *NO_FRAMES]
            await send(message)

        await self.app(scope, receive, send_unframed)
