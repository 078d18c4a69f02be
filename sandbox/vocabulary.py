"""The sandbox's words, each named once: webhook profiles, alarm resolutions, signature
variants, delivery outcomes and clock kinds. Everything that lists one of these (a settings
check, a CLI choice, the scenario schema, the OpenAPI document, the dispatcher) imports it from
here, so no two lists can drift apart. Event types live in the webhook catalogue's table
(``sandbox.world.catalog``), with their scopes and the names each format gives them."""

from __future__ import annotations

from typing import Literal, get_args

Profile = Literal["chekt-apps", "legacy-guide", "dealer-v1"]
PROFILES: tuple[Profile, ...] = get_args(Profile)

# how an alarm lifecycle ends: its `alarm.resolved` resolution (false-positive skips dispatch)
Resolution = Literal["handled", "false-positive", "escalated"]
RESOLUTIONS: tuple[Resolution, ...] = get_args(Resolution)

SignatureVariant = Literal[
    "timestamped-hex", "timestamped-sha256", "timestamped-base64", "body-hex", "legacy"
]
SIGNATURE_VARIANTS: tuple[SignatureVariant, ...] = get_args(SignatureVariant)
# `legacy` belongs to the legacy-guide profile; a sandbox-wide setting picks one of the others
SETTABLE_SIGNATURE_VARIANTS = tuple(v for v in SIGNATURE_VARIANTS if v != "legacy")

Outcome = Literal["delivered", "failed", "timeout", "blocked_destination", "disabled"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)

ClockKind = Literal["system", "virtual"]
CLOCKS: tuple[ClockKind, ...] = get_args(ClockKind)

# CHeKT's rate-limit tiers (figures in sandbox.auth.ratelimit); "off" turns limiting off
RateTier = Literal["free", "pro", "enterprise"]
RATE_TIERS: tuple[RateTier, ...] = get_args(RateTier)
RATE_LIMITS: tuple[str, ...] = (*RATE_TIERS, "off")
# how an event came into CHeKT: the Partner Event API, or a bridge's local API (the journal's
# ``surface``, the inbound log's ``source``)
InboundSource = Literal["event_api", "bridge"]
INBOUND_SOURCES: tuple[InboundSource, ...] = get_args(InboundSource)


def one_of(words: tuple[str, ...]) -> str:
    """``a, b or c``: how an error message lists the allowed words."""
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]
