"""The dealer Public API (``/ext/v1``): a dealer API key, the dealer's sites, the shapes the
live service sends (bare arrays; errors that also carry ``detail``)."""

from __future__ import annotations

from typing import Any

from sandbox.api.openapi.schema import ERROR, json_content, listed, named, obj, operation, query

DEALER_KEY = "dealerKey"
TAG = "Dealer API"
SITE = "/ext/v1/sites/{site_id}"
INTEGER = {"type": "integer"}
TEXT = {"type": "string"}
MAYBE_TEXT = {"type": ["string", "null"]}


def required(title: str, **properties: Any) -> dict[str, Any]:
    """An object that always carries every one of ``properties`` (null where it says so)."""
    return named(title, obj(tuple(properties), **properties))


DEALER_PARTITION = required("DealerPartition", partition_id=INTEGER, partition_name=TEXT)
DEALER_SITE = required(
    "DealerSite",
    site_id=INTEGER,
    site_name=TEXT,
    address=TEXT,
    account_number=TEXT,
    dealer_name=TEXT,
    is_activated={"type": "boolean"},
    is_partition_enabled={"type": "boolean"},
    partitions=listed(DEALER_PARTITION),
)


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **json_content(ERROR)}


def op(
    summary: str,
    ok: int,
    result: dict[str, Any] | None,
    request: dict[str, Any] | None = None,
    params: tuple[str, ...] = (),
    queries: tuple[dict[str, Any], ...] = (),
    *,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A dealer API operation: any API key of the dealer, no scope."""
    found = operation(summary, None, ok, result, request, params, queries, tag=TAG)
    found["security"] = [{DEALER_KEY: []}]
    found["responses"]["401"] = _error(
        "`invalid_api_key`: no key, an unknown or expired one, or an access token (the dealer "
        "API takes an API key only)"
    )
    for status, description in (errors or {}).items():
        found["responses"][status] = _error(description)
    return found


def _site_paths() -> dict[str, Any]:
    sites = op(
        "The dealer's sites, as a bare array",
        200,
        listed(DEALER_SITE),
        queries=(
            query("search", TEXT, "only sites whose name or account number contains this"),
            query("status", {"enum": ["activated", "deactivated"]}, "only these sites"),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most"),
            query("page", {"type": "integer", "minimum": 1, "maximum": 10**6}, "the page, from 1"),
            query("per_page", {"type": "integer", "minimum": 1, "maximum": 100}, "page size"),
        ),
        errors={"422": "`validation_failed`: a query parameter out of range or unknown"},
    )
    return {"/ext/v1/sites": {"get": sites}}


def paths() -> dict[str, Any]:
    return {**_site_paths()}


SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "chekt_test_...",
    "description": "A dealer API key (any key /_sandbox/credentials lists), which reaches its "
    "dealer's sites; the dealer API takes nothing else.",
}
