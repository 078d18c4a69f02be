"""The dealer API's record operations (``/ext/v1``): contacts, the activity log, the media
links of events, verification requests. Request bodies come from the fields the handlers
validate with; what a check function decides is spelled out here."""

from __future__ import annotations

from typing import Any

from sandbox.api import dealer_activity
from sandbox.api.openapi.dealer import INTEGER, MAYBE_TEXT, SITE, TEXT, op
from sandbox.api.openapi.schema import body, field, listed, named, obj, required
from sandbox.world import activity, contacts, verifications
from sandbox.world.catalog import METHODS, one_of
from sandbox.world.fields import SQLITE_INT
from sandbox.world.listing import TIMESTAMP_PATTERN

CONTACTS = SITE + "/contacts"
CONTACT = CONTACTS + "/{contact_id}"
MAYBE_INTEGER = {"type": ["integer", "null"]}
FLAG = one_of(contacts.FLAG, "ContactFlag")
STAMP = {"type": "string", "description": "a UTC time as the sandbox renders times"}
MAYBE_STAMP = {"type": ["string", "null"], "description": STAMP["description"]}
FLAGS = {"sms_alarm_enabled": "ContactFlag", "email_alarm_enabled": "ContactFlag"}
# what a contact's PUT may leave out but never clear
KEPT = ("external_contact_id", "first_name", "last_name", *FLAGS)

_CONTACT_FIELDS: dict[str, Any] = dict(
    contact_id=INTEGER,
    site_id=INTEGER,
    external_contact_id=TEXT,
    first_name=TEXT,
    last_name=TEXT,
    title=MAYBE_TEXT,
    slot_number=MAYBE_INTEGER,
    email_address=MAYBE_TEXT,
    phone_number=MAYBE_TEXT,
    sms_alarm_enabled=FLAG,
    email_alarm_enabled=FLAG,
    sms_validation=required(
        "SmsValidation",
        status={
            **one_of((0, 1), "SmsValidationStatus"),
            "description": "1 once validated; 0 before, and while one is pending",
        },
        requested_at=MAYBE_STAMP,
    ),
)
DEALER_CONTACT = named("DealerContact", obj(tuple(_CONTACT_FIELDS), **_CONTACT_FIELDS))
CONTACT_ERRORS = {
    "404": "`site_not_found` / `contact_not_found`: not one of the key's dealer's",
    "422": "`validation_failed`: a field broke a rule; `detail` names it",
}


def _contact_paths() -> dict[str, Any]:
    site, item = ("site_id",), ("site_id", "contact_id")
    create = body(contacts.FIELDS, title="DealerContactInput", enums=FLAGS)
    change = body(
        contacts.FIELDS, partial=True, not_null=KEPT, title="DealerContactUpdate", enums=FLAGS
    )
    return {
        CONTACTS: {
            "get": op(
                "The site's contacts, as a bare array",
                200,
                listed(DEALER_CONTACT),
                params=site,
                errors=CONTACT_ERRORS,
            ),
            "post": op(
                "Add a contact (external_contact_id is required and never changes)",
                201,
                DEALER_CONTACT,
                create,
                site,
                errors={**CONTACT_ERRORS, "409": "`conflict`: the external_contact_id is taken"},
            ),
        },
        CONTACT: {
            "get": op("A contact", 200, DEALER_CONTACT, params=item, errors=CONTACT_ERRORS),
            "put": op(
                "Change a contact: the fields sent are set, the others kept; "
                "external_contact_id only unchanged (422 naming it otherwise); a new phone "
                "number needs a new validation",
                200,
                DEALER_CONTACT,
                change,
                item,
                errors=CONTACT_ERRORS,
            ),
            "delete": op("Remove a contact", 204, None, params=item, errors=CONTACT_ERRORS),
        },
        CONTACT + "/validation": {
            "post": op(
                "Send the contact's phone a validation SMS; sms_validation.status turns 1 "
                f"{contacts.VALIDATION_SECONDS} s of sandbox time later",
                202,
                DEALER_CONTACT,
                params=item,
                errors={**CONTACT_ERRORS, "422": "`validation_failed`: no phone_number"},
            )
        },
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


TIME = {"type": "string", "pattern": f"^{TIMESTAMP_PATTERN}$", "description": "ISO 8601"}
SEARCH = named(
    "ActivityLogSearch",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["start_time", "end_time"],
        "properties": {
            "start_time": {**TIME, "description": "from this time (inclusive)"},
            "end_time": {**TIME, "description": "to this time (exclusive), after start_time"},
            "site_id": _nullable({"type": "integer", "minimum": 1, "maximum": SQLITE_INT - 1}),
            "limit": _nullable(
                {"type": "integer", "minimum": 1, "maximum": dealer_activity.MAX_LIMIT}
            ),
            "sort_by": _nullable(one_of(activity.SORT_BY, "ActivityLogSortBy")),
            "sort_order": _nullable(one_of(activity.ORDERS, "SortOrder")),
            "category_id": _nullable(one_of(tuple(activity.CATEGORIES), "ActivityCategoryId")),
            "cursor": _nullable(
                {
                    "type": "string",
                    "maxLength": 1024,
                    "description": "opaque: page.cursor of an earlier answer to this search",
                }
            ),
        },
    },
)
ENTRY = required(
    "ActivityLogEntry",
    event_id={**INTEGER, "description": "the numeric id events-video-urls takes"},
    event_time=STAMP,
    category_id=INTEGER,
    trigger=MAYBE_TEXT,
    status=TEXT,
    zone_number=MAYBE_TEXT,
    device_name=MAYBE_TEXT,
    device_id=MAYBE_INTEGER,
    site_id=INTEGER,
    event_type=TEXT,
)
PAGE = required(
    "ActivityLogPage",
    data=listed(ENTRY),
    page=required(
        "ActivityLogCursor",
        cursor={"type": ["string", "null"], "description": "null on the last page"},
        has_more={"type": "boolean"},
    ),
)
VIDEO_REQUEST = named(
    "EventVideoUrlsRequest",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["event_ids"],
        "properties": {
            "event_ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": dealer_activity.MAX_EVENT_IDS,
                "items": {"type": "integer", "minimum": 1, "maximum": SQLITE_INT - 1},
            }
        },
    },
)
VIDEO = required(
    "EventVideoUrls",
    events=listed(
        required(
            "EventVideo",
            event_id=INTEGER,
            mp4={"type": ["string", "null"], "description": "an H.264 MP4 clip (signed)"},
            thumbnail={"type": ["string", "null"], "description": "a JPEG frame (signed)"},
            snapshots=listed({"type": "string", "description": "a JPEG frame (signed)"}),
        )
    ),
    expires_in={**INTEGER, "description": "seconds of sandbox time the links last"},
)


