"""Coverage: which documented operations, webhook event types, error codes and auth tiers
the partner's traffic exercised, and which it never touched.

Operations come from the OpenAPI document's ``paths`` (control routes, ``/_sandbox/*`` and
anything tagged "Sandbox control", are not counted); a journaled path is matched to its
template segment by segment, a fixed segment beating a parameter (``/v1/alarms/stream``
is not ``/v1/alarms/{alarm_id}``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

CONTROL_TAG = "Sandbox control"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

Entry = Mapping[str, Any]


class Operations:
    """The documented operations, and the matching of a request to one of them."""

    def __init__(self, paths: Mapping[str, Mapping[str, Any]]) -> None:
        self.operations: list[dict[str, Any]] = []
        self._templates: list[tuple[tuple[int, ...], re.Pattern[str], str]] = []
        for path, item in paths.items():
            if path.startswith("/_sandbox"):
                continue
            methods = [
                m for m in METHODS if m in item and CONTROL_TAG not in item[m].get("tags", ())
            ]
            for method in methods:
                self.operations.append(
                    {
                        "operation_id": item[method].get("operationId"),
                        "method": method.upper(),
                        "path": path,
                        "tag": (item[method].get("tags") or [None])[0],
                    }
                )
            if methods:
                self._templates.append((_rank(path), _pattern(path), path))
        self._templates.sort(key=lambda t: t[0])
        self._index = {(op["method"], op["path"]): op for op in self.operations}
        self._seen: dict[tuple[str, str], dict[str, Any] | None] = {}  # a journal repeats itself

    def match(self, method: str, path: str) -> dict[str, Any] | None:
        """The documented operation ``method path`` calls, or None."""
        key = (method, path)
        if key not in self._seen:
            self._seen[key] = self._match(method, path)
        return self._seen[key]

    def _match(self, method: str, path: str) -> dict[str, Any] | None:
        for _, pattern, template in self._templates:
            if pattern.fullmatch(path):
                op = self._index.get((method.upper(), template))
                if op is not None:
                    return op
        return None


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def _rank(template: str) -> tuple[int, ...]:
    """Fixed segments first, left to right: ``/a/b`` before ``/a/{x}`` before ``/{y}/b``."""
    return tuple(1 if s.startswith("{") else 0 for s in template.strip("/").split("/"))


def _error_code(entry: Entry) -> str | None:
    body = entry.get("response_body")
    if int(entry.get("status") or 0) < 400 or not isinstance(body, Mapping):
        return None
    error = body.get("error")
    if isinstance(error, Mapping) and isinstance(error.get("code"), str):
        return str(error["code"])
    return error if isinstance(error, str) else None  # the auth server's OAuth errors


def coverage(
    paths: Mapping[str, Mapping[str, Any]],
    entries: Iterable[Entry],
    delivered: Mapping[str, int],
    *,
    event_types: Sequence[str],
    error_codes: Sequence[str],
    tiers: Sequence[str],
) -> dict[str, Any]:
    """``entries``: journaled requests; ``delivered``: event type -> deliveries answered 2xx;
    the sequences: every event type, error code and tier there is."""
    ops = Operations(paths)
    calls: Counter[tuple[str, str]] = Counter()
    statuses: dict[tuple[str, str], Counter[str]] = {}
    unmatched: Counter[tuple[str, str]] = Counter()
    codes: Counter[str] = Counter()
    seen_tiers: Counter[str] = Counter()
    for entry in entries:
        if str(entry["path"]).startswith("/_sandbox"):
            continue
        op = ops.match(entry["method"], entry["path"])
        if op is None:
            unmatched[(entry["method"], entry["path"])] += 1
        else:
            key = (op["method"], op["path"])
            calls[key] += 1
            statuses.setdefault(key, Counter())[str(entry["status"])] += 1
        code = _error_code(entry)
        if code is not None:
            codes[code] += 1
        if entry.get("tier"):
            seen_tiers[entry["tier"]] += 1
    operations = [
        {
            **op,
            "calls": calls[(op["method"], op["path"])],
            "statuses": dict(statuses.get((op["method"], op["path"]), {})),
        }
        for op in ops.operations
    ]
    return {
        "operations": operations,
        "covered": sum(1 for op in operations if op["calls"]),
        "total": len(operations),
        "event_types": [{"type": t, "delivered": delivered.get(t, 0)} for t in event_types],
        "error_codes": [{"code": c, "received": codes[c]} for c in sorted({*error_codes, *codes})],
        "tiers": [{"tier": t, "calls": seen_tiers[t]} for t in tiers],
        "unmatched": [
            {"method": m, "path": p, "calls": n} for (m, p), n in sorted(unmatched.items())
        ],
    }


def percent(report: Mapping[str, Any]) -> float:
    total = int(report["total"])
    return 100.0 * int(report["covered"]) / total if total else 100.0


def merge(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several coverage reports (one per sandbox a test session used) as one."""
    if not reports:
        return {"operations": [], "covered": 0, "total": 0}
    merged: dict[str, Any] = {k: v for k, v in reports[0].items()}
    for name, key, count in (
        ("operations", ("method", "path"), "calls"),
        ("event_types", ("type",), "delivered"),
        ("error_codes", ("code",), "received"),
        ("tiers", ("tier",), "calls"),
        ("unmatched", ("method", "path"), "calls"),
    ):
        rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        for report in reports:
            for row in report.get(name, []):
                ident = tuple(row[k] for k in key)
                kept = rows.get(ident)
                if kept is None:
                    rows[ident] = {
                        **row,
                        **({"statuses": dict(row["statuses"])} if "statuses" in row else {}),
                    }
                    continue
                kept[count] += row[count]
                if "statuses" in row:
                    kept["statuses"] = dict(Counter(kept["statuses"]) + Counter(row["statuses"]))
        merged[name] = list(rows.values())
    merged["covered"] = sum(1 for op in merged["operations"] if op["calls"])
    merged["total"] = len(merged["operations"])
    return merged


def table(report: Mapping[str, Any], *, untouched: bool = True) -> str:
    """The coverage report for people: every operation with its calls, then the event
    types, error codes and tiers."""
    lines = [f"CHeKT coverage: {report['covered']}/{report['total']} operations "]
    lines[0] += f"({percent(report):.1f} %)"
    for op in report["operations"]:
        if op["calls"] or untouched:
            mark = f"{op['calls']:>6}" if op["calls"] else "     —"
            lines.append(f"  {mark}  {op['method']:<7} {op['path']}")
    for name, key, count in (
        ("event_types", "type", "delivered"),
        ("error_codes", "code", "received"),
        ("tiers", "tier", "calls"),
    ):
        rows = report.get(name) or []
        if rows:
            hit = [f"{r[key]} ({r[count]})" for r in rows if r[count]]
            never = [r[key] for r in rows if not r[count]]
            lines.append(f"  {name.replace('_', ' ')}: " + (", ".join(hit) or "none"))
            if never and untouched:
                lines.append(f"    never: {', '.join(never)}")
    return "\n".join(lines)
