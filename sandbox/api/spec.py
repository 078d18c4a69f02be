"""``GET /openapi.json``: the route alone, so the document's forty-odd modules
(:mod:`sandbox.api.openapi`) load with the first request for it, not at every start."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import issuer_of, reply, route


async def openapi_json(request: Request) -> Response:
    from sandbox.api.openapi import document

    return reply(document(issuer_of(request)))


routes = [route("/openapi.json", GET=openapi_json)]
