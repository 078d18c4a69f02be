"""Webhook signatures: known-answer vectors (computed with ``openssl dgst -sha256 -hmac``)
and the receiver-side verifier's refusals."""

from __future__ import annotations

import pytest

from sandbox.webhooks import InvalidSignature, sign, verify_signature

SECRET = "whsec_known_answer"
BODY = b'{"id":"evt_1","type":"alarm.created"}'
STAMP = 1_700_000_000
# printf '%s' '1700000000.<body>' | openssl dgst -sha256 -hmac whsec_known_answer
TIMESTAMPED_HEX = "979921b61ef17fbf2f5e3ce66cfbfa3ccbe7b233c79403b0b20acdcef48667ba"
TIMESTAMPED_B64 = "l5khth7xf78vXjzmbPv6PMvnsjPHlAOwsgrNzvSGZ7o="
BODY_ONLY_HEX = "0f686e50c3a8766a981cbbccd343f7c4e30ac2f8e604705e0a2d73ff445d8b03"


def test_known_answer_vectors() -> None:
    assert sign(SECRET, BODY, STAMP) == {
        "X-CHeKT-Signature": TIMESTAMPED_HEX,
        "X-CHeKT-Timestamp": "1700000000",
    }
    assert sign(SECRET, BODY, STAMP, "timestamped-sha256")["X-CHeKT-Signature"] == (
        "sha256=" + TIMESTAMPED_HEX
    )
    assert sign(SECRET, BODY, STAMP, "timestamped-base64")["X-CHeKT-Signature"] == TIMESTAMPED_B64
    assert sign(SECRET, BODY, STAMP, "body-hex") == {"X-CHeKT-Signature": BODY_ONLY_HEX}
    assert sign(SECRET, BODY, STAMP, "legacy") == {"x-webhook-signature": "sha256=" + BODY_ONLY_HEX}


HEADERS = {"X-CHeKT-Signature": TIMESTAMPED_HEX, "X-CHeKT-Timestamp": str(STAMP)}


def test_verifier_accepts_the_real_thing_in_any_header_case() -> None:
    verify_signature(SECRET, HEADERS, BODY, now=STAMP)
    lower = {k.lower(): v for k, v in HEADERS.items()}
    verify_signature(SECRET, lower, BODY, now=STAMP + 300)
    verify_signature(SECRET, lower, BODY, now=STAMP - 300)


@pytest.mark.parametrize(
    ("secret", "headers", "body", "now", "reason"),
    [
        (SECRET, HEADERS, BODY.replace(b"evt_1", b"evt_2"), STAMP, "mismatch"),
        (SECRET, {**HEADERS, "X-CHeKT-Timestamp": str(STAMP + 1)}, BODY, STAMP, "mismatch"),
        (SECRET, {"X-CHeKT-Timestamp": str(STAMP)}, BODY, STAMP, "missing"),
        (SECRET, {"X-CHeKT-Signature": TIMESTAMPED_HEX}, BODY, STAMP, "missing"),
        (SECRET, {**HEADERS, "X-CHeKT-Timestamp": "yesterday"}, BODY, STAMP, "unix seconds"),
        (SECRET, {**HEADERS, "X-CHeKT-Signature": "zz" * 32}, BODY, STAMP, "mismatch"),
        ("whsec_another", HEADERS, BODY, STAMP, "mismatch"),
        (SECRET, HEADERS, BODY, STAMP + 301, "300 s"),
        (SECRET, HEADERS, BODY, STAMP - 301, "300 s"),
    ],
)
def test_verifier_refuses(
    secret: str, headers: dict[str, str], body: bytes, now: float, reason: str
) -> None:
    with pytest.raises(InvalidSignature, match=reason):
        verify_signature(secret, headers, body, now=now)


def test_legacy_and_body_only_variants() -> None:
    verify_signature(
        SECRET, {"x-webhook-signature": "sha256=" + BODY_ONLY_HEX}, BODY, variant="legacy"
    )
    verify_signature(SECRET, {"X-CHeKT-Signature": BODY_ONLY_HEX}, BODY, variant="body-hex")
    with pytest.raises(InvalidSignature):
        verify_signature(
            SECRET,
            {"x-webhook-signature": "sha256=" + BODY_ONLY_HEX},
            BODY + b" ",
            variant="legacy",
        )


def test_readme_known_answer_vector_is_true() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    match = re.search(
        r"secret `(\S+)`, timestamp `(\d+)`, body\s+`(.+?)` → signature\s+`([0-9a-f]{64})`", text
    )
    assert match, "the README lost its known-answer vector"
    secret, stamp, body, signature = match.groups()
    assert sign(secret, body.encode(), int(stamp))["X-CHeKT-Signature"] == signature