def _activity_paths() -> dict[str, Any]:
    bad = "`validation_failed`: a time, the limit, the category or the cursor; `detail` names it"
    return {
        "/ext/v1/activity-logs/categories": {
            "get": op(
                "The activity-log categories (video ones included)",
                200,
                listed(required("ActivityCategory", id=INTEGER, name=TEXT)),
            )
        },
        "/ext/v1/activity-logs/search": {
            "post": op(
                "A page of the activity log, by an opaque cursor over (event_time, event_id)",
                200,
                PAGE,
                SEARCH,
                errors={"404": "`site_not_found`: not one of the key's dealer's", "422": bad},
            )
        },
        "/ext/v1/events-video-urls": {
            "post": op(
                "Signed links to each event's clip, thumbnail and snapshots (nulls and [] for "
                "an event without media, another dealer's, or an unknown id)",
                200,
                VIDEO,
                VIDEO_REQUEST,
                errors={"422": "`validation_failed`: event_ids"},
            )
        },
    }


def _verification_body(title: str, *, with_target: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "contacts": {
            "type": "array",
            "minItems": 1,
            "maxItems": verifications.MAX_CONTACTS,
            "items": {"type": "integer", "minimum": 1},
            "description": "contact_ids of the alarm's site",
        },
        "method": _nullable(one_of(METHODS, "VerificationMethod")),
        "message": field(next(f for f in verifications.FIELDS if f.name == "message")),
        "timeout_seconds": _nullable({"type": "integer", "minimum": 30, "maximum": 86400}),
    }
    if with_target:
        properties["event_id"] = _nullable({"type": "integer", "minimum": 1, "maximum": 2**62})
        properties["alarm_id"] = _nullable({"type": "string", "minLength": 1, "maxLength": 64})
    return named(
        title,
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["contacts"],
            "properties": properties,
        },
    )


VERIFICATION = required(
    "DealerVerification",
    data=required(
        "DealerVerificationSent",
        verification_id=TEXT,
        event_id=MAYBE_INTEGER,
        alarm_id=TEXT,
        status={"const": "sent"},
        method=one_of(METHODS, "VerificationMethod"),
        sent_to=listed(
            required(
                "VerificationRecipient",
                contact_id=INTEGER,
                name=TEXT,
                phone=MAYBE_TEXT,
                status=one_of(("sent", "unreachable"), "VerificationDelivery"),
            )
        ),
        timeout_at=STAMP,
        sent_at=STAMP,
    ),
)
VERIFY_ERRORS = {
    "404": "`event_not_found` / `alarm_not_found`: not the key's dealer's",
    "409": "`invalid_transition`: the alarm is resolved (history takes no verification)",
    "422": "`validation_failed`: a contact not of the alarm's site, an event about no alarm, "
    "or a field out of range; `detail` names it",
}
EVENT_ID = {
    "name": "event_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
    "description": "a numeric event id (activity log, dealer-v1)",
}


def _verification_paths() -> dict[str, Any]:
    on_event = op(
        "Ask contacts to verify the alarm this event is about (a verification.requested webhook)",
        201,
        VERIFICATION,
        _verification_body("DealerVerificationRequest", with_target=False),
        errors=VERIFY_ERRORS,
    )
    on_event["parameters"] = [EVENT_ID]
    named_in_body = op(
        "Ask contacts to verify an alarm named in the body by event_id or alarm_id (one of them)",
        201,
        VERIFICATION,
        _verification_body("DealerVerificationTargetRequest", with_target=True),
        errors=VERIFY_ERRORS,
    )
    return {
        "/ext/v1/events/{event_id}/verifications": {"post": on_event},
        "/ext/v1/verifications": {"post": named_in_body},
    }


def paths() -> dict[str, Any]:
    return {**_contact_paths(), **_activity_paths(), **_verification_paths()}
