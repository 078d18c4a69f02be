"""``GET /v1/alarms`` is served from JSON made once per data version with its links filled
per request: the bytes must be those of the list built afresh, whichever of its links still
work (new alarms, dispatched responders) and whichever had to be made anew (the seeded past,
and everything once the clock has moved past the links' lifetime)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import Settings
from one_hop import TestClient
from starlette.responses import JSONResponse

from sandbox import VirtualClock, create_app
from sandbox.world import World, alarms, linked, media, snapshots

START = 1_900_000_000.0


@pytest.fixture
def sandbox() -> Iterator[TestClient]:
    app = create_app(Settings(webhook_timeout=1.0), clock=VirtualClock(start=START))
    with TestClient(app) as client:
        yield client


def key_of(client: TestClient, dealer_id: int) -> dict[str, str]:
    made = client.post(
        "/_sandbox/api-keys",
        json={"dealer_id": dealer_id, "scopes": ["events:read", "alarms:write", "events:write"]},
    )
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}


def world_of(client: TestClient) -> World:
    world: World = client.app.state.services.world  # type: ignore[attr-defined]
    return world


def built_afresh(
    client: TestClient, dealer_id: int, filters: dict[str, Any], page: dict[str, int]
) -> bytes:
    items, _ = alarms.listing(
        world_of(client), dealer_id, filters, page.get("limit", 100), page.get("offset", 0)
    )
    return bytes(JSONResponse(items).body)


def same_as_afresh(client: TestClient, auth: dict[str, str], dealer_id: int, **query: Any) -> bytes:
    filters = {k: v for k, v in query.items() if k not in ("limit", "offset")}
    page = {k: v for k, v in query.items() if k in ("limit", "offset")}
    served = client.get("/v1/alarms", headers=auth, params=query)
    assert served.status_code == 200, served.text
    assert served.content == built_afresh(client, dealer_id, filters, page)
    return served.content


def test_the_served_list_is_the_list_built_afresh(sandbox: TestClient) -> None:
    auth = {dealer: key_of(sandbox, dealer) for dealer in (1001, 1002, 1003)}
    before = same_as_afresh(sandbox, auth[1001], 1001)
    assert b"access_token=" in before  # the seeded past: every link made for this request
    assert same_as_afresh(sandbox, auth[1001], 1001) == before  # the clock stood still
    # new alarms carry links that still work, a dispatch adds a tracking link
    for _ in range(3):
        made = sandbox.post("/_sandbox/events", json={"lifecycle": "alarm"})
        assert made.status_code == 202, made.text
    sandbox.post("/_sandbox/clock/advance", json={"seconds": 200})
    for dealer in (1001, 1002, 1003):
        same_as_afresh(sandbox, auth[dealer], dealer)
        same_as_afresh(sandbox, auth[dealer], dealer, state="resolved", limit=3)
        same_as_afresh(sandbox, auth[dealer], dealer, limit=2, offset=1)
    listed = sandbox.get("/_sandbox/alarms", params={"limit": 100}).json()
    assert any(a["responder"] for a in listed)
    # past the links' lifetime the stored ones give way to new ones, at the new time
    sandbox.post("/_sandbox/clock/advance", json={"seconds": 3500})
    later = same_as_afresh(sandbox, auth[1001], 1001)
    assert later != before
    sandbox.post("/_sandbox/clock/advance", json={"seconds": 0.0004})  # same expiry to the ms?
    same_as_afresh(sandbox, auth[1001], 1001)


def test_an_app_key_cannot_name_another_dealer(sandbox: TestClient) -> None:
    """The key's dealer is the only reach: /v1 takes no dealer_id to widen (or narrow) it."""
    auth = key_of(sandbox, 1001)
    own = sandbox.get("/v1/alarms", headers=auth)
    assert own.status_code == 200 and own.json()
    assert all(a["dealer_id"] == 1001 for a in own.json())
    other = sandbox.get("/v1/alarms", headers=auth, params={"dealer_id": 1002})
    assert other.status_code == 422 and other.json()["error"]["field"] == "dealer_id"


def test_a_body_fills_each_slot_as_fresh_link_would() -> None:
    """Stored links that work or have expired, none stored, responders still on the way,
    at moments on both sides of every turn (and two requests within one millisecond)."""
    clock = VirtualClock(start=START)
    app = create_app(Settings(), clock=clock)
    world: World = app.state.services.world
    lifetime = media.lifetime(world.store)
    rng = random.Random(5)
    slots: list[tuple[str | None, dict[str, Any], str]] = []
    for n in range(12):
        claims: dict[str, Any] = {
            "kind": "track",
            "id": f"A-{n}",
            "at": START + rng.choice((-5000, -10, 0, 30)),
        }
        if n % 3 == 0:
            claims["eta_seconds"] = rng.choice((60, 4000))
        stored = rng.choice((None, "old", "fresh"))
        url = (
            None
            if stored is None
            else media.link(
                world.store,
                world.base_url,
                claims,
                "",
                issued=START - (7200 if stored == "old" else 0),
            )
        )
        slots.append((url, claims, ""))
    value = [
        {"n": n, "link": linked.Slot(*slot), "more": [1, None, "é"]} for n, slot in enumerate(slots)
    ]
    body = linked.Body(value, media.secret(world.store), world.base_url, lifetime)
    turns = [
        c["at"] + c.get("eta_seconds", 0) + extra for _, c, _ in slots for extra in (0, lifetime)
    ]
    near = [turn + d for turn in turns for d in (-0.0001, 0.0001)]  # one millisecond, two sides
    moments = sorted({START + d for d in (0, 0.0004, 0.0011, 29.9, 61, 7700)} | set(near))
    moments = [now for now in moments if now >= START]  # a virtual clock only moves on
    for now in moments:
        clock.set(now)
        want = [
            {
                "n": n,
                "link": snapshots.fresh_link(world, url, claims, ext) if url or claims else url,
                "more": [1, None, "é"],
            }
            for n, (url, claims, ext) in enumerate(slots)
        ]
        assert body.render(now) == bytes(JSONResponse(want).body), now


def test_a_mint_signs_what_link_signs() -> None:
    key, rng = b"k" * 32, random.Random(7)
    for _ in range(300):
        claims: dict[str, Any] = {
            "kind": rng.choice(["snapshot", "clip", "track"]),
            "id": f"snap_A-{rng.randrange(10**6)}" + rng.choice(["", 'é/"x', "\u2028 ?&"]),
            "at": round(rng.uniform(1e9, 2e9), 3),
            "site": rng.choice(['Wright "Office"', None, "Büro"]),
            "channel": "004",
        }
        if rng.random() < 0.3:
            claims["eta_seconds"] = rng.randrange(1000)
        mint = media.Mint(key, "http://h:1", claims, rng.choice(["jpg", "mp4", ""]))
        for _ in range(3):
            exp = round(rng.uniform(1e9, 2e9), 3)
            assert mint.token(exp) == media.sign(key, {**claims, "exp": exp})
