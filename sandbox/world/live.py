"""A camera's live view, as the dealer API hands it out: a short-lived signed token per camera
(the ``mjpeg_url`` a dashboard puts into an ``<img>``, and the snapshot by MAC), and the JPEG
frames both serve.

The token is a JWT (HS256, signed with the store's media key) whose claims say which camera:
``sub`` its MAC, ``channel`` and ``group_channel`` (CONTRACT §5.2), and ``exp`` on the sandbox
clock, ``media_url_lifetime`` seconds after it was handed out. A frame is the camera's scene
(the same street its alarm snapshots show) with the time of the sandbox clock drawn on it; the
scene is drawn once per camera and a frame once per camera and second, so any number of
viewers cost one JPEG encoding a second per camera.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from sandbox.errors import PermissionDenied, Unauthorized
from sandbox.store import Row
from sandbox.world import media
from sandbox.world.context import World

if TYPE_CHECKING:
    from PIL import Image

FRAMES_PER_SECOND = 4
PURPOSE = "live_view"  # what the token is for: a media link or an access token never passes
_CAMERA = (
    "SELECT d.device_id, d.site_id, d.name, d.mac, d.zone_number, s.name AS site, s.dealer_id "
    "FROM devices d JOIN sites s USING (site_id) WHERE d.device_type = 'camera'"
)


class WrongCamera(PermissionDenied):
    """403: the token is alive, but for another camera."""

    code = "wrong_camera"


class WrongChannel(PermissionDenied):
    """403: the token is alive, but for another channel (CONTRACT §5.2)."""

    code = "wrong_channel"


def channel_of(zone_number: str | None) -> int:
    """A camera's bridge channel: its zone number (``"003"`` is channel 3)."""
    return int(zone_number) if zone_number and zone_number.isdigit() else 1


def same_mac(a: str, b: str) -> bool:
    """MACs compare without case or separators (``aa-bb-…`` is ``AA:BB:…``)."""
    strip = str.maketrans("", "", ":-.")
    return a.translate(strip).upper() == b.translate(strip).upper()


def mint(world: World, camera: Row) -> str:
    """A token for ``camera`` (a devices row), valid ``media_url_lifetime`` of sandbox time."""
    now = world.now()
    channel = channel_of(camera["zone_number"])
    claims = {
        "sub": camera["mac"] or "",
        "channel": channel,
        "group_channel": channel,  # [decide] every camera is its own channel group
        "device_id": camera["device_id"],
        "site_id": camera["site_id"],
        "purpose": PURPOSE,
        "iat": int(now),
        "exp": int(now + media.lifetime(world.store)),
    }
    import jwt  # PyJWT (and cryptography) load with the first live link, not at start

    return jwt.encode(claims, media.secret(world.store), algorithm="HS256")


def read(world: World, token: str | None) -> dict[str, Any]:
    """The claims of a live token this sandbox signed and the sandbox clock has not yet seen
    expire; 401 otherwise (the client takes a fresh ``mjpeg_url`` from the camera list)."""
    if not token:
        raise Unauthorized("this link needs its access_token", code="invalid_token")
    import jwt

    try:
        claims = jwt.decode(
            token,
            media.secret(world.store),
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_iat": False, "require": ["sub", "exp"]},
        )
    except jwt.PyJWTError:
        claims = None
    if not isinstance(claims, dict) or claims.get("purpose") != PURPOSE:
        raise Unauthorized(
            "the access_token was not issued by this sandbox for a camera's live view",
            code="invalid_token",
            error="invalid_token",
        )
    if world.now() >= float(claims["exp"]):
        raise Unauthorized(
            "the access_token expired on the sandbox clock; take a fresh mjpeg_url from "
            "GET /ext/v1/sites/{site_id}/cameras",
            code="token_expired",
            error="invalid_token",
        )
    return claims


def camera(world: World, claims: dict[str, Any]) -> Row:
    """The camera a token names, as it is now (renamed, or gone: 401, the token is dead)."""
    row = world.store.one(f"{_CAMERA} AND d.device_id = ?", (claims.get("device_id"),))
    if row is None or not same_mac(row["mac"] or "", str(claims["sub"])):
        raise Unauthorized(
            "the camera this access_token names no longer exists", code="invalid_token"
        )
    return row


def check_path(claims: dict[str, Any], mac: str, channel: str) -> None:
    """A snapshot path must name the token's camera and channel (403 otherwise)."""
    if not same_mac(mac, str(claims["sub"])):
        raise WrongCamera(f"this access_token is for camera {claims['sub']}, not {mac}")
    if not (channel.isascii() and channel.isdigit()) or int(channel) != claims.get("channel"):
        raise WrongChannel(
            f"this access_token is for channel {claims.get('channel')}, not {channel!r}"
        )


class LiveFrames:
    """Each camera's scene (least recently used out) and its newest frame, by second."""

    def __init__(self, seed: int, cameras: int = 64) -> None:
        self.seed = seed
        self.cameras = cameras
        self.encoded = 0  # frames encoded: the rest were served from the cache
        self.viewers = 0  # streams open now
        self._scenes: OrderedDict[int, Image.Image] = OrderedDict()
        self._frames: dict[int, tuple[int, bytes]] = {}
        self._lock = threading.Lock()  # frames are drawn in worker threads

    def frame(self, camera: Row, at: float) -> bytes:
        """A JPEG of ``camera`` at ``at`` (whole seconds: what its display shows)."""
        device_id, second = camera["device_id"], int(at)
        with self._lock:
            kept = self._frames.get(device_id)
            if kept is not None and kept[0] == second:
                return kept[1]
            scene = self._scenes.get(device_id)
            if scene is not None:
                self._scenes.move_to_end(device_id)
        claims = {
            "site_id": camera["site_id"],
            "device_id": device_id,
            "camera": camera["name"],
            "site": camera["site"],
            "channel": camera["zone_number"],
            "label": "LIVE",
        }
        if scene is None:
            scene = media.camera_scene(claims, self.seed)
        data = media.frame_jpeg(scene, claims, second)
        with self._lock:
            self.encoded += 1
            self._scenes[device_id] = scene
            self._scenes.move_to_end(device_id)
            while len(self._scenes) > self.cameras:
                evicted, _ = self._scenes.popitem(last=False)
                self._frames.pop(evicted, None)
            self._frames[device_id] = (second, data)
        return data
