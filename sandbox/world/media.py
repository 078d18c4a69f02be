"""Media a UI can show: alarm snapshots as JPEG frames and short H.264 clips, reached through
self-describing signed links.

A link carries its own claims (what to render: the camera, the site, the channel, the capture
time on the sandbox clock, the alarm) signed with an HMAC key the store keeps in ``meta``, and
an expiry on the sandbox clock; the token is the access control, so the links work for a
partner's service and a browser alike, without a credential. The same claims and seed render
the same bytes, so rendered media are cached by their claims. When alarms become rows, the
claims can be drawn from the record instead; nothing else changes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import os
import random
import secrets
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sandbox.errors import PermissionDenied, Unauthorized
from sandbox.store import Store

if TYPE_CHECKING:  # Pillow and PyAV load on the first render: importing the package stays cheap
    from PIL import Image, ImageFont

Claims = dict[str, Any]
# what a link's file extension asks for, and what each kind is served as
KINDS = {"jpg": "snapshot", "mp4": "clip"}
CONTENT_TYPES = {"snapshot": "image/jpeg", "clip": "video/mp4"}
SNAPSHOT_SIZE = (640, 360)
# whole 16x16 macroblocks: with a partial row (180 lines), x264's output varied from run to run
CLIP_SIZE = (256, 144)
CLIP_FPS = 5
CLIP_SECONDS = 3
# one thread and no lookahead threads: x264's output then depends on its input alone
X264 = {"preset": "veryfast", "crf": "30", "x264-params": "threads=1:lookahead-threads=1"}
DEFAULT_LIFETIME = 3600
_HMAC_META = "media_hmac"
_LIFETIME_KEY = "media_url_lifetime"


class LinkExpired(PermissionDenied):
    """403, as an expired pre-signed URL answers elsewhere: the media still exists, and a
    newer link (from a newer event) reaches it; this link no longer does."""

    code = "link_expired"


def configure(store: Store, seconds: int) -> None:
    """Give the store a signing key (once: links survive a restart of a file store) and the
    links' lifetime, which the catalogue reads when it signs."""
    if store.get_meta(_HMAC_META) is None:
        store.set_meta(_HMAC_META, secrets.token_hex(32))
    store.set_meta(_LIFETIME_KEY, str(seconds))


def _setting(store: Store, key: str) -> str | None:
    """A meta value, remembered within a transaction (a batch signs thousands of links)."""
    rows = store.remembered("SELECT value FROM meta WHERE key = ?", (key,), {"meta": None})
    return None if not rows else str(rows[0]["value"])


def secret(store: Store) -> bytes:
    value = _setting(store, _HMAC_META)
    if value is None:
        configure(store, int(store.get_meta(_LIFETIME_KEY) or DEFAULT_LIFETIME))
        value = store.get_meta(_HMAC_META)
    return bytes.fromhex(value or "")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, claims: Mapping[str, Any]) -> str:
    """``<claims>.<mac>``, both base64url: a compact token that reads like a JWT's body."""
    body = _b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    mac = hmac.new(secret, body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def tracking_claims(alarm_id: str, site_id: int, responder: Mapping[str, Any], at: float) -> Claims:
    """What a tracking link shows: a responder on the way to an alarm's site since ``at``."""
    return {
        "kind": "track",
        "id": alarm_id,
        "alarm_id": alarm_id,
        "site_id": site_id,
        "responder_id": responder["responder_id"],
        "responder_type": responder["responder_type"],
        "eta_seconds": responder["eta_seconds"],
        "at": round(at, 3),
    }


def lifetime(store: Store) -> float:
    return float(_setting(store, _LIFETIME_KEY) or DEFAULT_LIFETIME)


def link(
    store: Store,
    base_url: str,
    claims: Mapping[str, Any],
    extension: str,
    issued: float | None = None,
) -> str:
    """A signed URL for the claims, expiring ``media_url_lifetime`` seconds of sandbox time
    after what it shows: the capture (``at``), or a responder's arrival (``eta_seconds``
    later), or after ``issued`` when the record hands out a new link to older media;
    ``extension`` picks the route (jpg, mp4, or empty for the tracking page)."""
    ends = max(claims["at"] + claims.get("eta_seconds", 0), issued or 0.0)
    token = sign(secret(store), {**claims, "exp": round(ends + lifetime(store), 3)})
    return _address(base_url, claims, extension) + token


def _address(base_url: str, claims: Mapping[str, Any], extension: str) -> str:
    """A link up to its token."""
    name = quote(str(claims["id"]), safe="")
    path = f"media/{name}.{extension}" if extension else f"track/{name}"
    return f"{base_url}/_sandbox/{path}?access_token="


class Mint:
    """Links to one piece of media, signed for any expiry in about a microsecond (a list that
    carries links mints them on every request once the ones it holds have expired).

    A token is the base64 of the claims' JSON with ``exp`` among them, and its HMAC-SHA256
    (RFC 2104, as :func:`sign` makes it with :mod:`hmac`): the JSON before ``exp`` is encoded,
    and fed to the inner hash, once; each expiry encodes and hashes only the rest.
    ``address + token(exp)`` is exactly what :func:`link` signs for that expiry.
    """

    def __init__(self, key: bytes, base_url: str, claims: Mapping[str, Any], extension: str):
        text = json.dumps({**claims, "exp": 0}, sort_keys=True, separators=(",", ":"))
        # the one key "exp": inside strings JSON escapes every quote, so no value holds '"exp":'
        before, mark, after = text.partition('"exp":0')
        assert mark and after[:1] in (",", "}"), text
        head = (before + '"exp":').encode("ascii")
        whole = len(head) - len(head) % 3  # base64 encodes 3 bytes at a time: cut there
        self.address = _address(base_url, claims, extension)
        self._encoded = _b64_ascii(head[:whole])
        self._rest, self._after = head[whole:], after.encode("ascii")
        block = hashlib.sha256().block_size
        padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded) + self._encoded)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def token(self, exp: float) -> str:
        return self.token_bytes(float.__repr__(exp).encode("ascii")).decode("ascii")

    def token_bytes(self, exp: bytes) -> bytes:
        """The token for an expiry written as JSON writes it (``float.__repr__``)."""
        tail = _b64_ascii(self._rest + exp + self._after)
        inner = self._inner.copy()
        inner.update(tail)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return self._encoded + tail + b"." + _b64_ascii(outer.digest())


