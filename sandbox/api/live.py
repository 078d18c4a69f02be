"""A camera's live view, where the dealer API's ``mjpeg_url`` points: ``GET /api/v1/mjpeg``, a
``multipart/x-mixed-replace`` stream of JPEG frames, and ``GET /api/v1/snapshots/{mac}/
{channel}``, one frame as base64 JSON. The ``access_token`` in the query authorizes them (no
credential: an ``<img>`` sends none): 401 when it is missing, not ours or expired on the
sandbox clock, 403 when it names another camera or channel.

The stream sends a few frames a second until the client goes away, the token expires, or the
server stops (the event streams' :class:`~sandbox.api.apps_stream.Bell` closing).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from sandbox.api.apps_stream import Bell
from sandbox.api.common import reply, route, services
from sandbox.world import live

BOUNDARY = "chektframe"
STREAM_TYPE = "multipart/x-mixed-replace"


def _frames(request: Request) -> live.LiveFrames:
    found: live.LiveFrames = request.app.state.live
    return found


async def get_mjpeg(request: Request) -> Response:
    world = services(request).world
    claims = live.read(world, request.query_params.get("access_token"))
    camera = live.camera(world, claims)
    frames, bell = _frames(request), request.app.state.bell
    assert isinstance(bell, Bell)

    async def parts() -> AsyncIterator[bytes]:
        frames.viewers += 1  # on the event loop only
        try:
            while not bell.closed and world.now() < float(claims["exp"]):
                jpeg = await run_in_threadpool(frames.frame, camera, world.now())
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                yield head.encode("ascii") + b"\r\n\r\n" + jpeg + b"\r\n"
                await asyncio.sleep(1 / live.FRAMES_PER_SECOND)
            yield f"--{BOUNDARY}--\r\n".encode("ascii")
        finally:
            frames.viewers -= 1

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    media_type = f"{STREAM_TYPE}; boundary={BOUNDARY}"
    if request.method == "HEAD":  # the headers alone: no endless body for nobody to read
        return Response(media_type=media_type, headers=headers)
    return StreamingResponse(parts(), media_type=media_type, headers=headers)


async def get_snapshot(request: Request) -> Response:
    world = services(request).world
    claims = live.read(world, request.query_params.get("access_token"))
    live.check_path(claims, request.path_params["mac"], request.path_params["channel"])
    camera = live.camera(world, claims)
    jpeg = await run_in_threadpool(_frames(request).frame, camera, world.now())
    body = {"data": base64.b64encode(jpeg).decode("ascii"), "base64Encoded": True}
    return reply(body, headers={"Cache-Control": "no-store"})


routes = [
    route("/api/v1/mjpeg", GET=get_mjpeg),
    route("/api/v1/snapshots/{mac}/{channel}", GET=get_snapshot),
]
