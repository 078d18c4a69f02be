"""Hypothesis strategies for CHeKT webhooks, so partners can property-test their handlers
with every shape the sandbox (and CHeKT) may send::

    from hypothesis import given
    from sandbox.strategies import deliveries

    @given(deliveries(secret="whsec_test"))
    def test_handler_accepts_any_valid_delivery(delivery):
        headers, body = delivery
        assert my_handler(headers, body).status_code == 200

The field sets match what the sandbox's own catalogue builds (a test keeps them in step).
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import strategies as st

from sandbox.vocabulary import RESOLUTIONS
from sandbox.webhooks.signing import sign
from sandbox.world import arming, catalog
from sandbox.world.subscriptions import EVENT_TYPES

__all__ = ["deliveries", "envelopes", "event_data", "event_types"]

_ids = st.integers(min_value=1, max_value=2**31 - 1)
_external = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=40)
_text = st.text(max_size=80)
_stamp = st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.") + "000Z")
_hex_id = st.integers(min_value=0, max_value=2**40 - 1)
_alarm_id = st.integers(10000, 99999).map(lambda n: f"A-{n}")
_url = st.from_regex(r"https://[a-z]{3,12}\.example/[a-z0-9/]{0,20}", fullmatch=True)


def event_types() -> st.SearchStrategy[str]:
    return st.sampled_from(EVENT_TYPES)


def _site_ids(with_device: bool) -> dict[str, st.SearchStrategy[Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {
        "dealer_id": _ids,
        "site_id": _ids,
        "external_site_id": _external,
    }
    if with_device:
        fields |= {"device_id": _ids, "external_device_id": _external}
    return fields


def event_data(event_type: str) -> st.SearchStrategy[dict[str, Any]]:
    """The ``data`` object of one event type."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    fields: dict[str, st.SearchStrategy[Any]]
    if event_type == "alarm.created":
        fields = {
            **_site_ids(True),
            "alarm_id": _alarm_id,
            "priority": st.sampled_from(catalog.PRIORITIES),
            "trigger": st.sampled_from(catalog.TRIGGERS),
            "location": _text,
            "zone_number": st.integers(1, 16).map(lambda z: f"{z:03d}"),
            "contact_id_code": st.sampled_from(sorted(set(catalog.CONTACT_ID_CODES.values()))),
            "snapshot_url": _url,
            "clip_url": _url,
        }
    elif event_type == "alarm.acknowledged":
        fields = {
            **_site_ids(False),
            "alarm_id": _alarm_id,
            "operator_id": _external.map(lambda s: f"op_{s}"),
            "reason": _text,
        }
    elif event_type == "alarm.dispatched":
        fields = {
            **_site_ids(False),
            "alarm_id": _alarm_id,
            "responder_id": _hex_id.map(lambda n: f"rsp_{n:05x}"),
            "responder_type": st.sampled_from(catalog.RESPONDERS),
            "eta_seconds": st.integers(0, 7200),
            "tracking_url": _url,
        }
    elif event_type == "alarm.resolved":
        fields = {
            **_site_ids(False),
            "alarm_id": _alarm_id,
            "resolution": st.sampled_from(RESOLUTIONS),
            "notes": _text,
        }
    elif event_type in ("device.online", "device.offline"):
        fields = {
            **_site_ids(True),
            "device_type": st.sampled_from(("camera", "bridge")),
            "name": st.none() | _text,
            "last_seen": _stamp,
        }
    elif event_type == "device.firmware_updated":
        fields = {
            **_site_ids(True),
            "from_version": st.sampled_from(catalog.FIRMWARE),
            "to_version": st.sampled_from(catalog.FIRMWARE),
        }
    elif event_type == "verification.requested":
        contact = st.fixed_dictionaries(
            {
                "contact_id": _ids,
                "first_name": _text,
                "last_name": _text,
                "phone_number": st.none() | st.from_regex(r"\+1[0-9]{10}", fullmatch=True),
                "email": st.none() | st.emails(),
            }
        )
        fields = {
            **_site_ids(False),
            "verification_id": _hex_id.map(lambda n: f"ver_{n:010x}"),
            "alarm_id": _alarm_id,
            "method": st.sampled_from(catalog.METHODS),
            "contacts": st.lists(contact, max_size=4),
            "timeout_seconds": st.sampled_from((60, 120, 300)),
        }
    elif event_type == "snapshot.created":
        fields = {
            **_site_ids(True),
            "snapshot_id": _hex_id.map(lambda n: f"snap_{n:010x}"),
            "alarm_id": _alarm_id,
            "url": _url,
            "captured_at": _stamp,
        }
    else:
        states = arming.ARMED_STATES if event_type == "site.armed" else ("disarmed",)
        fields = {
            **_site_ids(False),
            "state": st.sampled_from(states),
            "partition": st.integers(1, 8),
            "user_id": _external,
            "source": st.sampled_from(catalog.SOURCES),
        }
    return st.fixed_dictionaries(fields)


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
