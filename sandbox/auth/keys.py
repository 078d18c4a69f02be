"""API key format: ``chekt_test_`` + 26 base62 characters (≈154 random bits) + a 6-character
CRC-32 checksum, so a mistyped key is refused before any lookup."""

from __future__ import annotations

import secrets
import string
import zlib

TEST_PREFIX = "chekt_test_"
LIVE_PREFIX = "chekt_live_"
_ALPHABET = string.digits + string.ascii_letters
_BODY = 26
_CHECK = 6


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK)


def new_api_key() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY))
    return f"{TEST_PREFIX}{body}{_checksum(body)}"


def is_well_formed(key: str) -> bool:
    """True when ``key`` has the test prefix, the right length, the alphabet and checksum."""
    if not key.startswith(TEST_PREFIX) or len(key) != len(TEST_PREFIX) + _BODY + _CHECK:
        return False
    rest = key[len(TEST_PREFIX) :]
    if any(c not in _ALPHABET for c in rest):
        return False
    body, check = rest[:_BODY], rest[_BODY:]
    return secrets.compare_digest(_checksum(body), check)
