"""The journal of everything partners sent the sandbox: every inbound request with its
response, in one ordered, bounded, in-memory log.

Bounded by entry count and bytes (oldest evicted first, evictions counted) so a long soak
can't exhaust memory. Kept in process memory because appending must cost microseconds on
the hot path; durable webhook attempts live in the store's outbox instead.
Secrets are redacted when entries are exported, unless the caller explicitly asks for them.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import tempfile
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sandbox import jsontext

BODY_LIMIT = 64 * 1024
SECRET_HEADERS = {"authorization", "x-sandbox-admin-token", "cookie", "set-cookie"}
SECRET_FIELDS = {
    "client_secret",
    "client_assertion",
    "assertion",
    "code",
    "code_verifier",
    "refresh_token",
    "access_token",
    "id_token",
    "secret",
    "token",
    "key",
    "password",
    "signature",
}
_SECRET_VALUE = re.compile(r"chekt_(test|live)_[A-Za-z0-9]+|eyJ[\w-]+\.[\w-]+\.[\w-]*")


def pack(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Headers as one bytes object: a journal of 10,000 entries then holds 10,000 objects for
    the garbage collector to walk instead of hundreds of thousands of tuples."""
    return b"\n".join([name + b":" + value for name, value in pairs])


def unpack(packed: bytes) -> list[tuple[bytes, bytes]]:
    pairs = []
    for line in packed.split(b"\n") if packed else []:
        name, _, value = line.partition(b":")
        pairs.append((name, value))
    return pairs


@dataclass(slots=True)
class Entry:
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
    spilled: tuple[int, int, int, int, int, int] | None = None  # file, offset, four lengths

    @property
    def size(self) -> int:
        """What the byte bound counts: the bodies, plus a flat allowance for the rest."""
        if self.spilled is not None:
            return self.spilled[3] + self.spilled[5] + 512
        return len(self.body) + len(self.response_body) + 512


