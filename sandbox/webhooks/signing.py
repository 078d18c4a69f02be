"""Webhook signatures: HMAC-SHA256 with the subscription secret over ``"{timestamp}.{body}"``
(CHeKT's current scheme), sent as lowercase hex in ``X-CHeKT-Signature`` with the unix
timestamp in ``X-CHeKT-Timestamp``. Other schemes seen in CHeKT's guides are variants:

- ``timestamped-hex`` (default), ``timestamped-sha256`` (``sha256=<hex>``),
  ``timestamped-base64``: all sign ``"{timestamp}.{body}"``;
- ``body-hex``: signs the raw body only (no timestamp header);
- ``legacy``: ``x-webhook-signature: sha256=<hex of the raw body>`` (profile legacy-guide).

:func:`verify_signature` is the receiver's side, in constant time, with a replay window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

from sandbox.errors import SandboxError
from sandbox.vocabulary import SIGNATURE_VARIANTS

SIGNATURE = "X-CHeKT-Signature"
TIMESTAMP = "X-CHeKT-Timestamp"
LEGACY_SIGNATURE = "x-webhook-signature"


class InvalidSignature(SandboxError, ValueError):
    """The delivery's signature does not prove it came from CHeKT with this secret."""


def _mac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def sign(
    secret: str, body: bytes, timestamp: int, variant: str = "timestamped-hex"
) -> dict[str, str]:
    """The signature headers of one attempt."""
    if variant == "legacy":
        return {LEGACY_SIGNATURE: "sha256=" + _mac(secret, body).hex()}
    if variant == "body-hex":
        return {SIGNATURE: _mac(secret, body).hex()}
    digest = _mac(secret, f"{timestamp}.".encode() + body)
    if variant == "timestamped-sha256":
        value = "sha256=" + digest.hex()
    elif variant == "timestamped-base64":
        value = base64.b64encode(digest).decode()
    elif variant == "timestamped-hex":
        value = digest.hex()
    else:
        raise ValueError(
            f"unknown signature variant {variant!r}; use one of {', '.join(SIGNATURE_VARIANTS)}"
        )
    return {SIGNATURE: value, TIMESTAMP: str(timestamp)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = 300,
    *,
    now: float | None = None,
    variant: str = "timestamped-hex",
) -> None:
    """Raise :class:`InvalidSignature` unless ``body`` was signed with ``secret`` within
    ``tolerance`` seconds of ``now``. Use the raw request bytes, never re-serialized JSON."""
    if variant in ("legacy", "body-hex"):
        name = LEGACY_SIGNATURE if variant == "legacy" else SIGNATURE
        given = _header(headers, name)
        if given is None:
            raise InvalidSignature(f"missing {name} header")
        expected = sign(secret, body, 0, variant)[name]
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise InvalidSignature("signature mismatch")
        return
    given = _header(headers, SIGNATURE)
    stamp = _header(headers, TIMESTAMP)
    if given is None or stamp is None:
        raise InvalidSignature(f"missing {SIGNATURE} or {TIMESTAMP} header")
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        raise InvalidSignature(f"{TIMESTAMP} must be unix seconds")
    moment = int(stamp)
    current = time.time() if now is None else now
    if abs(current - moment) > tolerance:
        raise InvalidSignature(f"timestamp is more than {tolerance} s away from now")
    expected = sign(secret, body, moment, variant)[SIGNATURE]
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise InvalidSignature("signature mismatch")
