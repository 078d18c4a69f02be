"""Hypothesis strategies for CHeKT webhooks, so partners can property-test their handlers
with every shape the sandbox (and CHeKT) may send::

    from hypothesis import given
    from sandbox.strategies import deliveries

    @given(deliveries(secret="whsec_test"))
    def test_handler_accepts_any_valid_delivery(delivery):
        headers, body = delivery
        assert my_handler(headers, body).status_code == 200

The fields and their schemas are the sandbox's own catalogue's, so they cannot drift apart.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from sandbox.webhooks.signing import sign
from sandbox.world import catalog
from sandbox.world.catalog import EVENT_TYPES

__all__ = ["deliveries", "envelopes", "event_data", "event_types"]

_stamp = st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.") + "000Z")
_url = st.from_regex(r"https://[a-z]{3,12}\.example/[a-z0-9/]{0,20}", fullmatch=True)
_BY_FORMAT = {"date-time": _stamp, "uri": _url}


def event_types() -> st.SearchStrategy[str]:
    return st.sampled_from(EVENT_TYPES)


def _from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values a catalogue field's JSON Schema allows (its examples among them)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    options = [_of_type(schema, kind) for kind in kinds]
    if "examples" in schema:
        options.insert(0, st.sampled_from(schema["examples"]))
    return st.one_of(options)


def _of_type(schema: dict[str, Any], kind: str) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum", 1), max_value=2**31 - 1)
    if kind == "array":
        return st.lists(_from_schema(schema["items"]), max_size=4)
    if kind == "object":
        properties = schema["properties"]
        return st.fixed_dictionaries({k: _from_schema(properties[k]) for k in schema["required"]})
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True)
    return _BY_FORMAT.get(schema.get("format", ""), st.text(max_size=80))


def event_data(event_type: str) -> st.SearchStrategy[dict[str, Any]]:
    """The ``data`` object of one event type, drawn from the catalogue's own schema."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    fields = catalog.EVENTS[event_type].fields
    return st.fixed_dictionaries({f.name: _from_schema(f.schema) for f in fields})


@st.composite
def envelopes(draw: st.DrawFn, types: tuple[str, ...] = EVENT_TYPES) -> dict[str, Any]:
    """A ``chekt-apps`` envelope: ``{id, type, created_at, data}``."""
    event_type = draw(st.sampled_from(types))
    moment = draw(st.datetimes())
    return {
        "id": f"evt_{draw(st.integers(0, 2**64 - 1)):016x}",
        "type": event_type,
        "created_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": draw(event_data(event_type)),
    }


@st.composite
def deliveries(
    draw: st.DrawFn,
    secret: str,
    timestamp: int | None = None,
    types: tuple[str, ...] = EVENT_TYPES,
) -> tuple[dict[str, str], bytes]:
    """``(headers, body)`` of a correctly signed delivery, as the dispatcher sends it."""
    envelope = draw(envelopes(types))
    body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
    moment = timestamp if timestamp is not None else draw(st.integers(1_600_000_000, 2_000_000_000))
    headers = {
        "Content-Type": "application/json",
        "X-CHeKT-Event-Id": envelope["id"],
        "X-CHeKT-Delivery-Id": f"dlv_{draw(st.integers(0, 2**64 - 1)):016x}",
        "X-CHeKT-Attempt": str(draw(st.integers(1, 8))),
        **sign(secret, body, moment),
    }
    return headers, body
