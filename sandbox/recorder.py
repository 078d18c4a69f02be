"""The journal of everything partners sent the sandbox: every inbound request with its
response, in one ordered, bounded, in-memory log.

Bounded by entry count and bytes (oldest evicted first, evictions counted) so a long soak
can't exhaust memory. Kept in process memory because appending must cost microseconds on
the hot path; durable webhook attempts live in the store's outbox instead.
Credentials are hidden when an entry is recorded, before it reaches memory or the spill
files (:mod:`sandbox.redaction`); only test credentials are kept, for ``reveal=true``.
Memory holds only a compact record per entry (:class:`_Kept`, about 300 bytes); headers and
bodies go to the spill files, but for a body a replay answers with again and again, held
once for all its entries (at most 1 MiB of them). Readers pick entries with
:mod:`sandbox.journal_filters`.
"""

from __future__ import annotations

import functools
import json
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sandbox import jsontext
from sandbox.journal_filters import matcher
from sandbox.journal_spill import SpillFiles
from sandbox.redaction import (
    HeadersMemo,
    KnownClean,
    Scrub,
    never,
    plain_headers,
    unmark,
    unmark_all,
)

BODY_LIMIT = 64 * 1024


def pack(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Headers as one bytes object (``name:value`` lines): one object to scrub, spill and
    compare instead of a list of tuples."""
    return b"\n".join([name + b":" + value for name, value in pairs])


def unpack(packed: bytes) -> list[tuple[bytes, bytes]]:
    pairs = []
    for line in packed.split(b"\n") if packed else []:
        name, _, value = line.partition(b":")
        pairs.append((name, value))
    return pairs


@dataclass(slots=True)
class Entry:
    """One request and its answer, as recorded (and as :meth:`Recorder.query` reads it back)."""

    seq: int
    time: float
    method: str
    path: str
    query: bytes
    headers: bytes  # packed raw pairs (see pack): decoded only when exported
    body: bytes
    status: int = 0
    response_headers: bytes = b""
    response_body: bytes = b""
    duration_ms: float = 0.0
    client_id: str | None = None
    tier: str | None = None
    dealer_id: int | None = None
    trace_id: str | None = None
    request_id: str | None = None
    note: str | None = None  # what the sandbox noticed, e.g. a trace id that is not a UUID
    fault: str | None = None  # the inbound fault rule that struck it, and how
    surface: str | None = None  # events into CHeKT: event_api or bridge (its own listener)
    vault: bytes = b""  # the test credentials redaction hid, as a JSON list (for reveal)
    # response_headers' first bytes (whole lines) known plain: a replayed answer's own
    # headers, checked once when it was kept, and those the sandbox made; not stored
    plain_head: int = 0
    response_type: str | None = None  # the response's Content-Type, when known; not stored
    # response_body is an object the sender answers with again and again (a replay's): the
    # journal may keep it once in memory for every entry instead of a copy each; not stored
    response_repeats: bool = False

    @property
    def size(self) -> int:
        """What the byte bound counts: headers and bodies both ways, path and query, plus a
        flat allowance for the small fields."""
        return sum(map(len, _parts(self))) + len(self.path) + len(self.query) + _ALLOWANCE


_PARTS = ("headers", "body", "response_headers", "response_body", "vault")
_ALLOWANCE = 256
_LENGTHS = struct.Struct("<5I")  # a spilled record starts with its parts' lengths
# seq, time, duration_ms, status, where the record is spilled (file << 40 | offset), its length
_NUMBERS = struct.Struct("<qddiQI")
_OFFSET_BITS = 40
_SHARED = 4096  # names (methods, paths, clients) shared between entries; forgotten when full
_HELD = 1 << 20  # bytes of response bodies held in memory for the entries that repeat them


def _parts(entry: Entry) -> list[bytes]:
    return [entry.headers, entry.body, entry.response_headers, entry.response_body, entry.vault]


class _Kept:
    """What memory holds of a recorded entry: its small fields, the numbers packed in one
    bytes object and the names shared with other entries, and where the rest was spilled;
    about 250 bytes, so a journal of 100,000 costs tens of megabytes, not hundreds."""

    __slots__ = (
        "_numbers",
        "body",
        "client_id",
        "dealer_id",
        "fault",
        "method",
        "note",
        "path",
        "query",
        "request_id",
        "surface",
        "tier",
        "trace_id",
    )

    def __init__(
        self,
        entry: Entry,
        numbers: bytes,
        share: Callable[[Any], Any],
        body: bytes | None = None,
    ) -> None:
        self._numbers = numbers
        self.body = body  # the response body, when it is held in memory (see Recorder.add)
        self.method = share(entry.method)
        self.path = share(entry.path)
        self.query = share(entry.query)
        self.client_id = entry.client_id  # a principal's, shared already
        self.tier = entry.tier
        self.dealer_id = entry.dealer_id
        self.trace_id = entry.trace_id
        self.request_id = entry.request_id
        self.note = entry.note
        self.fault = entry.fault
        self.surface = entry.surface

    @property
    def seq(self) -> int:
        seq: int = _NUMBERS.unpack(self._numbers)[0]
        return seq

    @property
    def time(self) -> float:
        at: float = _NUMBERS.unpack(self._numbers)[1]
        return at

    @property
    def status(self) -> int:
        status: int = _NUMBERS.unpack(self._numbers)[3]
        return status

    @property
    def spilled(self) -> tuple[int, int, int]:
        """The spill file, the offset in it and the length of this entry's record."""
        where, length = _NUMBERS.unpack(self._numbers)[4:]
        return where >> _OFFSET_BITS, where & ((1 << _OFFSET_BITS) - 1), length

    @property
    def size(self) -> int:
        """As :attr:`Entry.size` counts it."""
        bulk: int = _NUMBERS.unpack(self._numbers)[5] - _LENGTHS.size
        held = 0 if self.body is None else len(self.body)
        return bulk + held + len(self.path) + len(self.query) + _ALLOWANCE

    def entry(self, parts: Sequence[bytes] = (b"",) * len(_PARTS)) -> Entry:
        seq, at, duration_ms, status, _, _ = _NUMBERS.unpack(self._numbers)
        headers, body, response_headers, response_body, vault = parts
        return Entry(
            seq=seq,
            time=at,
            method=self.method,
            path=self.path,
            query=self.query,
            headers=headers,
            body=body,
            status=status,
            response_headers=response_headers,
            response_body=response_body,
            duration_ms=duration_ms,
            client_id=self.client_id,
            tier=self.tier,
            dealer_id=self.dealer_id,
            trace_id=self.trace_id,
            request_id=self.request_id,
            note=self.note,
            fault=self.fault,
            surface=self.surface,
            vault=vault,
        )


def scrub(
    entry: Entry,
    revealable: Callable[[str], bool] = never,
    known: KnownClean | None = None,
    memo: HeadersMemo | None = None,
) -> None:
    """Hide every credential in ``entry`` before it is stored (see :mod:`sandbox.redaction`);
    ``known``: bodies already found clean; ``memo``: request headers already scrubbed."""
    clean = Scrub(revealable, known=known)
    if entry.headers:
        if memo is None:
            entry.headers = _hidden_headers(clean, entry.headers)
        else:
            entry.headers = memo.hide(clean, entry.headers, _hidden_headers)
    if entry.response_headers:
        entry.response_headers = _hidden_headers(clean, entry.response_headers, entry.plain_head)
    entry.path = clean.text(entry.path)
    entry.query = clean.query(entry.query)
    if entry.body:
        entry.body = clean.body(entry.body, _packed_type(entry.headers))
    if entry.response_body:
        response_type = entry.response_type
        if response_type is None:
            response_type = _packed_type(entry.response_headers)
        entry.response_body = clean.body(entry.response_body, response_type)
    if entry.trace_id is not None:
        entry.trace_id = clean.text(entry.trace_id)
    if entry.client_id is not None and not entry.client_id.isascii():
        entry.client_id = jsontext.scrub(entry.client_id)  # claimed: may hold what UTF-8 cannot
    if clean.vault:
        entry.vault = _vault(tuple(clean.vault))


@functools.lru_cache(maxsize=64)
def _vault(values: tuple[str, ...]) -> bytes:
    """The vault as stored: a client's credential repeats with every request it sends."""
    return json.dumps(list(values)).encode()


def _hidden_headers(clean: Scrub, packed: bytes, plain: int = 0) -> bytes:
    """``plain``: the bytes of ``packed`` known plain (whole lines; plainness is a property
    of each line, so the rest alone is asked about)."""
    if plain >= len(packed) or plain_headers(packed[plain + 1 :] if plain else packed):
        return packed
    return pack(clean.headers(packed, unpack(packed)))


def _packed_type(packed: bytes) -> str:
    """The Content-Type of packed headers, the first if several ("" without one)."""
    lower = packed.lower()
    at = lower.find(b"content-type:")
    while at > 0 and lower[at - 1] != 10:  # inside a line, not a name: look further
        at = lower.find(b"content-type:", at + 1)
    if at < 0:
        return ""
    end = packed.find(b"\n", at)
    return packed[at + 13 : end if end >= 0 else len(packed)].decode("latin-1")


def _sent(text: str) -> Any:
    return jsontext.loads(text, unique_names=False)


def _body(raw: bytes, content_type: str, read: Callable[[str], Any] = _sent) -> Any:
    """A body as JSON when it is JSON, as a form dict when a form, else as text. A request's
    JSON is read as the API reads it, repeated names aside (what no response could carry, a
    surrogate, nesting past the cap, NaN, shows as text); the sandbox's own responses are
    read as they are."""
    text = raw.decode("utf-8", "replace")
    if not text:
        return None
    if "json" in content_type:
        try:
            return read(text)
        except ValueError:
            return text
    if "x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(text, keep_blank_values=True))
    return text


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in raw}