def redact_text(text: str) -> str:
    return _SECRET_VALUE.sub(lambda m: m.group(0)[:12] + "…[redacted]", text)


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: ("[redacted]" if k.lower() in SECRET_FIELDS and v else _redact_json(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _sent(text: str) -> Any:
    return jsontext.loads(text, unique_names=False)


def _body(raw: bytes, content_type: str, reveal: bool, read: Callable[[str], Any] = _sent) -> Any:
    """A body as JSON when it is JSON, as a form dict when a form, else as text. A request's
    JSON is read as the API reads it, repeated names aside (what no response could carry, a
    surrogate, nesting past the cap, NaN, shows as text); the sandbox's own responses are
    read as they are."""
    text = raw.decode("utf-8", "replace")
    if not text:
        return None
    if "json" in content_type:
        try:
            parsed = read(text)
        except ValueError:
            return text if reveal else redact_text(text)
        return parsed if reveal else _redact_json(parsed)
    if "x-www-form-urlencoded" in content_type:
        form = dict(parse_qsl(text, keep_blank_values=True))
        return form if reveal else _redact_json(form)
    return text if reveal else redact_text(text)


def redact_query(query: str) -> str:
    """A query string with the values of secret parameters (code, token, ...) hidden."""
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(k.lower() in SECRET_FIELDS for k, _ in pairs):
        return redact_text(query)
    return urlencode(
        [(k, "[redacted]" if k.lower() in SECRET_FIELDS else redact_text(v)) for k, v in pairs]
    )


def _headers(raw: Iterable[tuple[bytes, bytes]], reveal: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if not reveal and name.lower() in SECRET_HEADERS:
            scheme = value.split(" ", 1)[0] if " " in value else ""
            value = f"{scheme} [redacted]".strip()
        elif not reveal and name.lower() == "location" and "?" in value:
            base, _, query = value.partition("?")  # e.g. a redirect carrying ?code=
            value = f"{base}?{redact_query(query)}"
        out[name] = value
    return out


def _content_type(raw: Iterable[tuple[bytes, bytes]]) -> str:
    return next((v.decode("latin-1") for k, v in raw if k.lower() == b"content-type"), "")


def export(entry: Entry, *, reveal: bool = False) -> dict[str, Any]:
    request_headers, response_headers = unpack(entry.headers), unpack(entry.response_headers)
    request_type = _content_type(request_headers)
    response_type = _content_type(response_headers)
    return {
        "seq": entry.seq,
        "time": entry.time,
        "method": entry.method,
        "path": entry.path,
        "query": entry.query.decode("latin-1")
        if reveal
        else redact_query(entry.query.decode("latin-1")),
        "headers": _headers(request_headers, reveal),
        "body": _body(entry.body, request_type, reveal),
        "client_id": entry.client_id,
        "tier": entry.tier,
        "dealer_id": entry.dealer_id,
        "trace_id": entry.trace_id,
        "request_id": entry.request_id,
        "status": entry.status,
        "response_headers": _headers(response_headers, reveal),
        "response_body": _body(entry.response_body, response_type, reveal, json.loads),
        "duration_ms": entry.duration_ms,
    }


def _close_all(files: dict[int, tuple[int, int]]) -> None:
    for fd, _ in files.values():
        os.close(fd)
    files.clear()


class _Spill:
    """Append-only temporary files for the bulky part of entries (headers and bodies), so
    memory holds only the small fields: 100,000 journaled 1 KiB requests cost megabytes, not
    hundreds. Writes are buffered (a system call per 64 KiB, not per request); a new file
    starts every ``segment`` bytes; a file whose entries were all evicted is closed. The files
    are unlinked at once, so nothing is left on disk."""

    FLUSH = 64 * 1024

    def __init__(self, segment: int) -> None:
        self.segment = segment
        self.files: dict[int, tuple[int, int]] = {}  # index -> (descriptor, bytes written)
        self.current = -1
        self.buffer = bytearray()  # the current file's tail, not written yet
        weakref.finalize(self, _close_all, self.files)

    def _flush(self) -> None:
        if self.buffer:
            fd, written = self.files[self.current]
            os.pwrite(fd, self.buffer, written)
            self.files[self.current] = (fd, written + len(self.buffer))
            self.buffer.clear()

    def write(self, data: bytes) -> tuple[int, int]:
        written = self.files[self.current][1] if self.current in self.files else self.segment
        if written + len(self.buffer) >= self.segment:
            if self.current in self.files:
                self._flush()
            fd, path = tempfile.mkstemp(prefix="chekt-journal-")
            os.unlink(path)
            self.current += 1
            self.files[self.current] = (fd, 0)
            written = 0
        offset = written + len(self.buffer)
        self.buffer += data
        if len(self.buffer) >= self.FLUSH:
            self._flush()
        return self.current, offset

    def read(self, index: int, offset: int, length: int) -> bytes:
        fd, written = self.files[index]
        if index == self.current and offset >= written:
            start = offset - written
            return bytes(self.buffer[start : start + length])
        return os.pread(fd, length, offset)

    def release_before(self, index: int) -> None:
        for old in [i for i in self.files if i < index]:
            os.close(self.files.pop(old)[0])

    def close(self) -> None:
        _close_all(self.files)
        self.buffer.clear()
        self.current = -1


class Recorder:
    def __init__(self, max_entries: int = 10_000, max_bytes: int = 50 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: deque[Entry] = deque()
        self._bytes = 0
        self._seq = 0
        self.evicted = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._spill = _Spill(segment=max(1 << 20, max_bytes // 4))

    def _store(self, entry: Entry) -> None:
        parts = (entry.headers, entry.body, entry.response_headers, entry.response_body)
        index, offset = self._spill.write(b"".join(parts))
        entry.spilled = (index, offset, *(len(p) for p in parts))  # type: ignore[assignment]
        entry.headers = entry.body = entry.response_headers = entry.response_body = b""

    def _load(self, entry: Entry) -> Entry:
        if entry.spilled is None:
            return entry
        index, offset, *lengths = entry.spilled
        data = self._spill.read(index, offset, sum(lengths))
        cuts = [sum(lengths[:i]) for i in range(5)]
        headers, body, response_headers, response_body = (
            data[cuts[i] : cuts[i + 1]] for i in range(4)
        )
        return replace(
            entry,
            headers=headers,
            body=body,
            response_headers=response_headers,
            response_body=response_body,
            spilled=None,
        )

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def add(self, entry: Entry) -> None:
        with self._lock:
            self._store(entry)
            self._entries.append(entry)
            self._bytes += entry.size
            while self._entries and (
                len(self._entries) > self.max_entries or self._bytes > self.max_bytes
            ):
                self._bytes -= self._entries.popleft().size
                self.evicted += 1
            if self._entries and self._entries[0].spilled is not None:
                self._spill.release_before(self._entries[0].spilled[0])
            self._changed.notify_all()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self.evicted = 0
            self._spill.close()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": len(self._entries),
                "bytes": self._bytes,
                "evicted": self.evicted,
                "last_seq": self._seq,
            }

    def query(self, filters: Mapping[str, str]) -> list[Entry]:
        """Entries matching every filter (see :func:`matcher`), oldest first."""
        test = matcher(filters)
        with self._lock:
            entries = list(self._entries)
            limit = int(filters.get("limit", "10000"))
            return [self._load(e) for e in [e for e in entries if test(e)][:limit]]


FILTERS = (
    "method",
    "path",
    "path_regex",
    "client_id",
    "status",
    "since_seq",
    "since",
    "until",
    "trace_id",
    "tier",
    "limit",
    "reveal",
)


def matcher(filters: Mapping[str, str]) -> Any:
    method = filters.get("method", "").upper() or None
    path = filters.get("path")
    regex = re.compile(filters["path_regex"]) if filters.get("path_regex") else None
    status = filters.get("status")
    since_seq = int(filters.get("since_seq", "0"))
    since = float(filters["since"]) if "since" in filters else None
    until = float(filters["until"]) if "until" in filters else None

    def test(entry: Entry) -> bool:
        if entry.seq <= since_seq or (method and entry.method != method):
            return False
        if path and not fnmatch.fnmatchcase(entry.path, path):
            return False
        if regex and not regex.search(entry.path):
            return False
        if status and not _status_matches(entry.status, status):
            return False
        if since is not None and entry.time < since:
            return False
        if until is not None and entry.time > until:
            return False
        return all(
            filters.get(name) in (None, getattr(entry, name))
            for name in ("client_id", "trace_id", "tier")
        )

    return test


def _status_matches(status: int, wanted: str) -> bool:
    """``200``, or a class such as ``4xx``."""
    if len(wanted) == 3 and wanted[1:].lower() == "xx":
        return str(status)[0] == wanted[0]
    return str(status) == wanted
