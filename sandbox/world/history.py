"""A seeded past, so lists are not empty: three days of arming, alarms through their
lifecycle and the odd camera outage at every site, in the record and the audit log but
never delivered. Drawn from its own RNG, so the rest of the seeded world is as it was."""

from __future__ import annotations

import random
from typing import Any

from sandbox.world import arming, catalog, events, record
from sandbox.world.audit import SEED
from sandbox.world.context import World

DAY = 86400
DAYS = 3
# links in the past would have expired: the record hands out fresh ones when asked
LINKS = ("snapshot_url", "clip_url", "tracking_url", "url")
RESOLUTIONS = ("handled",) * 12 + ("false-positive",) * 7 + ("escalated",)

Plan = list[tuple[float, str, dict[str, Any]]]


def seed_history(world: World, seed: int, start: float) -> None:
    """Write the past from ``start`` (a fixed time, so one seed yields one history)."""
    rng = random.Random(f"history-{seed}")
    world.store.execute("DELETE FROM meta WHERE key = ?", (record.ALARM_NUMBER,))
    plan: Plan = []
    for site in world.store.all("SELECT site_id FROM sites ORDER BY site_id"):
        site_id = site["site_id"]
        arming.add_partitions(world, site_id, rng.choice((1, 1, 2)), start)
        _arming(plan, rng, site_id, len(arming.partitions(world, site_id)), start)
        cameras = world.store.all(
            "SELECT device_id FROM devices WHERE site_id = ? AND device_type = 'camera' "
            "ORDER BY device_id",
            (site_id,),
        )
        if cameras:
            for _ in range(rng.randint(1, 3)):
                _alarm(plan, rng, site_id, start + rng.uniform(0, DAYS * DAY - 600))
            if rng.random() < 0.3:
                camera = rng.choice(cameras)["device_id"]
                down = start + rng.uniform(0, DAYS * DAY - 7200)
                ids = {"site_id": site_id, "device_id": camera}
                plan += [(down, "device.offline", ids), (down + 3600, "device.online", ids)]
    plan.sort(key=lambda step: step[0])
    alarm_ids: dict[Any, str] = {}  # ids are handed out in the order the alarms happen
    for at, event_type, step in plan:
        overrides = dict(step)
        key = overrides.pop("alarm", None)
        if key is not None:
            overrides["alarm_id"] = alarm_ids.setdefault(key, "") or record.new_alarm_id(world)
            alarm_ids[key] = overrides["alarm_id"]
        data = catalog.build(world, rng, event_type, overrides, world.base_url, at)
        unlinked = {**data, **dict.fromkeys(data.keys() & set(LINKS))}
        event_id = f"evt_{rng.getrandbits(64):016x}"
        events.log(world, event_type, unlinked, actor=SEED, at=at, history=event_id)


def _arming(plan: Plan, rng: random.Random, site_id: int, partitions: int, start: float) -> None:
    for day in range(DAYS):
        for partition in range(1, partitions + 1):
            morning = start + day * DAY + 7 * 3600 + rng.uniform(0, 3600)
            evening = start + day * DAY + 18 * 3600 + rng.uniform(0, 3600)
            user = f"user_{rng.randrange(1, 40)}"
            who = {"site_id": site_id, "partition": partition, "user_id": user}
            plan.append((morning, "site.armed", {**who, "state": "armed_away", "source": "keypad"}))
            plan.append((evening, "site.disarmed", {**who, "source": "keypad"}))


def _alarm(plan: Plan, rng: random.Random, site_id: int, at: float) -> None:
    resolution = rng.choice(RESOLUTIONS)
    ids = {"alarm": (site_id, at), "site_id": site_id}
    plan.append((at, "alarm.created", dict(ids)))
    plan.append((at + rng.uniform(20, 60), "alarm.acknowledged", dict(ids)))
    if resolution != "false-positive":
        plan.append((at + rng.uniform(70, 120), "alarm.dispatched", dict(ids)))
    plan.append((at + rng.uniform(300, 420), "alarm.resolved", {**ids, "resolution": resolution}))
