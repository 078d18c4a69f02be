"""The record's objects as the CHeKT Apps API (``/v1``) and the control API show them:
alarms, devices with their status, sites with their arming, snapshots and the events of the
log. Each is a named component, so generated clients get a class of that name."""

from __future__ import annotations

from sandbox.api.apps import RECORD_TYPES
from sandbox.api.openapi.schema import listed, required
from sandbox.world import alarms, arming, catalog, device_status

INTEGER = {"type": "integer"}
TEXT = {"type": "string"}
MAYBE_TEXT = {"type": ["string", "null"]}
MAYBE_INTEGER = {"type": ["integer", "null"]}
STAMP = {"type": "string", "description": "a UTC time as the sandbox renders times"}
MAYBE_STAMP = {"type": ["string", "null"], "description": "a UTC time, or null until it happens"}
SIGNED_LINK = (
    "a link that works now (a new one once the webhook's has expired); its access_token "
    "authorizes it for media_url_lifetime seconds of sandbox time"
)
ID_NUMBER = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}

ALARM_STATE = {"title": "AlarmState", "enum": list(alarms.STATES)}
ARMING_STATE = {"title": "ArmingState", "enum": list(arming.STATES)}
DEVICE_STATUS = {"title": "DeviceStatus", "enum": list(device_status.STATUSES)}
DEVICE_TYPE = catalog.one_of(catalog.DEVICE_TYPES, "DeviceType")  # as the webhooks name it
RECORD_TYPE = {"title": "RecordEventType", "enum": list(RECORD_TYPES)}


PARTITION = required(
    "ArmingPartition",
    partition={"type": "integer", "minimum": 1},
    name=TEXT,
    state=ARMING_STATE,
    user_id=MAYBE_TEXT,
    source=MAYBE_TEXT,
    updated_at=STAMP,
)
SITE_PROPERTIES = {
    "site_id": INTEGER,
    "dealer_id": INTEGER,
    "external_site_id": TEXT,
    "name": TEXT,
    "timezone": TEXT,
    "account_number": MAYBE_TEXT,
    "address1": MAYBE_TEXT,
    "address2": MAYBE_TEXT,
    "is_activated": {"type": "integer", "enum": [0, 1]},
    "created_at": STAMP,
    "arming": {
        **required(
            "SiteArming", state=ARMING_STATE, updated_at=MAYBE_STAMP, partitions=listed(PARTITION)
        ),
        "description": "the site is in the mode of its first armed partition, else disarmed",
    },
}
APP_SITE = required("AppSite", **SITE_PROPERTIES)
ARMING_CHANGED = required(
    "ArmingStateChanged",
    **SITE_PROPERTIES,
    event_ids={**listed(TEXT), "description": "one site.armed / site.disarmed per partition"},
)
APP_DEVICE = required(
    "AppDevice",
    device_id=INTEGER,
    site_id=INTEGER,
    dealer_id=INTEGER,
    external_device_id=TEXT,
    device_type=DEVICE_TYPE,
    zone_number=TEXT,
    name=MAYBE_TEXT,
    manufacturer=MAYBE_TEXT,
    model=MAYBE_TEXT,
    serial_number=MAYBE_TEXT,
    mac=MAYBE_TEXT,
    status=DEVICE_STATUS,
    last_seen={**MAYBE_STAMP, "description": "when it was last online; null if never seen"},
    firmware_version=MAYBE_TEXT,
    labels=listed(TEXT),
    group=MAYBE_TEXT,
    configuration={"type": "object"},
    created_at=STAMP,
)
SNAPSHOT_OBJECT = required(
    "Snapshot",
    snapshot_id=TEXT,
    dealer_id=INTEGER,
    site_id=INTEGER,
    device_id=INTEGER,
    alarm_id={**MAYBE_TEXT, "description": "the alarm it shows; null for one taken on demand"},
    url={"type": "string", "description": "the JPEG: " + SIGNED_LINK},
    captured_at=STAMP,
)
RESPONDER = required(
    "AlarmResponder",
    responder_id=MAYBE_TEXT,
    responder_type=MAYBE_TEXT,
    eta_seconds=MAYBE_INTEGER,
    tracking_url={**MAYBE_TEXT, "description": "the responder's progress: " + SIGNED_LINK},
)
ANNOTATION = required(
    "AlarmAnnotation",
    source=TEXT,
    verdict={"title": "AnnotationVerdict", "enum": list(alarms.VERDICTS)},
    confidence={"type": ["number", "null"]},
    note=MAYBE_TEXT,
    author=TEXT,
    created_at=STAMP,
)
ALARM_OBJECT = required(
    "Alarm",
    alarm_id={"type": "string", "examples": ["A-10293"]},
    dealer_id=INTEGER,
    site_id=INTEGER,
    external_site_id=MAYBE_TEXT,
    device_id=MAYBE_INTEGER,
    external_device_id=MAYBE_TEXT,
    zone_number=MAYBE_TEXT,
    state=ALARM_STATE,
    priority={"type": "string", "examples": list(catalog.PRIORITIES)},
    trigger={"type": "string", "examples": list(catalog.TRIGGERS)},
    location=MAYBE_TEXT,
    contact_id_code=MAYBE_INTEGER,
    snapshot_id=MAYBE_TEXT,
    snapshot_url={**MAYBE_TEXT, "description": "the alarm's frame: " + SIGNED_LINK},
    clip_url={**MAYBE_TEXT, "description": "10 s before to 10 s after: " + SIGNED_LINK},
    operator_id=MAYBE_TEXT,
    reason={**MAYBE_TEXT, "description": "the acknowledgement's reason"},
    escalation_reason=MAYBE_TEXT,
    responder={"anyOf": [RESPONDER, {"type": "null"}]},
    resolution=MAYBE_TEXT,
    notes=MAYBE_TEXT,
    annotations=listed(ANNOTATION),
    created_at=STAMP,
    updated_at=STAMP,
    acknowledged_at=MAYBE_STAMP,
    dispatched_at=MAYBE_STAMP,
    escalated_at=MAYBE_STAMP,
    resolved_at=MAYBE_STAMP,
)
RECORD_EVENT = required(
    "RecordEvent",
    id={"type": "string", "description": "the evt_ id its chekt-apps webhook carried"},
    event_id={"type": "integer", "description": "the numeric id: increasing, in record order"},
    type=RECORD_TYPE,
    created_at=STAMP,
    data={"type": "object", "description": "the data of its webhook, links made to work now"},
)
EVENT_PAGE = required(
    "EventPage",
    data=listed(RECORD_EVENT),
    page=required(
        "EventPageInfo",
        cursor={"type": "string", "description": "send it back as ?cursor= for what follows"},
        has_more={"type": "boolean"},
    ),
)
