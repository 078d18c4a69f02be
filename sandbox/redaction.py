"""Finding credentials in what crosses the sandbox, so they are hidden before anything is
stored: secret headers, secret fields (query, form, JSON, text), and credential shapes
(``chekt_`` keys, JWTs, webhook and client secrets, refresh tokens) anywhere, including a
path segment or a double-encoded query value.

A hidden value leaves a marker. Test credentials (what :class:`Scrub`'s ``revealable`` says
the sandbox itself issued or registered) are kept beside the entry and the marker is numbered
(``[redacted:2]``), so ``reveal=true`` can put them back; every other credential — a wrong or
foreign secret, a password, a ``chekt_live_`` value — is gone for good (``[redacted]``).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_plus

REDACTED = "[redacted]"
_KEPT = r"chekt_(?:test|live)_|whsec_|sandbox_|rt_"
_SHAPE = (
    r"(?P<keep>chekt_(?:test|live)_)[\w-]+"
    r"|(?<![\w-])(?P<keep2>whsec_|sandbox_|rt_)[\w-]{16,}"
    r"|(?<![\w-])eyJ[\w-]{2,}\.[\w-]{2,}\.[\w-]*"
)
SHAPE = re.compile(_SHAPE)
_MARKER = re.compile(rf"({_KEPT})?\[redacted:(\d+)\]")
# names whose values are credentials, compared lowercased with - and _ removed
_SECRET_WORDS = ("secret", "password", "passwd", "token", "apikey", "assertion", "signature")
_SECRET_NAMES = {"key", "credential", "credentials", "privatekey", "codeverifier", "cookie"}
_NOT_SECRET = {"tokentype", "clientassertiontype"}
_HEADERS = {b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"}
_HEADER_WORDS = (b"secret", b"token", b"passw", b"signature", b"api-key", b"apikey", b"api_key")
# a text body's "name: value" / name=value pairs (the name is checked by secret_name). The
# name is taken whole and never given back (possessive), and only where a run of name
# characters starts, so a 64 KiB body scans in linear time whatever it holds.
_TEXT_PAIR = re.compile(rb"""(?<![\w-])([\w-]++)(["']?\s*[:=]\s*["']?)([^\s"'&,;<>]+)""")
# substring tests first: far cheaper than any regex over every body
_SHAPE_STARTS = ("chekt_", "whsec_", "sandbox_", "rt_", "eyJ")
_SHAPE_STARTS_BYTES = tuple(start.encode() for start in _SHAPE_STARTS)
_HINTS = (
    *(b"secret", b"passw", b"token", b"key", b"assertion", b"signature", b"credential"),
    *(b"code", b"cookie", b"%", *(start.lower() for start in _SHAPE_STARTS_BYTES)),
)


_KEPT_BEFORE = (b"chekt", b"whsec", b"sandbox", b"rt")  # what precedes "_" in a shape's start


def plain_headers(packed: bytes) -> bool:
    """True when :meth:`Scrub.headers` would leave every header of ``packed`` (``name:value``
    lines) as it is: no value it would look into (a shape's start, ``%``), no secret name,
    no redirect. Most responses' headers: worth a quick answer."""
    if b"%" in packed or b"eyJ" in packed:
        return False
    at = packed.find(b"_")  # every other shape starts with one of _KEPT_BEFORE and "_"
    while at >= 0:
        if packed.endswith(_KEPT_BEFORE, 0, at):
            return False
        at = packed.find(b"_", at + 1)
    return _plain_header_names(tuple([line.partition(b":")[0] for line in packed.split(b"\n")]))


@functools.lru_cache(maxsize=256)
def _plain_header_names(names: tuple[bytes, ...]) -> bool:
    return not any(secret_header(name) or name.lower() == b"location" for name in names)


def _may_hold_shape(raw: bytes) -> bool:
    return any(start in raw for start in _SHAPE_STARTS_BYTES)


def may_hold_secret(raw: bytes) -> bool:
    """False when ``raw`` surely holds no credential (most bodies): the cheap first test."""
    lower = raw.lower()
    return any(hint in lower for hint in _HINTS)


def _shaped(text: str) -> bool:
    """``SHAPE.search(text) is not None``, tried only where a shape can start (each begins
    with one of ``_SHAPE_STARTS``): the search tries every position of a long text, and a
    media link's token (base64 JSON: it starts with ``eyJ``) is common in responses."""
    if "_" not in text and "eyJ" not in text:  # every other start holds "_"
        return False
    for start in _SHAPE_STARTS:
        shape = _JWT if start == "eyJ" else SHAPE
        at = text.find(start)
        while at >= 0:
            if shape.match(text, at) is not None:  # its look-behind sees text[at - 1]
                return True
            at = text.find(start, at + 1)
    return False


# SHAPE's JWT branch as it can match where "eyJ" starts; possessive, since no character a
# run of [\w-] gives back can be the "." that must follow it (a link's token, one long run
# and one dot, is then read once instead of backtracked through)
_JWT = re.compile(r"(?<![\w-])eyJ[\w-]{2,}+\.[\w-]{2,}+\.")


def secret_name(name: str, *, oauth: bool = False) -> bool:
    """Whether a field or parameter called ``name`` holds a credential. ``code`` is one only
    in an OAuth exchange (a request carrying ``grant_type``, a redirect's query): an error
    envelope's ``code`` is not a secret."""
    if len(name) > _NAME_CACHED:
        return _secret_name(name, oauth)
    return _secret_name_cached(name, oauth)


_NAME_CACHED = 64  # field names repeat in every body; longer "names" are rare and not kept


def _secret_name(name: str, oauth: bool) -> bool:
    plain = name.lower().replace("-", "").replace("_", "")
    if plain in _NOT_SECRET:
        return False
    if plain == "code":
        return oauth
    return plain in _SECRET_NAMES or plain.endswith(_SECRET_WORDS)


_secret_name_cached = functools.lru_cache(maxsize=4096)(_secret_name)


@functools.lru_cache(maxsize=1024)
def secret_header(name: bytes) -> bool:
    lower = name.lower()
    return (
        lower in _HEADERS
        or lower.endswith(b"authorization")
        or any(word in lower for word in _HEADER_WORDS)
    )


def decoded(text: str) -> str:
    """``text`` percent-decoded until it stops changing (double encoding hides nothing)."""
    for _ in range(4):
        if "%" not in text and "+" not in text:
            break
        once = unquote_plus(text, errors="replace")
        if once == text:
            break
        text = once
    return text


def never(value: str) -> bool:
    return False


@dataclass
class Scrub:
    """One entry's redaction; ``vault`` keeps the test credentials it hid, for reveal."""

    revealable: Callable[[str], bool] = never
    vault: list[str] = field(default_factory=list)
    known: KnownClean | None = None  # bodies lately found clean, shared between entries

    def hide(self, value: str, keep: str = "", *, check: str | None = None) -> str:
        if value and self.revealable(value if check is None else check):
            self.vault.append(value)
            return f"{keep}[redacted:{len(self.vault)}]"
        return keep + REDACTED

    def _shape(self, match: re.Match[str]) -> str:
        return self.hide(match.group(0), match.group("keep") or match.group("keep2") or "")

    def text(self, text: str) -> str:
        """Credential shapes hidden, also behind percent-encoding."""
        if "%" in text:
            deep = decoded(text)
            if deep != text and _shaped(deep):
                return SHAPE.sub(self._shape, deep)
        return SHAPE.sub(self._shape, text) if _shaped(text) else text

    def header(self, name: bytes, value: bytes, *, scan: bool = True) -> bytes:
        if not secret_header(name):
            if not scan or (not _may_hold_shape(value) and b"%" not in value):
                return value
            return self.text(value.decode("latin-1")).encode("latin-1", "replace")
        text = value.decode("latin-1")
        scheme, space, credential = text.partition(" ")
        if not space or not scheme.isalpha() or name.lower() in (b"cookie", b"set-cookie"):
            return self.hide(text).encode("latin-1", "replace")
        check = _basic_secret(credential) if scheme.lower() == "basic" else credential.strip()
        return f"{scheme} {self.hide(credential.strip(), check=check)}".encode("latin-1", "replace")

    def headers(
        self, packed: bytes, pairs: Iterable[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """``pairs`` (``packed`` is the same pairs as one block, scanned once)."""
        scan = _may_hold_shape(packed) or b"%" in packed
        out = []
        for name, value in pairs:
            if name.lower() == b"location" and b"?" in value:
                base, _, query = value.partition(b"?")  # a redirect carrying ?code=
                value = base + b"?" + self.query(query, oauth=True)
            out.append((name, self.header(name, value, scan=scan)))
        return out

    def query(self, raw: bytes, *, oauth: bool = False) -> bytes:
        """A query string (or form body) with secret parameters hidden, byte-exact otherwise."""
        if not raw or not may_hold_secret(raw):
            return raw
        text = raw.decode("latin-1")
        oauth = oauth or "grant_type=" in text
        pairs = []
        for pair in text.split("&"):
            name, eq, value = pair.partition("=")
            plain = decoded(value)
            if secret_name(decoded(name), oauth=oauth) and plain:
                value = self.hide(plain)
            elif _shaped(plain):
                value = quote(self.text(plain), safe="[]:/")
            pairs.append(name + eq + value)
        return "&".join(pairs).encode("latin-1", "replace")

    def json(self, value: Any) -> tuple[Any, bool]:
        """``value`` with secrets hidden, and whether anything was."""
        if isinstance(value, dict):
            oauth = "grant_type" in value
            out, changed = {}, False
            for key, item in value.items():
                if secret_name(str(key), oauth=oauth) and item not in (None, "", [], {}):
                    out[key] = self.hide(item if isinstance(item, str) else json.dumps(item))
                    changed = True
                else:
                    out[key], hit = self.json(item)
                    changed = changed or hit
            return out, changed
        if isinstance(value, list):
            items = [self.json(item) for item in value]
            return [item for item, _ in items], any(hit for _, hit in items)
        if isinstance(value, str):
            hidden = self.text(value)
            return hidden, hidden != value
        return value, False

    def body(self, raw: bytes, content_type: str) -> bytes:
        """A body of any content type with its credentials hidden; untouched when it has none."""
        if not raw:
            return raw
        known = self.known
        if known is not None:
            if known.holds(content_type, raw):
                return raw
            if self._known_but_links(known, raw, content_type):
                known.add(content_type, raw)
                return raw
        if not may_hold_secret(raw):
            if known is not None:  # the same answer again is one lookup, not another scan
                known.add(content_type, raw)
            return raw
        return self._remembered(raw, content_type)

    def _remembered(self, raw: bytes, content_type: str) -> bytes:
        hidden = self._body(raw, content_type)
        if hidden is raw and self.known is not None:
            self.known.add(content_type, raw)
        return hidden

    def _known_but_links(self, known: KnownClean, raw: bytes, content_type: str) -> bool:
        """Whether ``raw`` is clean because its skeleton is (the same JSON with each media
        link's token replaced by "T", searched once and remembered) and no token holds the
        start of a shape: a list of alarms is the same JSON from one request to the next but
        for the tokens of the links the sandbox makes anew for each.

        Exact for JSON without escapes or ``%``: each token ends its string (and not a name),
        between an ``=`` and a quote, so no shape reaches into it or out of it, and one with
        a single dot holds no JWT shape; with the token "T", the skeleton is as valid JSON as
        ``raw``, with the same names, and "T" makes no shape either."""
        if "json" not in content_type or b"access_token=" not in raw:
            return False
        if b"\\" in raw or b"%" in raw:
            return False
        tokens = list(_LINK_TOKEN.finditer(raw))
        every = b" ".join([token[1] for token in tokens])  # no start holds a space
        if not tokens or any(start in every for start in _TOKEN_SHAPE_STARTS):
            return False
        pieces: list[bytes] = []
        end = 0
        for token in tokens:
            pieces += (raw[end : token.start(1)], b"T")
            end = token.end(1)
        skeleton = b"".join([*pieces, raw[end:]])
        if known.holds(content_type, skeleton):
            return True
        vault = len(self.vault)
        if self._remembered(skeleton, content_type) is skeleton:
            return True
        del self.vault[vault:]  # what the skeleton hid: raw goes the whole way instead
        return False

    def _body(self, raw: bytes, content_type: str) -> bytes:
        if "x-www-form-urlencoded" in content_type:
            return self.query(raw)
        if "json" in content_type:
            vault = len(self.vault)
            try:
                value = json.loads(raw)
                if _nothing_to_hide(raw, value):
                    return raw
                hidden, changed = self.json(value)
                return json.dumps(hidden, ensure_ascii=False).encode() if changed else raw
            except (ValueError, RecursionError):  # not JSON, or nested past any sense: text
                del self.vault[vault:]
        raw = _TEXT_PAIR.sub(self._pair, raw)
        if not _may_hold_shape(raw) and b"%" not in raw:
            return raw
        return self.text(raw.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")

    def _pair(self, match: re.Match[bytes]) -> bytes:
        if not secret_name(match[1].decode("latin-1")):
            return match[0]
        return match[1] + match[2] + self.hide(match[3].decode("utf-8", "replace")).encode()


_NESTED = 64  # deeper values are left to Scrub.json (which gives up on RecursionError)
# a media link's token as the sandbox signs it (base64 claims, ".", base64 MAC) where it ends a
# JSON string that is not a name; past its one dot only the starts of other shapes matter
_LINK_TOKEN = re.compile(rb'access_token=([\w-]+\.[\w-]+)(?="(?!\s*:))')
_TOKEN_SHAPE_STARTS = tuple(start for start in _SHAPE_STARTS_BYTES if start != b"eyJ")


def _nothing_to_hide(raw: bytes, value: Any) -> bool:
    """:func:`_unchanged` for ``value`` read from ``raw``, faster: when the JSON text has no
    escape and no ``%``, each string in it stands in the text as it is, between quotes, so
    one search of the whole text for shapes stands for a search of every string (a quote
    before one lets a shape start there as the string's start does); the names are then
    checked object by object."""
    if b"\\" in raw or b"%" in raw:
        return _unchanged(value)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # JSON in UTF-16 or -32
        return _unchanged(value)
    if _shaped(text):
        return _unchanged(value)
    todo: list[tuple[Any, int]] = [(value, 0)] if type(value) in _CONTAINERS else []
    while todo:
        item, depth = todo.pop()
        if depth > _NESTED:
            return False
        if type(item) is dict:
            if not _plain_names(tuple(item)):
                return False
            inners: Iterable[Any] = item.values()
        else:
            inners = item
        todo += [(inner, depth + 1) for inner in inners if type(inner) in _CONTAINERS]
    return True


_CONTAINERS = (dict, list)  # what json.loads makes (exactly these types)


def _plain_names(names: tuple[str, ...]) -> bool:
    """No name among an object's ``names`` is a secret one (whatever its value)."""
    if sum(map(len, names)) > 4096:
        return _no_secret_name(names)
    return _no_secret_name_cached(names)


def _no_secret_name(names: tuple[str, ...]) -> bool:
    oauth = "grant_type" in names
    return not any(secret_name(str(name), oauth=oauth) for name in names)


_no_secret_name_cached = functools.lru_cache(maxsize=256)(_no_secret_name)


def _unchanged(value: Any) -> bool:
    """True when :meth:`Scrub.json` would hide nothing in ``value``: no secret field holds a
    value, no string holds a credential shape (also behind percent-encoding). Found without
    building a copy, since most bodies hold nothing."""
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if depth > _NESTED:
            return False
        if isinstance(item, dict):
            oauth = "grant_type" in item
            for key, inner in item.items():
                if secret_name(str(key), oauth=oauth) and inner not in (None, "", [], {}):
                    return False
                if isinstance(inner, str):
                    if _text_changes(inner):
                        return False
                elif isinstance(inner, dict | list):
                    todo.append((inner, depth + 1))
        elif isinstance(item, list):
            todo.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str) and _text_changes(item):
            return False
    return True


def _text_changes(text: str) -> bool:
    """Whether :meth:`Scrub.text` may change ``text`` (it finds a shape where it looks)."""
    if "%" in text:
        deep = decoded(text)
        if deep != text and _shaped(deep):
            return True
    return _shaped(text)


class HeadersMemo:
    """Blocks of request headers lately scrubbed, the most recent ``entries`` of them: what
    each became, the test credentials it put in the vault, and the verdicts of
    ``revealable`` it rested on. A client sends the same headers with every request, so a
    block is read once; a later entry takes the result when ``revealable`` gives the same
    verdicts again (for the credential the guard accepted, one comparison). The scrub is a
    function of the block and those verdicts, so the result is the one it would make."""

    def __init__(self, entries: int = 64) -> None:
        self.entries = entries
        self._blocks: dict[bytes, tuple[bytes, tuple[str, ...], tuple[tuple[str, bool], ...]]]
        self._blocks = {}

    def hide(self, clean: Scrub, block: bytes, hide: Callable[[Scrub, bytes], bytes]) -> bytes:
        """``hide(clean, block)``, or what it made of ``block`` before. The first thing an
        entry scrubs (``clean``'s vault empty), since the markers are numbered."""
        if clean.vault:
            return hide(clean, block)
        revealable = clean.revealable
        found = self._blocks.get(block)
        if found is not None:
            out, vault, asked = found
            if all(revealable(value) is verdict for value, verdict in asked):
                clean.vault.extend(vault)
                return out
        verdicts: list[tuple[str, bool]] = []

        def asking(value: str) -> bool:
            verdict = bool(revealable(value))
            verdicts.append((value, verdict))
            return verdict

        clean.revealable = asking
        try:
            out = hide(clean, block)
        finally:
            clean.revealable = revealable
        if len(self._blocks) >= self.entries:
            self._blocks.clear()
        self._blocks[block] = (out, tuple(clean.vault), tuple(verdicts))
        return out

    def clear(self) -> None:
        self._blocks.clear()


class KnownClean:
    """Bodies lately found to hold no credential, by content type and exact bytes, the most
    recent ``entries`` of them: a list polled again and again (the same bytes until the data
    change) is searched once, not on every request. Finding nothing hides nothing, whatever
    the credentials of the request, so the verdict holds for every later entry."""

    def __init__(self, entries: int = 32) -> None:
        self.entries = entries
        self._bodies: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self._lock = threading.Lock()

    def holds(self, content_type: str, raw: bytes) -> bool:
        with self._lock:
            if (content_type, raw) not in self._bodies:
                return False
            self._bodies.move_to_end((content_type, raw))  # kept while it is asked for
            return True

    def add(self, content_type: str, raw: bytes) -> None:
        with self._lock:
            self._bodies[(content_type, raw)] = None
            self._bodies.move_to_end((content_type, raw))
            while len(self._bodies) > self.entries:
                self._bodies.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._bodies.clear()


def _basic_secret(credential: str) -> str:
    """The secret half of HTTP Basic credentials (what decides whether reveal may show it)."""
    try:
        return base64.b64decode(credential.strip(), validate=True).decode().partition(":")[2]
    except (binascii.Error, UnicodeDecodeError):
        return ""


def unmark(text: str, vault: list[str], *, reveal: bool, quoted: bool = False) -> str:
    """Markers as exported: ``[redacted]``, or with ``reveal`` the test credential itself."""
    if "[redacted:" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        index = int(match[2]) - 1
        if not reveal or index >= len(vault):
            return (match[1] or "") + REDACTED
        return quote(vault[index], safe="") if quoted else vault[index]

    return _MARKER.sub(one, text)


def unmark_all(value: Any, vault: list[str], *, reveal: bool) -> Any:
    if isinstance(value, str):
        return unmark(value, vault, reveal=reveal)
    if isinstance(value, dict):
        return {k: unmark_all(v, vault, reveal=reveal) for k, v in value.items()}
    if isinstance(value, list):
        return [unmark_all(v, vault, reveal=reveal) for v in value]
    return value
