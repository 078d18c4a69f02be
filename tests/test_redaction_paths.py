"""The journal's quick ways through a body must hide exactly what the full walk hides: the
shape test tried only where a shape can start, the whole-text search standing for a search
of every string, and the memo of bodies found clean."""

from __future__ import annotations

import json
import random
from typing import Any

from sandbox.redaction import SHAPE, KnownClean, Scrub, _shaped, may_hold_secret

PIECES = (
    *("eyJ", "eyJhb", "chekt_test_", "chekt_live_", "chekt_", "whsec_", "sandbox_", "rt_"),
    *(".", "..", "-", "_", "a", "Z9", "é", "ß", "%", "%25", "%5F", "=", " ", "/", "?", "&"),
    *("0123456789abcdef", "access_token=", "x" * 20, '"', "\\\\"),
)
NAMES = ("id", "url", "note", "code", "grant_type", "password", "api-key", "token_type", "x")


def text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 12)))


def link(rng: random.Random, name: str | None = None, odd: float = 0.5) -> str:
    """A media link with a base64-like token; ``odd``: how often a part of the token may
    make a shape (or the token has another form)."""

    def run(count: int) -> list[str]:
        pieces = [rng.choice(("aB", "x_", "-9", "Zz", "Qw", "eyJ")) for _ in range(count)]
        if rng.random() < odd:
            pieces[rng.randrange(count)] = rng.choice(("rt_", "chekt_live_q", "whsec_", "_token"))
        return pieces

    dot = rng.choice(("", "..", ".Zz.")) if rng.random() < odd / 2 else "."
    name = text(rng) if name is None else name
    token = "".join(run(8)) + dot + "".join(run(12))
    return f"http://h/_sandbox/media/{name}.jpg?access_token={token}"


def document(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.1:
        return link(rng)
    if depth < 4 and roll < 0.3:
        names = (*NAMES, link(rng))
        return {
            rng.choice(names) + rng.choice(("", "_2")): document(rng, depth + 1)
            for _ in range(rng.randrange(0, 4))
        }
    if depth < 4 and roll < 0.45:
        return [document(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    if roll < 0.55:
        return rng.choice((None, 1, 2.5, True, "", [], {}))
    return text(rng)


def reference(raw: bytes) -> tuple[bytes, list[str]]:
    """The full walk, as the journal did it before any quick way."""
    clean = Scrub(revealable=lambda value: "test" in value)
    if not may_hold_secret(raw):
        return raw, []
    hidden, changed = clean.json(json.loads(raw))
    return (json.dumps(hidden, ensure_ascii=False).encode() if changed else raw), clean.vault


def test_the_shape_test_agrees_with_a_search() -> None:
    rng = random.Random(1)
    for _ in range(20_000):
        sample = text(rng)
        assert _shaped(sample) == (SHAPE.search(sample) is not None), sample


def test_json_bodies_are_scrubbed_as_the_full_walk_scrubs_them() -> None:
    rng = random.Random(2)
    known = KnownClean(entries=8)
    for _ in range(5_000):
        value = document(rng)
        raw = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode()
        want = reference(raw)
        for memo in (None, known, known):  # the second time through the memo may answer
            clean = Scrub(revealable=lambda value: "test" in value, known=memo)
            assert (clean.body(raw, "application/json"), clean.vault) == want, raw


def test_a_list_of_links_is_searched_once_but_each_token_every_time() -> None:
    rng = random.Random(3)
    known = KnownClean()
    for _ in range(3_000):
        # the same list, its links' tokens new each time (as an expiry moves them)
        items = [
            {"id": n, "url": link(rng, "a", 0.1), "clip": link(rng, "b", 0.1)} for n in range(3)
        ]
        raw = json.dumps(items).encode()
        clean = Scrub(revealable=lambda value: "test" in value, known=known)
        assert (clean.body(raw, "application/json"), clean.vault) == reference(raw), raw


def test_a_token_ending_a_name_is_no_link() -> None:
    known = KnownClean()
    address = "http://h/_sandbox/media/a.jpg?access_token="
    for token in ("eyJaB.QwZz", "eyJaB.Qw_token"):  # the second makes a secret name
        raw = json.dumps({address + token: "v", "id": 1}).encode()
        clean = Scrub(revealable=lambda value: "test" in value, known=known)
        assert (clean.body(raw, "application/json"), clean.vault) == reference(raw)


def test_only_clean_bodies_are_remembered() -> None:
    known = KnownClean()
    body = json.dumps({"url": "https://x/?access_token=eyJhbGci.e30"}).encode()
    assert Scrub(known=known).body(body, "application/json") == body
    assert known.holds("application/json", body) and not known.holds("text/plain", body)
    secret = json.dumps({"note": "chekt_test_abcdef", "id": 1}).encode()
    assert Scrub(known=known).body(secret, "application/json") != secret
    assert not known.holds("application/json", secret)
