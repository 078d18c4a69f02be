"""``Store``: the one SQLite connection the app owns.

Every handler runs on the event loop thread, so one connection serves them all; the lock
keeps the odd caller from another thread (the CLI, a test helper) safe. Writes that must be
atomic go through :meth:`Store.transaction` (``BEGIN IMMEDIATE``). The connection is closed by
:meth:`Store.close`, or at the latest when the store is garbage collected (an app dropped by a
test), so no interpreter reports it unclosed (Python 3.13 warns).

What caches or waits on the store says so once with :meth:`Store.watch`, and every write
statement to a watched table calls it back: no handler has to remember to invalidate a cache
or wake the dispatcher.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sandbox.store.schema import ADDED_COLUMNS, INDEXES, SCHEMA, VIEWS, WORLD_TABLES

Row = dict[str, Any]
Params = Sequence[Any] | dict[str, Any]
Listener = Callable[[], None]
# the verb and the table of a write statement, e.g. ("INSERT", "deliveries")
_WRITE = re.compile(
    r"\s*(INSERT|UPDATE|DELETE|REPLACE)(?:\s+OR\s+\w+)?\s+(?:INTO\s+|FROM\s+)?(\w+)", re.I
)


Columns = frozenset[str] | None
_Parsed = tuple[str, str, frozenset[str], Columns]  # verb, table, what it reaches, columns set
_SET = re.compile(r"\bSET\b(.*?)(?:\bWHERE\b|\bRETURNING\b|$)", re.I | re.S)
_ASSIGNED = re.compile(r"\s*(\w+)\s*=")


def _set_columns(sql: str) -> Columns:
    """The columns an UPDATE sets, or None when its SET clause is not a plain list of
    ``column = value`` (then it may have changed any)."""
    found = _SET.search(sql)
    if found is None:
        return None
    columns, depth, start, text = set(), 0, 0, found[1]
    for index, char in enumerate(text + ","):
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            assigned = _ASSIGNED.match(text[start:index])
            if assigned is None:
                return None
            columns.add(assigned[1].lower())
            start = index + 1
    return frozenset(columns) if columns and depth == 0 else None


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}


class Store:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = ":memory:" if path is None else str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # owner-only: the file holds client secrets, API keys and webhook secrets
            os.close(os.open(self.path, os.O_CREAT | os.O_RDONLY, 0o600))
            os.chmod(self.path, 0o600)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._close = weakref.finalize(self, self._conn.close)
        self._conn.row_factory = _dict_row
        self._lock = threading.RLock()
        self._depth = 0
        # read cache: valid while nothing was written, here or (file stores) by another process;
        # it holds one data version's reads (a write makes them all stale: none is kept)
        self._version = 0
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._cached_version: tuple[int, int] | None = None
        self._shared = self.path != ":memory:"
        self._watchers: list[tuple[frozenset[str], frozenset[str], Listener]] = []
        self._parsed: dict[str, _Parsed] = {}  # sql → verb, table, reach, columns set
        # reads remembered inside the open transaction (:meth:`remembered`): by table, which
        # of them read it and which of its columns (None: any)
        self._memo: dict[tuple[Any, ...], list[Row]] = {}
        self._memo_by_table: dict[str, dict[tuple[Any, ...], Columns]] = {}
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged write (a used assertion jti, a queued delivery) survives a crash.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(SCHEMA + VIEWS)
        for table, column, declaration in ADDED_COLUMNS:
            columns = {row["name"] for row in self._conn.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        self._conn.executescript(INDEXES)
        self._reaches = self._cascades()
        # world tables written since :meth:`restore_world` last put them back (all: none yet)
        self._changed: set[str] = set(WORLD_TABLES)
        self._restored: object = None  # the rows it put back

    def close(self) -> None:
        """Close the connection (again is a no-op)."""
        with self._lock:
            self._close()

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[None]:
        """Atomic: all or nothing. Nested, a savepoint: an inner failure that the caller
        catches undoes only the inner writes. ``durable=False`` (outermost only): a commit
        that does not wait for the disk. It survives the process being killed, not the
        machine losing power, where it is undone whole; for writes the store can make again
        from durable ones (the dispatcher's fan-out and attempt outcomes: at worst an attempt
        is made again), so they do not hold the event loop on an fsync."""
        with self._lock:
            outermost = self._depth == 0
            relaxed = outermost and not durable and self._shared
            if relaxed:
                self._conn.execute("PRAGMA synchronous=NORMAL")
            try:
                yield from self._atomic(outermost)
            finally:
                if relaxed:
                    self._conn.execute("PRAGMA synchronous=FULL")

    def _atomic(self, outermost: bool) -> Iterator[None]:
        savepoint = f"sp{self._depth}"
        self._conn.execute("BEGIN IMMEDIATE" if outermost else f"SAVEPOINT {savepoint}")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            self._forget()
            if outermost:
                self._conn.execute("ROLLBACK")
            else:
                self._conn.execute(f"ROLLBACK TO {savepoint}")
                self._conn.execute(f"RELEASE {savepoint}")
            self._version += 1  # reads cached inside the transaction are void
            self._changed.update(WORLD_TABLES)  # what a rolled back restore put back
            raise
        self._depth -= 1
        if outermost:
            self._forget()
        self._conn.execute("COMMIT" if outermost else f"RELEASE {savepoint}")

    def remembered(self, sql: str, params: Params, reads: Mapping[str, Columns]) -> list[Row]:
        """``all``, remembered until the open transaction ends or a write reaches what the
        query ``reads`` (each table it reads, with the columns it reads there; None: all): a
        batch of happenings reads the same sites, devices and settings again and again, while
        it changes only other columns of them (a device's status). Outside a transaction it
        is ``all`` (another process may write between two statements); callers must not
        mutate the rows."""
        with self._lock:
            if self._depth == 0:
                return self.all(sql, params)
            key = (sql, tuple(params) if not isinstance(params, dict) else tuple(params.items()))
            rows = self._memo.get(key)
            if rows is None:
                rows = self._memo[key] = self._conn.execute(sql, params).fetchall()
                for table, columns in reads.items():
                    self._memo_by_table.setdefault(table, {})[key] = columns
            return rows

    def _forget(self, written: _Parsed | None = None) -> None:
        """Drop the remembered reads a write may have changed (all of them: None)."""
        if written is None or written[1] == "*":
            self._memo.clear()
            self._memo_by_table.clear()
            return
        _verb, table, reaches, changed = written
        for reached in reaches:
            readers = self._memo_by_table.get(reached)
            if not readers:
                continue
            for key, columns in list(readers.items()):
                if reached == table and changed and columns and not changed & columns:
                    continue  # an UPDATE of columns this read does not read
                del readers[key]
                self._memo.pop(key, None)

    def watch(
        self, tables: Iterable[str], listener: Listener, verbs: Iterable[str] = ("*",)
    ) -> None:
        """Call ``listener`` after every write to one of ``tables`` (only ``verbs``, such as
        ``INSERT``, when given), and after every script."""
        self._watchers.append((frozenset(tables), frozenset(v.upper() for v in verbs), listener))

    def _cascades(self) -> dict[str, frozenset[str]]:
        """Each table and every table that refers to it, directly or not: what a write to it
        may change through ``ON DELETE``/``ON UPDATE`` actions (a deleted site takes its
        devices and contacts along)."""
        tables = [
            row["name"]
            for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        children: dict[str, set[str]] = {table: set() for table in tables}
        for table in tables:
            for key in self._conn.execute(f"PRAGMA foreign_key_list({table})"):
                children.setdefault(key["table"], set()).add(table)
        reaches = {}
        for table in children:
            seen, todo = {table}, [table]
            while todo:
                for child in children.get(todo.pop(), ()):
                    if child not in seen:
                        seen.add(child)
                        todo.append(child)
            reaches[table] = frozenset(seen)
        return reaches

    def _written(self, sql: str) -> None:
        parsed = self._parsed.get(sql)
        if parsed is None:  # each statement's text is parsed once (a few dozen texts in all)
            match = _WRITE.match(sql)
            verb, table = (match[1].upper(), match[2].lower()) if match else ("*", "*")
            reaches = self._reaches.get(table, (table,)) if match else WORLD_TABLES
            if len(self._parsed) >= 1024:
                self._parsed.clear()
            changed = _set_columns(sql) if verb == "UPDATE" else None
            parsed = self._parsed[sql] = (verb, table, frozenset(reaches), changed)
        verb, table, reaches, _ = parsed
        self._changed.update(reaches)
        if self._memo:
            self._forget(parsed)
        for tables, verbs, listener in self._watchers:
            if (table in tables or table == "*") and ("*" in verbs or verb in verbs):
                listener()

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        with self._lock:
            if sql.lstrip()[:6].upper().startswith("SELECT"):
                return self._conn.execute(sql, params)
            self._version += 1
            cursor = self._conn.execute(sql, params)
            self._written(sql)
            return cursor

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """One write statement for many parameter rows (a batch costs one statement's
        overhead, and watchers are told once)."""
        with self._lock:
            self._version += 1
            self._conn.executemany(sql, rows)
            self._written(sql)

    def data_version(self) -> tuple[int, int]:
        if not self._shared:
            return self._version, 0
        other = self._conn.execute("PRAGMA data_version").fetchone()
        return self._version, int(next(iter(other.values())))

    def cached_all(self, sql: str, params: Params = ()) -> list[Row]:
        """``all``, served from memory until the next write. Callers must not mutate rows."""
        with self._lock:
            version = self.data_version()
            if version != self._cached_version:
                # reads of an older version never match again: under a steady stream of
                # writes, keeping them until a count cap filled held hundreds of MB of rows
                self._cache.clear()
                self._cached_version = version
            key = (
                sql,
                tuple(params) if not isinstance(params, dict) else tuple(sorted(params.items())),
            )
            rows = self._cache.get(key)
            if rows is None:
                if len(self._cache) > 4096:
                    self._cache.clear()
                rows = self._cache[key] = self._conn.execute(sql, params).fetchall()
            return list(rows)

    def cached_scalar(self, sql: str, params: Params = ()) -> Any:
        rows = self.cached_all(sql, params)
        return None if not rows else next(iter(rows[0].values()))

    def insert(self, table: str, values: Row) -> int:
        columns = ", ".join(values)
        marks = ", ".join(f":{name}" for name in values)
        cursor = self.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values)
        return int(cursor.lastrowid or 0)

    def one(self, sql: str, params: Params = ()) -> Row | None:
        with self._lock:
            row: Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Params = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))

    def get_meta(self, key: str) -> str | None:
        value = self.scalar("SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def executescript(self, script: str) -> None:
        with self._lock:
            self._version += 1
            self._conn.executescript(script)
            self._changed.update(WORLD_TABLES)
            self._forget()
            for _tables, _verbs, listener in self._watchers:
                listener()

    def load(self, rows: dict[str, list[Row]]) -> None:
        """Insert what :meth:`dump` returned, parents before children."""
        with self.transaction():
            for table in reversed(list(rows)):
                if rows[table]:
                    columns = list(rows[table][0])
                    marks = ", ".join("?" * len(columns))
                    self._version += 1
                    self._conn.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                        [tuple(row.values()) for row in rows[table]],  # one SELECT's order
                    )
            self._forget()
            for _tables, _verbs, listener in self._watchers:
                listener()

    def restore_world(self, rows: dict[str, list[Row]]) -> None:
        """Put the world tables back to ``rows`` (a :meth:`dump` of them all): on an
        in-memory store, which no other connection writes, only the tables written since it
        last put back these very rows, so a reset costs what the test changed."""
        with self.transaction():
            again = not self._shared and self._restored is rows
            tables = [t for t in WORLD_TABLES if t in self._changed] if again else WORLD_TABLES
            for table in tables:
                self.execute(f"DELETE FROM {table}")
            names = ", ".join("?" * len(tables))
            self.execute(f"DELETE FROM sqlite_sequence WHERE name IN ({names})", tables)
            self.load({table: rows.get(table, []) for table in tables})
            self._changed.difference_update(tables)
            self._restored = rows

    def dump(self, tables: Sequence[str]) -> dict[str, list[Row]]:
        """Every row of the given tables, in key order: used to compare worlds."""
        return {table: self.all(f"SELECT * FROM {table} ORDER BY rowid") for table in tables}
