"""List conventions of the Partner API: ``limit``/``offset`` paging with a total,
``fields`` projection, ``filter=field:op:value`` and ``sort=-field``, compiled to SQL over
a whitelist of columns (so names never come from the client)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.errors import ValidationFailed
from sandbox.store import Row, Store

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000
_OPERATORS = {"eq": "=", "ne": "!=", "gt": ">", "lt": "<", "ge": ">=", "le": "<=", "like": "LIKE"}
_INTEGER = re.compile(r"-?[0-9]{1,18}")  # what SQLite can compare without overflowing
INTEGER_PATTERN = _INTEGER.pattern
# a timestamp as the sandbox writes them; any ISO 8601 form Python reads is accepted too
TIMESTAMP_PATTERN = (
    r"(?:19|20)[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"(?:T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{3})?Z)?"
)


@dataclass
class ListQuery:
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    fields: list[str] | None = None
    filters: list[tuple[str, str, Any]] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)


def _integer(name: str, raw: str, low: int, high: int) -> int:
    if not _INTEGER.fullmatch(raw) or not low <= int(raw) <= high:
        raise ValidationFailed(name, f"{name} must be an integer from {low} to {high}")
    return int(raw)


LIST_PARAMETERS = ("limit", "offset", "fields", "filter", "sort")


def parse_list_query(
    params: Mapping[str, Sequence[str]],
    columns: Mapping[str, type],
    *,
    known: Sequence[str] = LIST_PARAMETERS,
    table: str = "",
) -> ListQuery:
    """``columns`` maps each field of the listed objects to its type (all of them can be
    projected, filtered and sorted on); ``known`` names the parameters this endpoint takes;
    ``table`` is the qualifier ``fields`` may put before a name, as CHeKT's docs do
    (``fields=sites.name,sites.site_id``)."""
    for name in params:
        if name not in known:
            raise ValidationFailed(name, f"unknown query parameter {name!r}")
    query = ListQuery()
    if "limit" in params:
        query.limit = _integer("limit", params["limit"][-1], 1, MAX_LIMIT)
    if "offset" in params:
        query.offset = _integer("offset", params["offset"][-1], 0, MAX_OFFSET)
    if "fields" in params:
        query.fields = [
            _field(name, columns, table) for raw in params["fields"] for name in raw.split(",")
        ]
    for raw in params.get("filter", []):
        for clause in raw.split(","):
            query.filters.append(_filter(clause, columns))
    for raw in params.get("sort", []):
        for item in raw.split(","):
            descending = item.startswith("-")
            name = item.removeprefix("-")
            if name not in columns:
                raise ValidationFailed(
                    "sort", f"cannot sort by {name!r}; use one of {_names(columns)}"
                )
            query.sort.append((name, descending))
    return query


def _field(given: str, columns: Mapping[str, type], table: str) -> str:
    qualifier, dot, name = given.rpartition(".")
    if dot and qualifier != table:
        hint = f"qualify it with {table!r}, the table listed, or not at all" if table else ""
        raise ValidationFailed(
            "fields", f"field {given!r} names another table; {hint or 'name it bare'}"
        )
    if name not in columns:
        raise ValidationFailed("fields", f"unknown field {given!r}; use any of {_names(columns)}")
    return name


def _filter(clause: str, columns: Mapping[str, type]) -> tuple[str, str, Any]:
    parts = clause.split(":", 2)
    if len(parts) != 3:
        raise ValidationFailed("filter", f"filter {clause!r} must look like field:op:value")
    name, op, raw = parts
    if name not in columns:
        raise ValidationFailed("filter", f"cannot filter on {name!r}; use one of {_names(columns)}")
    if op not in _OPERATORS:
        raise ValidationFailed(
            "filter", f"unknown filter operator {op!r}; use one of {', '.join(_OPERATORS)}"
        )
    value: Any = raw
    if op == "like":
        value = raw.replace("*", "%")
    elif columns[name] is float:
        value = parse_timestamp(raw, "filter")
    elif columns[name] is int:
        if not _INTEGER.fullmatch(raw):
            raise ValidationFailed("filter", f"{name} compares with integers, not {raw!r}")
        value = int(raw)
    return name, _OPERATORS[op], value


def parse_timestamp(raw: str, name: str) -> float:
    try:
        moment = datetime.fromisoformat(raw.replace(" ", "T"))
    except ValueError:
        raise ValidationFailed(name, f"{raw!r} is not an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _names(columns: Mapping[str, type]) -> str:
    return ", ".join(sorted(columns))


def patterns(columns: Mapping[str, type], table: str = "") -> dict[str, str]:
    """The grammar of ``fields``, ``sort`` and ``filter`` over these columns, as regular
    expressions for the OpenAPI document (the parser above enforces the same rules)."""

    def one_of(names: Sequence[str]) -> str:
        return "(?:" + "|".join(re.escape(n) for n in names) + ")"

    name = one_of(list(columns))
    compare = "(?:" + "|".join(op for op in _OPERATORS if op != "like") + ")"
    by_kind = {
        int: INTEGER_PATTERN,
        float: TIMESTAMP_PATTERN,
        str: "[^,]*",
    }
    clauses = [
        f"{one_of([n for n, kind in columns.items() if kind is k])}:{compare}:{value}"
        for k, value in by_kind.items()
        if any(kind is k for kind in columns.values())
    ]
    clause = "(?:" + "|".join([*clauses, f"{name}:like:[^,]*"]) + ")"
    field = f"(?:{re.escape(table)}\\.)?{name}" if table else name
    return {
        "fields": f"^{field}(?:,{field})*$",
        "sort": f"^-?{name}(?:,-?{name})*$",
        "filter": f"^{clause}(?:,{clause})*$",
    }


def fetch_page(
    store: Store,
    source: str,
    select: str,
    where: str,
    params: Sequence[Any],
    query: ListQuery,
    id_column: str,
) -> tuple[list[Row], int]:
    """One page of ``source`` rows matching ``where`` and the query's filters, plus the total."""
    clauses = [where]
    values = list(params)
    for name, op, value in query.filters:
        clauses.append(f"{name} {op} ?")
        values.append(value)
    condition = " AND ".join(clauses)
    # (rendered pages are cached by the list endpoint until the next write)
    total = int(store.scalar(f"SELECT COUNT(*) FROM {source} WHERE {condition}", values))
    order = [f"{name} {'DESC' if desc else 'ASC'}" for name, desc in query.sort]
    order.append(id_column)
    rows = store.all(
        f"SELECT {select} FROM {source} WHERE {condition} "
        f"ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
        [*values, query.limit, query.offset],
    )
    return rows, total


def project(item: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
    return item if names is None else {name: item[name] for name in names}
