"""The failure half of ``Sandbox``: inbound fault rules, CHeKT's rate limits and auth chaos,
each one call. A thin client of ``/_sandbox/faults``, ``/_sandbox/rate-limits``, the key and
client routes and ``/_sandbox/clock/skew``.

    sandbox.fault(path="/partner/v1/*", status=503, retry_after=2, count=3)
    sandbox.rate_limit("free")
    sandbox.expire_tokens()           # the seeded partner's tokens stop working now
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sandbox.client_calls import ControlCalls


class ChaosCalls(ControlCalls):
    """Mixed into ``Sandbox``, whose ``call`` reaches the control API."""

    # ---- inbound faults ----------------------------------------------------------------------

    def fault(self, **rule: Any) -> dict[str, Any]:
        """Add an inbound fault rule; returns it with its ``id``. Fields: ``method``, ``path``
        (a glob), ``client_id``, ``tier``, ``surface`` (partner, apps, dealer, auth) to match;
        ``latency_ms`` (ms, ``{"min", "max"}`` or ``{"median", "sigma"}``), ``status`` (with
        ``retry_after`` on 429/503), ``drop``, ``truncate``, ``empty``, ``malformed_json``,
        ``processed``; ``probability`` and ``count``."""
        return dict(self.call("POST", "/_sandbox/faults", {"inbound": [rule]})["inbound"][-1])

    def webhook_chaos(self, **knobs: Any) -> dict[str, Any]:
        """Set webhook knobs; every webhook knob in force. Besides ``duplicate_rate`` and
        ``reorder_window``: ``burst`` (the next N deliveries' first attempts skip the
        concurrency cap), ``slow_send_ms`` (bodies trickle out over that many ms),
        ``oversize`` (bytes each body is padded to), ``unknown_types`` and ``extra_fields``
        (shares of deliveries followed by an unknown event type / carrying unknown fields)."""
        answer = self.call("POST", "/_sandbox/faults", knobs)
        return {name: value for name, value in answer.items() if name != "inbound"}

    def inbound_faults(self) -> list[dict[str, Any]]:
        """The inbound rules in force, with how often each matched and fired."""
        return list(self.call("GET", "/_sandbox/faults")["inbound"])

    def remove_fault(self, fault_id: str) -> None:
        self.call("DELETE", f"/_sandbox/faults/{quote(fault_id, safe='')}")

    def clear_faults(self) -> None:
        """No faults at all: inbound rules removed, webhook knobs at 0."""
        self.call("DELETE", "/_sandbox/faults")

    # ---- rate limits ---------------------------------------------------------------------

    def rate_limit(
        self,
        tier: str | None = None,
        *,
        per_minute: int | None = None,
        burst: int | None = None,
        client_id: str | None = None,
    ) -> dict[str, Any]:
        """Turn CHeKT's rate limits to a tier (free, pro, enterprise, off) or a custom
        ceiling, for everyone or one client; the buckets start full."""
        body = {
            k: v
            for k, v in (
                ("tier", tier),
                ("per_minute", per_minute),
                ("burst", burst),
                ("client_id", client_id),
            )
            if v is not None
        }
        return dict(self.call("POST", "/_sandbox/rate-limits", body))

    def rate_limits(self) -> dict[str, Any]:
        return dict(self.call("GET", "/_sandbox/rate-limits"))

    # ---- auth chaos ----------------------------------------------------------------------

    def expire_tokens(self, client_id: str | None = None) -> int:
        """Every access token issued to the client (the seeded partner by default) until now
        expires; the cutoff (tokens with an earlier ``iat`` are dead)."""
        if client_id is None:
            clients = self.call("GET", "/_sandbox/credentials")["clients"]
            seeded = [c for c in clients if c["kind"] == "platform_partner"]
            seeded.sort(key=lambda c: c.get("origin") != "seeded")  # the seeded one first
            client_id = str(seeded[0]["client_id"])
        path = f"/_sandbox/clients/{quote(client_id, safe='')}/expire-tokens"
        return int(self.call("POST", path)["expired_before"])

    def revoke_api_key(self, key: str) -> dict[str, Any]:
        """The key stops working now."""
        return dict(self.call("POST", "/_sandbox/api-keys/revoke", {"key": key}))

    def rotate_signing_key(self) -> list[dict[str, str]]:
        """Rotate the token signing key (old tokens stay valid until they expire)."""
        return list(self.call("POST", "/_sandbox/keys/rotate")["keys"])

    def sign_with_unpublished_key(self) -> str:
        """New tokens are signed with a key the JWKS does not list yet; its kid."""
        return str(self.call("POST", "/_sandbox/keys/unpublished")["kid"])

    def publish_signing_key(self) -> list[dict[str, str]]:
        """Publish the unpublished key (it becomes the current one)."""
        return list(self.call("POST", "/_sandbox/keys/publish")["keys"])

    def skew_clock(self, seconds: float) -> dict[str, Any]:
        """The times stamped into tokens and webhook signatures run ``seconds`` off the
        sandbox clock (positive: ahead of it)."""
        return dict(self.call("POST", "/_sandbox/clock/skew", {"seconds": seconds}))
