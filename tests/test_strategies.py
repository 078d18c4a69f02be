"""The exported Hypothesis strategies produce what the sandbox really sends."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.clock import SystemClock
from sandbox.store import Store
from sandbox.strategies import deliveries, envelopes, event_data
from sandbox.webhooks import verify_signature
from sandbox.world import World, catalog
from sandbox.world.catalog import EVENT_TYPES
from sandbox.world.seed import seed_world

WORLD = World(Store(), SystemClock())
seed_world(WORLD, 1)


@settings(max_examples=40)
@given(st.sampled_from(EVENT_TYPES), st.data())
def test_strategy_fields_match_the_catalogue(event_type: str, data: st.DataObject) -> None:
    built = catalog.build(WORLD, random.Random(1), event_type, {}, "http://127.0.0.1:8765")
    drawn = data.draw(event_data(event_type))
    assert set(drawn) == set(built)


@settings(max_examples=60)
@given(st.data())
def test_generated_deliveries_verify(data: st.DataObject) -> None:
    headers, body = data.draw(deliveries(secret="whsec_property", timestamp=1_700_000_000))
    verify_signature("whsec_property", headers, body, now=1_700_000_000)


@settings(max_examples=30)
@given(envelopes(types=("site.armed", "site.disarmed")))
def test_envelopes_respect_the_type_filter(envelope: dict[str, object]) -> None:
    assert envelope["type"] in ("site.armed", "site.disarmed")
    assert str(envelope["id"]).startswith("evt_")