def _content_type(raw: Iterable[tuple[bytes, bytes]]) -> str:
    return next((v.decode("latin-1") for k, v in raw if k.lower() == b"content-type"), "")


def export(entry: Entry, *, reveal: bool = False) -> dict[str, Any]:
    """An entry as the control API shows it; ``reveal`` puts back the test credentials that
    were hidden when it was recorded (nothing else was kept)."""
    request_headers, response_headers = unpack(entry.headers), unpack(entry.response_headers)
    vault: list[str] = json.loads(entry.vault) if entry.vault else []
    exported = {
        "seq": entry.seq,
        "time": entry.time,
        "method": entry.method,
        "path": entry.path,
        "query": unmark(entry.query.decode("latin-1"), vault, reveal=reveal, quoted=True),
        "headers": _headers(request_headers),
        "body": _body(entry.body, _content_type(request_headers)),
        "client_id": entry.client_id,
        "tier": entry.tier,
        "dealer_id": entry.dealer_id,
        "trace_id": entry.trace_id,
        "request_id": entry.request_id,
        "note": entry.note,
        "fault": entry.fault,
        "surface": entry.surface,
        "status": entry.status,
        "response_headers": _headers(response_headers),
        "response_body": _body(entry.response_body, _content_type(response_headers), json.loads),
        "duration_ms": entry.duration_ms,
    }
    if not vault:
        return exported
    for name in ("path", "headers", "body", "trace_id", "response_headers", "response_body"):
        exported[name] = unmark_all(exported[name], vault, reveal=reveal)
    return exported


