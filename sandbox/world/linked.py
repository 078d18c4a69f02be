"""JSON bodies that carry media links, rendered once and finished per request.

A link in a list works now: the one stored with the media while it lasts, else a new one
(:func:`sandbox.world.snapshots.fresh_link`). The seeded past's links have all expired, so a
list of alarms mints a link per snapshot and clip on every request, each with the expiry
``now + media_url_lifetime``. A :class:`Body` is the list's JSON serialized once (for one
data version), with a :class:`Slot` where each link goes; a request fills the slots for its
``now`` and gets the very bytes a ``JSONResponse`` of the list built afresh would send.
Requests that would get the same links (the same millisecond of expiry) share one rendering.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from typing import Any

from sandbox.world import media


@dataclass(frozen=True)
class Slot:
    """Where a link to the media of ``claims`` goes; ``url`` is the one the record holds."""

    url: str | None
    claims: media.Claims
    extension: str


def _dumps(value: Any) -> str:
    """A leaf as Starlette's ``JSONResponse`` writes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _encode(value: Any, out: list[str | Slot]) -> None:
    """``value`` as ``JSONResponse`` serializes it (compact separators), slots left open."""
    if isinstance(value, Slot):
        out.append(value)
    elif isinstance(value, dict):
        out.append("{")
        for index, (name, item) in enumerate(value.items()):
            out.append(("," if index else "") + _dumps(str(name)) + ":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        out.append(_dumps(value))


class _Link:
    """One slot, ready to fill: the stored link's JSON and until when it works, and a mint."""

    def __init__(self, slot: Slot, key: bytes, base_url: str, lifetime: float) -> None:
        claims = slot.claims
        self.shows_until: float = claims["at"] + claims.get("eta_seconds", 0)
        self.stored = _dumps(slot.url).encode() if slot.url else None
        self.works_until: float = self.shows_until + lifetime  # as fresh_link compares
        self.mint = media.Mint(key, base_url, claims, slot.extension)
        self.address = _dumps(self.mint.address)[:-1].encode()  # '"' and the URL, no '"' yet


class Body:
    """``value``'s JSON with its slots filled per request (see the module's docstring)."""

    def __init__(self, value: Any, key: bytes, base_url: str, lifetime: float) -> None:
        parts: list[str | Slot] = []
        _encode(value, parts)
        self._static: list[bytes] = []  # the text around the links: one more than links
        self._links: list[_Link] = []
        text: list[str] = []
        for part in parts:
            if isinstance(part, Slot):
                self._static.append("".join(text).encode())
                self._links.append(_Link(part, key, base_url, lifetime))
                text = []
            else:
                text.append(part)
        self._static.append("".join(text).encode())
        # the moments a link changes its kind: a stored one stops working, or what a link
        # shows (a responder's arrival) passes; between two of them, every link made at
        # ``now`` expires at round(now + lifetime, 3), and every other link stays as it is
        self._lifetime = lifetime
        self._turns = sorted(
            [link.shows_until for link in self._links]
            + [link.works_until for link in self._links if link.stored is not None]
        )
        self._last: tuple[tuple[int, float], bytes] | None = None

    def render(self, now: float) -> bytes:
        """The JSON at ``now``: each stored link while it works (``now`` before it expires),
        else a new one expiring ``lifetime`` after ``now`` or after what it shows, whichever
        is later (:func:`sandbox.world.snapshots.fresh_link`, :func:`media.link`)."""
        lifetime = self._lifetime
        expiry = round(now + lifetime, 3)
        moment = (bisect.bisect_right(self._turns, now), expiry)
        last = self._last
        if last is not None and last[0] == moment:
            return last[1]  # the same links: the same bytes
        written = float.__repr__(expiry).encode("ascii")  # as JSON writes a float
        out = [self._static[0]]
        for link, text in zip(self._links, self._static[1:], strict=True):
            if link.stored is not None and now < link.works_until:
                out += (link.stored, text)
                continue
            if link.shows_until > now:  # a responder still on the way
                later = round(link.shows_until + lifetime, 3)
                token = link.mint.token_bytes(float.__repr__(later).encode("ascii"))
            else:
                token = link.mint.token_bytes(written)
            out += (link.address, token, b'"', text)
        body = b"".join(out)
        self._last = (moment, body)
        return body
