"""The media a happening carries, by its numeric event id, as fresh signed links: an alarm's
clip, its snapshot as the thumbnail, and every frame taken for it; a snapshot's frame.

Links are minted now, so each lasts ``media_url_lifetime`` seconds from the answer whatever
the age of the media (the record keeps media 30 days; the sandbox keeps them as long as the
record). An id of another dealer, one never handed out, or a happening without media
answers with nulls and no snapshots, like a live event whose video is gone.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.store import Row
from sandbox.world import media
from sandbox.world.context import World


def expires_in(world: World) -> int:
    return int(media.lifetime(world.store))


def _link(world: World, claims: dict[str, Any], extension: str) -> str:
    return media.link(world.store, world.base_url, claims, extension, issued=world.now())


def _none(event_id: int) -> dict[str, Any]:
    return {"event_id": event_id, "mp4": None, "thumbnail": None, "snapshots": []}


def of_events(world: World, dealer_id: int, event_ids: list[int]) -> list[dict[str, Any]]:
    """One entry per id asked for, in the order asked (an id asked twice is answered once)."""
    wanted = list(dict.fromkeys(event_ids))
    marks = ",".join("?" * len(wanted))
    rows = {
        row["seq"]: row
        for row in world.store.all(
            f"SELECT seq, type, data FROM events WHERE dealer_id = ? AND status = 'happened' "
            f"AND seq IN ({marks})",
            (dealer_id, *wanted),
        )
    }
    return [_entry(world, seq, rows.get(seq)) for seq in wanted]


def _entry(world: World, seq: int, row: Row | None) -> dict[str, Any]:
    if row is None:
        return _none(seq)
    data = json.loads(row["data"])
    if row["type"] == "alarm.created":
        return _alarm(world, seq, data.get("alarm_id"))
    if row["type"] == "snapshot.created":
        frame = _claims(world, "snapshot_id = ?", data.get("snapshot_id"))
        if frame:
            url = _link(world, frame[0], "jpg")
            return {"event_id": seq, "mp4": None, "thumbnail": url, "snapshots": [url]}
    return _none(seq)


def _alarm(world: World, seq: int, alarm_id: Any) -> dict[str, Any]:
    alarm = world.store.one("SELECT snapshot_id FROM alarms WHERE alarm_id = ?", (alarm_id,))
    if alarm is None or alarm["snapshot_id"] is None:
        return _none(seq)
    shows = _claims(world, "snapshot_id = ?", alarm["snapshot_id"])
    if not shows:
        return _none(seq)
    thumbnail = _link(world, shows[0], "jpg")
    later = _claims(world, "alarm_id = ? AND snapshot_id != ?", alarm_id, alarm["snapshot_id"])
    return {
        "event_id": seq,
        "mp4": _link(world, {**shows[0], "kind": "clip"}, "mp4"),
        "thumbnail": thumbnail,
        "snapshots": [thumbnail, *(_link(world, frame, "jpg") for frame in later)],
    }


def _claims(world: World, where: str, *params: Any) -> list[dict[str, Any]]:
    rows = world.store.all(
        f"SELECT claims FROM snapshots WHERE {where} ORDER BY captured_at, snapshot_id", params
    )
    return [json.loads(row["claims"]) for row in rows]
