"""The dealer API's devices of a site (``/ext/v1/sites/{site_id}/…``): cameras with their live
stream, zones, audio devices and bridges, each a bare array (CONTRACT §5.2).

A camera's ``mjpeg_url`` points at this sandbox as the request reached it (or at the pinned
issuer) and carries a token minted per request (:mod:`sandbox.world.live`).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import issuer_of, reply, route, services
from sandbox.api.dealer import PREFIX, dealer_api, own_site
from sandbox.auth.guard import Principal
from sandbox.store import Row
from sandbox.world import World, live

_DEVICES = "SELECT * FROM devices WHERE site_id = ? AND device_type = ? ORDER BY device_id"
BRIDGE_NETWORK = ipaddress.ip_network("10.20.0.0/16")  # [decide] where bridges sit on the LAN


def zone_numbers(device: Row) -> list[str]:
    """The device's zone and its additional ones (``"002,003"``), in order, once each."""
    extra = (device["additional_zone_numbers"] or "").split(",")
    return list(dict.fromkeys(z for z in (device["zone_number"], *extra) if z))


def _devices(world: World, site_id: int, kind: str) -> list[Row]:
    return world.store.all(_DEVICES, (site_id, kind))


def camera_view(world: World, camera: Row, base: str) -> dict[str, Any]:
    token = live.mint(world, camera)
    return {
        "device_id": camera["device_id"],
        "name": camera["name"] or "",
        "status": camera["status"],
        "mjpeg_url": f"{base}/api/v1/mjpeg?access_token={token}",
        "zone_numbers": zone_numbers(camera),
    }


@dealer_api
async def list_cameras(request: Request, principal: Principal) -> Response:
    site, world = own_site(request, principal), services(request).world
    base = issuer_of(request).rstrip("/")
    cameras = _devices(world, site["site_id"], "camera")
    return reply([camera_view(world, camera, base) for camera in cameras])


@dealer_api
async def list_zones(request: Request, principal: Principal) -> Response:
    """One entry per zone a camera covers: the zone, the camera that covers it (a zone is
    named after it) and every zone that camera covers."""
    site, world = own_site(request, principal), services(request).world
    zones: dict[str, dict[str, Any]] = {}
    for camera in _devices(world, site["site_id"], "camera"):
        linked = zone_numbers(camera)
        for zone in linked:
            zones.setdefault(
                zone,
                {
                    "zone_number": zone,
                    "zone_name": camera["name"] or f"Zone {zone}",
                    "device_id": camera["device_id"],
                    "zone_numbers": linked,
                },
            )
    return reply([zones[zone] for zone in sorted(zones)])


@dealer_api
async def list_audio_devices(request: Request, principal: Principal) -> Response:
    """The record holds cameras and bridges only (the Partner API creates nothing else), so
    a site has no audio device: an empty array, in the documented shape."""
    own_site(request, principal)
    return reply([])


def bridge_ip(bridge: Row) -> str:
    """A stable LAN address for a bridge (the record keeps none): its id in the network."""
    offset = 1 + bridge["device_id"] % (BRIDGE_NETWORK.num_addresses - 2)
    return str(BRIDGE_NETWORK.network_address + offset)


@dealer_api
async def list_bridges(request: Request, principal: Principal) -> Response:
    site, world = own_site(request, principal), services(request).world
    return reply(
        [
            {
                "bridge_id": bridge["device_id"],
                "name": bridge["name"] or "",
                "serial_number": bridge["serial_number"],
                "model": bridge["model"],
                "firmware_version": bridge["firmware_version"],
                "status": bridge["status"],
                "mac_address": bridge["mac"],
                "ip_address": bridge_ip(bridge),
                "channels": bridge["channels"],
            }
            for bridge in _devices(world, site["site_id"], "bridge")
        ]
    )


routes = [
    route(PREFIX + "/sites/{site_id}/cameras", GET=list_cameras),
    route(PREFIX + "/sites/{site_id}/zones", GET=list_zones),
    route(PREFIX + "/sites/{site_id}/audio-devices", GET=list_audio_devices),
    route(PREFIX + "/sites/{site_id}/bridges", GET=list_bridges),
]