def _b64_ascii(raw: bytes) -> bytes:
    """``_b64`` as bytes, without the base64 module's layers (this runs per link)."""
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def verify(key: bytes, token: str | None, name: str, kind: str, now: float) -> Claims:
    """The claims of a token minted for this name and kind, not yet expired at ``now``."""
    if not token:
        raise Unauthorized("this link needs its access_token", code="invalid_token")
    body, _, mac = token.partition(".")
    try:
        expected = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
        genuine = hmac.compare_digest(_unb64(mac), expected)
        claims = json.loads(_unb64(body)) if genuine else None
    except (ValueError, UnicodeError):
        claims = None
    if not isinstance(claims, dict) or claims.get("kind") != kind or claims.get("id") != name:
        raise Unauthorized(
            "the access_token was not issued by this sandbox for this link",
            code="invalid_token",
            error="invalid_token",
        )
    if now >= claims["exp"]:
        raise LinkExpired(
            f"this link expired at {_iso(claims['exp'])} on the sandbox clock; "
            "links last media_url_lifetime seconds: take a fresh one from a newer event"
        )
    return claims


def claims_in(store: Store, url: str | None) -> Claims | None:
    """What a link this sandbox signed shows (its claims without the expiry), or None for
    any other URL."""
    token = (url or "").partition("access_token=")[2]
    body, _, mac = token.partition(".")
    try:
        expected = hmac.new(secret(store), body.encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(_unb64(mac), expected):
            return None
        claims = json.loads(_unb64(body))
    except (ValueError, UnicodeError):
        return None
    if not isinstance(claims, dict):
        return None
    claims.pop("exp", None)
    return claims


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scene(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A dim night street: sky-to-ground gradient, a row of buildings, a few lit windows."""
    from PIL import Image, ImageDraw, ImageOps

    width, height = size
    sky = tuple(rng.randrange(10, 40) for _ in range(3))
    ground = tuple(rng.randrange(30, 70) for _ in range(3))
    gradient = Image.linear_gradient("L").resize(size)
    image = ImageOps.colorize(gradient, black=sky, white=ground)
    draw = ImageDraw.Draw(image)
    horizon = int(height * rng.uniform(0.5, 0.65))
    x = 0
    while x < width:
        wide, tall = rng.randrange(width // 10, width // 4), rng.randrange(height // 6, horizon)
        shade = rng.randrange(18, 45)
        draw.rectangle((x, horizon - tall, x + wide, horizon), fill=(shade, shade, shade + 4))
        for _ in range(rng.randrange(0, 5)):
            wx, wy = x + rng.randrange(4, max(5, wide - 8)), horizon - rng.randrange(8, tall)
            draw.rectangle((wx, wy, wx + 5, wy + 4), fill=(150, 130, 70))
        x += wide + rng.randrange(0, width // 20)
    draw.rectangle((0, horizon, width, height), fill=ground)
    return image


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    return ImageFont.load_default(size)


def _overlay(image: Image.Image, claims: Mapping[str, Any], at: float) -> None:
    """A camera's on-screen display: camera and site top left, time top right, channel and
    alarm at the bottom, white on a dark outline so it reads over any scene."""
    from PIL import ImageDraw

    width, height = image.size
    size = max(10, height // 24)
    font, draw, pad = _font(size), ImageDraw.Draw(image), size // 2
    lines = [
        ((pad, pad), str(claims.get("camera") or "Camera"), "la"),
        ((pad, pad + size + 2), str(claims.get("site") or ""), "la"),
        ((width - pad, pad), _iso(at), "ra"),
        ((pad, height - pad), f"CH {claims.get('channel') or '001'}", "ld"),
        ((width - pad, height - pad), claims.get("label") or _alarm(claims), "rd"),
    ]
    for xy, text, anchor in lines:
        draw.text(
            xy, text, fill="white", font=font, anchor=anchor, stroke_width=2, stroke_fill="black"
        )


def _alarm(claims: Mapping[str, Any]) -> str:
    return f"ALARM {claims.get('alarm_id') or ''}".strip()


def _rng(claims: Mapping[str, Any], seed: int) -> random.Random:
    """One scene per camera (a camera always looks at the same street), per seed."""
    return random.Random(f"{seed}:{claims.get('site_id')}:{claims.get('device_id')}")


def camera_scene(claims: Mapping[str, Any], seed: int) -> Image.Image:
    """What the camera looks at, without its on-screen display (a live view draws it once)."""
    return _scene(SNAPSHOT_SIZE, _rng(claims, seed))


def frame_jpeg(scene: Image.Image, claims: Mapping[str, Any], at: float) -> bytes:
    """A JPEG frame of ``scene`` with the on-screen display at ``at`` (``scene`` is kept)."""
    image = scene.copy()
    _overlay(image, claims, at)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def snapshot_jpeg(claims: Mapping[str, Any], seed: int) -> bytes:
    """A 640x360 JPEG frame of the camera's scene with its on-screen display."""
    return frame_jpeg(camera_scene(claims, seed), claims, claims["at"])


def _walker(image: Image.Image, rng: random.Random, step: float) -> None:
    """Someone crossing the frame: the motion that raised the alarm."""
    from PIL import ImageDraw

    width, height = image.size
    x, ground = int(-20 + (width + 40) * step), int(height * rng.uniform(0.75, 0.9))
    draw = ImageDraw.Draw(image)
    draw.ellipse((x - 5, ground - 42, x + 5, ground - 32), fill=(80, 70, 60))
    draw.rectangle((x - 7, ground - 32, x + 7, ground), fill=(60, 55, 50))


def clip_mp4(claims: Mapping[str, Any], seed: int) -> bytes:
    """A 3 s, 5 fps, 320x180 H.264 (libx264, yuv420p) MP4 with the index first, which every
    browser plays; one encoder thread, so the same claims give the same bytes."""
    with tempfile.TemporaryDirectory() as folder:  # faststart rewrites the file it wrote
        path = os.path.join(folder, "clip.mp4")
        _encode(path, claims, seed)
        with open(path, "rb") as written:
            return written.read()


def _encode(path: str, claims: Mapping[str, Any], seed: int) -> None:
    import av

    with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=CLIP_FPS, options=X264)
        stream.width, stream.height = CLIP_SIZE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        frames = CLIP_FPS * CLIP_SECONDS
        for index in range(frames):
            image = _scene(CLIP_SIZE, _rng(claims, seed))
            _walker(image, _rng(claims, seed), index / (frames - 1))
            _overlay(image, claims, claims["at"] + index / CLIP_FPS)
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


RENDERERS = {"snapshot": snapshot_jpeg, "clip": clip_mp4}


class Media:
    """A store's signing key and seed, and its rendered media by the claims they were rendered
    from (least recently used out), so a link fetched again is served without rendering;
    ``renders`` counts the misses."""

    def __init__(self, store: Store, seed: int, entries: int = 256) -> None:
        self.signing_key = secret(store)
        self.seed = seed
        self.entries = entries
        self.renders = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()  # renders run in worker threads

    def verify(self, token: str | None, name: str, kind: str, now: float) -> Claims:
        return verify(self.signing_key, token, name, kind, now)

    @staticmethod
    def _key(claims: Mapping[str, Any]) -> str:
        return json.dumps({k: v for k, v in claims.items() if k != "exp"}, sort_keys=True)

    def cached(self, claims: Mapping[str, Any]) -> bytes | None:
        key = self._key(claims)
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def render(self, claims: Mapping[str, Any]) -> bytes:
        data = RENDERERS[claims["kind"]](claims, self.seed)
        with self._lock:
            self.renders += 1
            self._items[self._key(claims)] = data
            while len(self._items) > self.entries:
                self._items.popitem(last=False)
        return data
