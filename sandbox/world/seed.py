"""A seeded, deterministic fake world: one seed always yields the same dealers, stations,
sites, devices, contacts and users, byte for byte (timestamps included)."""

from __future__ import annotations

import functools
import json
import random
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.store import WORLD_TABLES, Row, Store
from sandbox.world.context import World
from sandbox.world.history import seed_history
from sandbox.world.record import ALARM_NUMBER

EPOCH = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
TIMEZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Phoenix",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Toronto",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Seoul",
    "Australia/Sydney",
)
BRIDGE_CHANNELS = (4, 8, 12, 16)
SITE_KINDS = ("Residence", "Office", "Warehouse", "Store")
CAMERA_MODELS = (
    ("Hanwha", "XNO-6080R"),
    ("Axis", "M3106-L Mk II"),
    ("Hikvision", "DS-2CD2143G2-I"),
    ("Uniview", "IPC2124LB-SF40KM-G"),
    ("CHeKT", "CK-CAM-T4"),
)
CONTACT_TITLES = ("Owner", "Manager", "Keyholder")
FIRST_IDS = {"dealer": 1001, "station": 2001, "site": 10001, "contact": 50001, "device": 100001}


class _Seeder:
    def __init__(self, world: World, seed: int) -> None:
        self.world = world
        from faker import Faker  # a world already in the store (or already drawn) needs none

        self.rng = random.Random(seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.next_id = dict(FIRST_IDS)
        self.tick = 0

    def new_id(self, kind: str) -> int:
        value = self.next_id[kind]
        self.next_id[kind] += 1
        return value

    def created_at(self) -> float:
        """Seeded, strictly increasing creation times through 2024."""
        self.tick += 1
        return EPOCH + self.tick * 3600 + self.rng.randrange(3600)

    def phone(self) -> str:
        return f"+1{self.rng.randrange(200, 999)}555{self.rng.randrange(10000):04d}"

    def insert(self, table: str, row: dict[str, Any]) -> None:
        self.world.store.insert(table, row)

    def dealers(self, count: int, sites_per_dealer: int) -> None:
        for _ in range(count):
            dealer_id = self.new_id("dealer")
            company = self.fake.company()
            self.insert(
                "dealers",
                {
                    "dealer_id": dealer_id,
                    "company_name": f"{company} Security",
                    "company_address1": self.fake.street_address(),
                    "company_address2": f"{self.fake.city()}, {self.fake.state_abbr()}",
                    "company_email": f"ops@{self.fake.domain_name()}",
                    "company_phone_number": self.phone(),
                    "created_at": self.created_at(),
                },
            )
            self.user(dealer_id)
            stations = [self.station(dealer_id, n) for n in (1, 2)]
            accounts: set[str] = set()
            for n in range(1, sites_per_dealer + 1):
                self.site(dealer_id, n, self.rng.choice(stations), accounts)

    def user(self, dealer_id: int) -> None:
        first, last = self.fake.first_name(), self.fake.last_name()
        self.insert(
            "users",
            {
                "user_id": f"auth0|{self.rng.getrandbits(96):024x}",
                "dealer_id": dealer_id,
                "email": f"{first.lower()}.{last.lower()}.{dealer_id}@example.com",
                "name": f"{first} {last}",
                "role": "dealer_admin",
            },
        )

    def station(self, dealer_id: int, n: int) -> int:
        station_id = self.new_id("station")
        self.insert(
            "monitoring_stations",
            {
                "monitoring_station_id": station_id,
                "dealer_id": dealer_id,
                "external_monitoring_station_id": f"ms-{dealer_id}-{n}",
                "name": f"{self.fake.city()} Central Station",
                "prefix": "CH",
                "linecard": str(self.rng.randrange(1, 10)),
                "created_at": self.created_at(),
            },
        )
        return station_id

    def site(self, dealer_id: int, n: int, station_id: int, accounts: set[str]) -> None:
        site_id = self.new_id("site")
        account = f"{self.rng.randrange(0x10000):04X}"
        while account in accounts:
            account = f"{self.rng.randrange(0x10000):04X}"
        accounts.add(account)
        self.insert(
            "sites",
            {
                "site_id": site_id,
                "dealer_id": dealer_id,
                "external_site_id": f"site-{dealer_id}-{n}",
                "name": f"{self.fake.last_name()} {self.rng.choice(SITE_KINDS)}",
                "timezone": self.rng.choice(TIMEZONES),
                "monitoring_station_id": station_id,
                "account_number": account,
                "address1": self.fake.street_address(),
                "address2": f"{self.fake.city()}, {self.fake.state_abbr()} {self.fake.zipcode()}",
                "is_activated": 1 if self.rng.random() < 0.9 else 0,
                "security_type": self.rng.choice((1, 3, 3, 3)),
                "created_at": self.created_at(),
            },
        )
        self.devices(site_id)
        for c in range(1, self.rng.randint(1, 3) + 1):
            self.contact(site_id, c)

    def devices(self, site_id: int) -> None:
        channels = self.rng.choice(BRIDGE_CHANNELS)
        mac = ":".join(f"{self.rng.randrange(256):02X}" for _ in range(5))
        self.insert(
            "devices",
            {
                "device_id": self.new_id("device"),
                "site_id": site_id,
                "external_device_id": f"bridge-{site_id}",
                "device_type": "bridge",
                "zone_number": "000",
                "name": "CHeKT Bridge",
                "mac": f"00:{mac}",
                "manufacturer": "CHeKT",
                "model": f"CKB{channels:02d}0",
                "serial_number": f"CK{self.rng.getrandbits(40):010X}",
                "channels": channels,
                "created_at": self.created_at(),
            },
        )
        for zone in range(1, self.rng.randint(1, min(channels, 6)) + 1):
            maker, model = self.rng.choice(CAMERA_MODELS)
            self.insert(
                "devices",
                {
                    "device_id": self.new_id("device"),
                    "site_id": site_id,
                    "external_device_id": f"cam-{site_id}-{zone}",
                    "device_type": "camera",
                    "zone_number": f"{zone:03d}",
                    "name": self.rng.choice(
                        ("Front Door", "Driveway", "Back Yard", "Garage", "Lobby", "Loading Dock")
                    ),
                    "mac": ":".join(f"{self.rng.randrange(256):02X}" for _ in range(6)),
                    "manufacturer": maker,
                    "model": model,
                    "serial_number": f"{maker[:2].upper()}{self.rng.getrandbits(36):09X}",
                    "created_at": self.created_at(),
                },
            )

    def contact(self, site_id: int, n: int) -> None:
        """The site's n-th call-list entry; the first one's phone was validated when it was
        added (the rest are in the call order, never validated), all without another draw
        from the RNG, so the rest of the world stays as it was."""
        first, last = self.fake.first_name(), self.fake.last_name()
        created = self.created_at()
        self.insert(
            "contacts",
            {
                "contact_id": self.new_id("contact"),
                "site_id": site_id,
                "external_contact_id": f"contact-{site_id}-{n}",
                "first_name": first,
                "last_name": last,
                "phone_number": self.phone(),
                "email": f"{first.lower()}.{last.lower()}@example.com",
                "created_at": created,
                "title": CONTACT_TITLES[(n - 1) % len(CONTACT_TITLES)],
                "slot_number": n,
                "sms_alarm_enabled": 1,
                "email_alarm_enabled": int(n == 1),
                "sms_validation_requested_at": created if n == 1 else None,
            },
        )


HISTORY_START = EPOCH + 20 * 86400  # the seeded past: three days from 2024-01-21


@dataclass(frozen=True)
class Drawn:
    """A seeded world's rows (``Store.dump`` of the world tables) and its alarm counter."""

    rows: dict[str, list[Row]]
    alarm_number: str | None


def draw(seed: int, dealers: int, sites_per_dealer: int, timestamp_style: str = "iso") -> Drawn:
    """Draw a world from ``seed`` in a scratch in-memory store. The draw reads neither the
    clock nor the base URL (the seeded past carries no links), so it fits any sandbox."""
    world = World(Store(), clock=None, timestamp_style=timestamp_style)  # type: ignore[arg-type]
    with world.store.transaction():
        _Seeder(world, seed).dealers(dealers, sites_per_dealer)
        seed_history(world, seed, HISTORY_START)
    return Drawn(world.store.dump(WORLD_TABLES), world.store.get_meta(ALARM_NUMBER))


def draw_apart(seed: int, dealers: int, sites_per_dealer: int, timestamp_style: str) -> Drawn:
    """:func:`draw` in a short-lived child interpreter, for a long-running ``serve``: Faker's
    locale tables (~8 MB, never given back) stay out of the server. Where no child can run,
    the draw is made here."""
    # -P: a `sandbox` package in the directory serve runs from is not this one
    argv = [sys.executable, "-P", "-m", __name__, str(seed), str(dealers), str(sites_per_dealer)]
    try:
        out = subprocess.run(  # noqa: S603  # this interpreter, this module, numbers
            [*argv, timestamp_style], capture_output=True, check=True, timeout=120
        ).stdout
        found = json.loads(out)
        return Drawn(found["rows"], found["alarm_number"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return draw(seed, dealers, sites_per_dealer, timestamp_style)


@functools.lru_cache(maxsize=8)
def drawn(
    seed: int, dealers: int, sites_per_dealer: int, timestamp_style: str, apart: bool
) -> Drawn:
    """Once per process: every sandbox a test session starts, and every reset, copies these
    rows back instead of drawing again (Faker and the history cost ~200 ms a draw)."""
    how = draw_apart if apart else draw
    return how(seed, dealers, sites_per_dealer, timestamp_style)


def seed_world(world: World, seed: int, dealers: int = 3, sites_per_dealer: int = 5) -> None:
    """Wipe the world tables and fill them from ``seed``, with a few days of history. The
    rows are drawn once per process and copied back on every later seeding (a reset per test
    must stay cheap)."""
    store = world.store
    found = drawn(seed, dealers, sites_per_dealer, world.timestamp_style, world.draws_apart)
    with store.transaction():
        store.restore_world(found.rows)
        store.set_meta(ALARM_NUMBER, found.alarm_number or "0")


if __name__ == "__main__":  # draw_apart's child: the drawn world as JSON on stdout
    seed, dealers, sites = (int(arg) for arg in sys.argv[1:4])
    made = draw(seed, dealers, sites, sys.argv[4])
    json.dump({"rows": made.rows, "alarm_number": made.alarm_number}, sys.stdout)