def summary(entry: Entry) -> dict[str, Any]:
    """The small fields of an entry, as :func:`export` shows them without ``reveal`` (a
    list's row: nothing read back from the spill files)."""
    return {
        "seq": entry.seq,
        "time": entry.time,
        "method": entry.method,
        "path": unmark(entry.path, [], reveal=False),
        "query": unmark(entry.query.decode("latin-1"), [], reveal=False, quoted=True),
        "client_id": entry.client_id,
        "tier": entry.tier,
        "status": entry.status,
        "duration_ms": entry.duration_ms,
        "fault": entry.fault,
    }


class Recorder:
    def __init__(self, max_entries: int = 10_000, max_bytes: int = 50 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: deque[_Kept] = deque()
        self._bytes = 0
        self._seq = 0
        self.evicted = 0
        self._lock = threading.Lock()
        self._spill = SpillFiles(segment=max(1 << 20, max_bytes // 4))
        self._clean = KnownClean()
        self._memo = HeadersMemo()
        self._shared: dict[Any, Any] = {}
        # response bodies held in memory for the entries that answered with them (a replay
        # answers with the same object each time): id -> [body, entries kept that hold it]
        self._bodies: dict[int, list[Any]] = {}
        self._held = 0  # their bytes, at most _HELD

    def _share(self, value: Any) -> Any:
        """``value``, or an equal one already held (None as it is)."""
        if value is None:
            return None
        shared = self._shared.get(value)
        if shared is None:
            if len(self._shared) >= _SHARED:
                self._shared.clear()
            shared = self._shared[value] = value
        return shared

    def _load(self, kept: _Kept) -> Entry:
        index, offset, length = kept.spilled
        data = self._spill.read(index, offset, length)
        lengths = _LENGTHS.unpack_from(data)
        parts, at = [], _LENGTHS.size
        for size in lengths:
            parts.append(data[at : at + size])
            at += size
        if kept.body is not None:
            parts[3] = kept.body
        return kept.entry(parts)

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def add(self, entry: Entry, revealable: Callable[[str], bool] = never) -> None:
        """Record ``entry``, its credentials hidden first (``revealable``: see :class:`Scrub`);
        one without a ``seq`` is given the next."""
        body = entry.response_body
        scrub(entry, revealable, self._clean, self._memo)
        # a body answered again and again, which redaction left as it was, is held in memory
        # once for all its entries instead of spilled with each
        repeated = entry.response_repeats and entry.response_body is body and body != b""
        entries = self._entries
        with self._lock:
            held = False
            if repeated:
                found = self._bodies.get(id(body))
                if found is not None:
                    found[1] += 1
                    held = True
                elif self._held + len(body) <= _HELD:  # else spilled like any other body
                    self._bodies[id(body)] = [body, 1]
                    self._held += len(body)
                    held = True
            if held:
                entry.response_body = b""
            parts = _parts(entry)
            record = b"".join([_LENGTHS.pack(*map(len, parts)), *parts])
            if held:
                entry.response_body = body
            if not entry.seq:
                self._seq += 1
                entry.seq = self._seq
            index, offset = self._spill.write(record)
            numbers = _NUMBERS.pack(
                entry.seq,
                entry.time,
                entry.duration_ms,
                entry.status,
                index << _OFFSET_BITS | offset,
                len(record),
            )
            kept = _Kept(entry, numbers, self._share, body if held else None)
            entries.append(kept)
            self._bytes += len(record) - _LENGTHS.size + len(kept.path) + len(kept.query)
            self._bytes += _ALLOWANCE + (len(body) if held else 0)
            if len(entries) > self.max_entries or self._bytes > self.max_bytes:
                where = 0  # where the last entry evicted was spilled
                while entries and (len(entries) > self.max_entries or self._bytes > self.max_bytes):
                    oldest = entries.popleft()
                    where, length = _NUMBERS.unpack(oldest._numbers)[4:]
                    self._bytes -= length - _LENGTHS.size + _ALLOWANCE
                    self._bytes -= len(oldest.path) + len(oldest.query)
                    if oldest.body is not None:  # one entry fewer holds it
                        self._bytes -= len(oldest.body)
                        found = self._bodies[id(oldest.body)]
                        found[1] -= 1
                        if not found[1]:
                            del self._bodies[id(oldest.body)]
                            self._held -= len(oldest.body)
                    self.evicted += 1
                # the files before its own hold older entries only: all evicted now
                self._spill.release_before(where >> _OFFSET_BITS)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self.evicted = 0
            self._spill.close()
            self._shared.clear()
            self._bodies.clear()
            self._held = 0
        self._clean.clear()
        self._memo.clear()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": len(self._entries),
                "bytes": self._bytes,
                "evicted": self.evicted,
                "last_seq": self._seq,
            }

    def query(self, filters: Mapping[str, str]) -> list[Entry]:
        """Entries matching every filter (see :func:`matcher`), oldest first. Filtering runs
        outside the lock, so a slow filter never holds up recording."""
        test = matcher(filters)
        limit = int(filters.get("limit", "10000"))
        with self._lock:
            entries = list(self._entries)
        chosen = [e for e in entries if test(e)][:limit]
        with self._lock:
            kept = self._entries[0].seq if self._entries else self._seq + 1
            return [self._load(e) for e in chosen if e.seq >= kept]  # evicted meanwhile: gone

    def newest(
        self, filters: Mapping[str, str], before: int | None, limit: int
    ) -> tuple[list[Entry], bool]:
        """One page of entries matching ``filters``, newest first, older than seq ``before``
        (a dashboard pages a journal of 100,000 this way); and whether older ones remain.
        Entries are not loaded from the spill files: a list shows the small fields only."""
        test = matcher(filters)
        with self._lock:
            entries = list(self._entries)
        page: list[Entry] = []
        for kept in reversed(entries):
            if before is not None and kept.seq >= before:
                continue
            if test(kept):
                if len(page) == limit:
                    return page, True
                page.append(kept.entry())
        return page, False

    def find(self, seq: int) -> Entry | None:
        """The entry ``seq``, loaded, or None when it was never kept or has been evicted."""
        with self._lock:
            if not self._entries or not self._entries[0].seq <= seq <= self._entries[-1].seq:
                return None
            index = seq - self._entries[0].seq  # seqs are consecutive while kept
            entry = self._entries[index] if index < len(self._entries) else None
            if entry is None or entry.seq != seq:
                entry = next((e for e in self._entries if e.seq == seq), None)
            return None if entry is None else self._load(entry)
