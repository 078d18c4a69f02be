"""Where the auth server may send a browser: redirect URIs (exact, but any port on loopback)
and logout targets (registered, or the origins of the redirect URIs)."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return None
    return parts


def redirect_allowed(redirect_uris: tuple[str, ...], uri: str) -> bool:
    """Exact match, except that a loopback ``http`` redirect may use any port (RFC 8252
    §7.3): a native app or a test listens on whatever port it got."""
    if uri in redirect_uris:
        return True
    given = _split(uri)
    if given is None or given.scheme != "http" or given.hostname not in LOOPBACK_HOSTS:
        return False
    if given.username is not None or given.password is not None:
        return False
    for registered in map(_split, redirect_uris):
        if (
            registered is not None
            and registered.scheme == "http"
            and registered.hostname == given.hostname
            and registered.username is None
            and (registered.path, registered.query, registered.fragment)
            == (given.path, given.query, given.fragment)
        ):
            return True
    return False


def _origin(parts: SplitResult | None) -> tuple[str, str, int] | None:
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None:
        return None
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def logout_allowed(logout_urls: tuple[str, ...], redirect_uris: tuple[str, ...], to: str) -> bool:
    """One of the client's logout URLs or, when it registered none, the origin of one of its
    redirect URIs (with or without the trailing slash)."""
    if logout_urls:
        return to in logout_urls
    given = _split(to)
    if given is None or given.path not in ("", "/") or given.query or given.fragment:
        return False
    origins = {_origin(_split(uri)) for uri in redirect_uris} - {None}
    return _origin(given) in origins
