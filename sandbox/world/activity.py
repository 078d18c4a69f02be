"""The activity log the dealer API searches: the record's happenings, each in one category.

One table says which category every happening type belongs to and what its ``status``
reads; video-bearing happenings (an alarm with its clip) are 20007 Video event, as on the
live service. Playback, Edge Playback and Timelapse are categories a dashboard filters by;
nothing in the sandbox plays video back, so they hold no entries. A search pages by an
opaque cursor over (event time, event id), the one order that never ties, so paging to the
end yields every entry once in either direction.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sandbox.errors import NotFound, ValidationFailed
from sandbox.store import Row
from sandbox.world.audit import Actor
from sandbox.world.context import World

CATEGORIES: dict[int, str] = {
    20007: "Video event",
    20003: "Playback",
    20022: "Edge Playback",
    20002: "Timelapse",
    20010: "Snapshot",
    10001: "Alarm handling",
    10002: "Verification",
    30001: "Arming",
    40001: "Device network",
    40002: "Device firmware",
}
# happening type -> (category, what its status reads)
ACTIVITY: dict[str, tuple[int, str]] = {
    "alarm.created": (20007, "triggered"),
    "alarm.acknowledged": (10001, "acknowledged"),
    "alarm.escalated": (10001, "escalated"),
    "alarm.dispatched": (10001, "dispatched"),
    "alarm.resolved": (10001, "resolved"),
    "verification.requested": (10002, "sent"),
    "snapshot.created": (20010, "captured"),
    "site.armed": (30001, "armed"),
    "site.disarmed": (30001, "disarmed"),
    "device.online": (40001, "online"),
    "device.offline": (40001, "offline"),
    "device.firmware_updated": (40002, "updated"),
}
assert {category for category, _ in ACTIVITY.values()} <= set(CATEGORIES)
ORDERS = ("asc", "desc")
SORT_BY = ("event_time",)


@dataclass(frozen=True)
class Search:
    start: float
    end: float  # exclusive
    site_id: int | None
    limit: int
    order: str
    category_id: int | None
    cursor: str | None = None

    def fingerprint(self) -> str:
        """What a cursor belongs to: the same search, whatever page."""
        key = (self.start, self.end, self.site_id, self.order, self.category_id)
        return hashlib.sha256(repr(key).encode()).hexdigest()[:16]


def categories() -> list[dict[str, Any]]:
    return [{"id": number, "name": name} for number, name in CATEGORIES.items()]


def _encode(search: Search, at: float, seq: int) -> str:
    text = json.dumps({"t": at, "e": seq, "q": search.fingerprint()}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(search: Search, raw: str) -> tuple[float, int]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        at, seq, owner = decoded["t"], decoded["e"], decoded["q"]
    except (ValueError, TypeError, KeyError):
        raise ValidationFailed("cursor", "cursor is not one this API handed out") from None
    if not isinstance(at, int | float) or isinstance(seq, bool) or not isinstance(seq, int):
        raise ValidationFailed("cursor", "cursor is not one this API handed out")
    if owner != search.fingerprint():
        raise ValidationFailed(
            "cursor", "cursor belongs to another search: keep the times, site, order and category"
        )
    return float(at), seq


def search(world: World, dealer_id: int, query: Search) -> dict[str, Any]:
    """``{data, page: {cursor, has_more}}``: the next ``limit`` entries after the cursor."""
    if query.site_id is not None and not world.store.scalar(
        "SELECT 1 FROM sites WHERE site_id = ? AND dealer_id = ?", (query.site_id, dealer_id)
    ):
        raise NotFound(f"site {query.site_id} was not found", code="site_not_found")
    if query.category_id is not None and query.category_id not in CATEGORIES:
        listed = ", ".join(map(str, CATEGORIES))
        raise ValidationFailed("category_id", f"category_id must be one of {listed}")
    types = [t for t, (c, _) in ACTIVITY.items() if query.category_id in (None, c)]
    rows = _rows(world, dealer_id, query, types) if types else []
    page, more = rows[: query.limit], len(rows) > query.limit
    cursor = _encode(query, page[-1]["created_at"], page[-1]["seq"]) if more else None
    return {"data": _entries(world, page), "page": {"cursor": cursor, "has_more": more}}


def _rows(world: World, dealer_id: int, query: Search, types: list[str]) -> list[Row]:
    marks = ",".join("?" * len(types))
    sql = (
        "SELECT seq, type, created_at, data, actor FROM events WHERE dealer_id = ? "
        "AND status = 'happened' AND created_at >= ? AND created_at < ? "
        f"AND type IN ({marks})"
    )
    params: list[Any] = [dealer_id, query.start, query.end, *types]
    if query.site_id is not None:
        sql += " AND json_extract(data, '$.site_id') = ?"
        params.append(query.site_id)
    direction, beyond = ("ASC", ">") if query.order == "asc" else ("DESC", "<")
    if query.cursor is not None:
        sql += f" AND (created_at, seq) {beyond} (?, ?)"
        params += list(_decode(query, query.cursor))
    sql += f" ORDER BY created_at {direction}, seq {direction} LIMIT ?"
    return world.store.all(sql, (*params, query.limit + 1))


def _entries(world: World, rows: list[Row]) -> list[dict[str, Any]]:
    """Each row as the log shows it, with the device it is about (an alarm's camera for the
    alarm's later steps) looked up once per page."""
    datas = [json.loads(row["data"]) for row in rows]
    about = [d["alarm_id"] if isinstance(d.get("alarm_id"), str) else None for d in datas]
    alarms = {
        a["alarm_id"]: a
        for a in _where_in(
            world,
            "SELECT alarm_id, device_id, zone_number FROM alarms",
            sorted({a for a in about if a is not None}),
        )
    }
    device_of = [
        d.get("device_id") or alarms.get(a, {}).get("device_id")
        for d, a in zip(datas, about, strict=True)
    ]
    devices = {
        d["device_id"]: d
        for d in _where_in(
            world,
            "SELECT device_id, name, zone_number FROM devices",
            sorted({i for i in device_of if isinstance(i, int)}),
            "device_id",
        )
    }
    found = []
    for row, data, alarm_id, device_id in zip(rows, datas, about, device_of, strict=True):
        category, status = ACTIVITY[row["type"]]
        device = devices.get(device_id, {}) if isinstance(device_id, int) else {}
        alarm = alarms.get(alarm_id, {}) if alarm_id else {}
        zone = _text(
            alarm.get("zone_number") or device.get("zone_number") or data.get("zone_number")
        )
        found.append(
            {
                "event_id": row["seq"],
                "event_time": world.stamp(row["created_at"]),
                "category_id": category,
                "trigger": _text(data.get("trigger") or data.get("source")) or _who(row["actor"]),
                "status": status,
                "zone_number": zone,
                "device_name": device.get("name"),
                "device_id": device_id if isinstance(device_id, int) else None,
                "site_id": data.get("site_id"),
                "event_type": row["type"],
            }
        )
    return found


def _text(value: Any) -> str | None:
    """A value a caller's data overrides may have made anything, as the log's text."""
    return None if value is None or value == "" else str(value)


def _who(actor: str | None) -> str:
    return Actor.loads(actor).kind


def _where_in(world: World, select: str, keys: list[Any], column: str = "alarm_id") -> list[Row]:
    if not keys:
        return []
    return world.store.all(f"{select} WHERE {column} IN ({','.join('?' * len(keys))})", keys)
