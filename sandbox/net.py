"""Where the sandbox may connect: the destination policy of every outbound request
(registered JWKS URLs now, webhook deliveries later).

The policy is applied to the *resolved* addresses, inside aiohttp's resolver hook, so a
host name that resolves somewhere forbidden at send time is refused even if it looked fine
at registration. Loopback is allowed (partners run receivers on their laptop) except the
sandbox's own port; link-local, site-local and cloud-metadata addresses never are; private
ranges only when ``allow_private_destinations`` is set. A 6to4 address is judged by the IPv4
address it carries.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, ...
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
MAX_RESPONSE = 64 * 1024


class DestinationRefused(Exception):
    """The destination is not one the sandbox may contact."""


class DestinationPolicy:
    def __init__(self, *, allow_private: bool = False, own_ports: tuple[int, ...] = ()) -> None:
        self.allow_private = allow_private
        self.own_ports = own_ports  # the sandbox's listeners: the API's, the bridges'

    def address_problem(self, address: IPAddress, port: int) -> str | None:
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            elif address.sixtofour is not None:  # 2002::/16 carries an IPv4 address
                problem = self.address_problem(address.sixtofour, port)
                return None if problem is None else f"{address} is 6to4 ({problem})"
            elif address.is_site_local:
                return f"{address} is site-local (fec0::/10, deprecated)"
        if address in METADATA:
            return f"{address} is a cloud metadata address"
        if address.is_link_local:
            return f"{address} is link-local"
        if address.is_loopback:  # before is_reserved, which ::1 also is
            if port in self.own_ports:
                return "the sandbox does not deliver to its own port"
            return None
        if address.is_unspecified or address.is_multicast or address.is_reserved:
            return f"{address} is not a unicast destination"
        if address.is_private and not self.allow_private:
            return f"{address} is a private address (enable allow_private_destinations)"
        return None

    def url_problem(self, url: str) -> str | None:
        """Checks that need no DNS: the URL's form, and literal addresses."""
        scheme, colon, rest = url.partition(":")
        url = scheme.lower() + colon + rest  # schemes are case-insensitive
        named = NAMED_URL.fullmatch(url) is not None
        if not (named or _LITERAL_URL.fullmatch(url)):
            if not url.startswith(("http://", "https://")):
                return "must be an http or https URL"
            return (
                "must be http(s)://host[:port][/path] with a host name of letters, digits and "
                "hyphens (or an IP address), a port from 1 to 65535, no credentials, and a "
                "path of printable ASCII without spaces"
            )
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return "is not a valid URL"
        host = parts.hostname or ""
        if named:
            if host.lower() != "localhost":
                return None  # a name: judged on its resolved addresses at every attempt
            host = "127.0.0.1"
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            return f"has {host!r}, which is not an IP address"
        problem = self.address_problem(literal, port)
        return None if problem is None else f"points at a refused address: {problem}"


_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = (
    "(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?"
)
_PATH = "(?:/[!-~]*)?"
# a name's last label starts with a letter, so no name is mistaken for an IPv4 address
URL_PATTERN = (
    f"^https?://(?:{_LABEL}\\.)*[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?{_PORT}{_PATH}$"
)
NAMED_URL = re.compile(URL_PATTERN.strip("^$"))
_LITERAL_URL = re.compile(
    f"https?://(?:[0-9]{{1,3}}(?:\\.[0-9]{{1,3}}){{3}}|\\[[0-9A-Fa-f:.]+\\]){_PORT}{_PATH}"
)
