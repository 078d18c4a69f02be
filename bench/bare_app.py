"""The baseline of ``make bench``: a bare Starlette app serving the sandbox's own sites list.

It answers ``GET /partner/v1/dealers/1001/sites`` with the JSON array the sandbox returned
(read once from the file named by ``BENCH_SITES_JSON``), serialized per request by a
``JSONResponse`` exactly as the sandbox does, and is served by uvicorn with the sandbox's
options (``sandbox/server.py``), so the only difference left is the sandbox's own work.

Usage: ``BENCH_SITES_JSON=/tmp/sites.json python bench/bare_app.py PORT``
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SITES_PATH = "/partner/v1/dealers/1001/sites"
ENV_VAR = "BENCH_SITES_JSON"


def load_sites() -> list[Any]:
    """Read the payload captured from the sandbox, so both servers send the same bytes."""
    path = os.environ.get(ENV_VAR)
    if not path:
        raise SystemExit(f"{ENV_VAR} must name a JSON file holding the sites array")
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise SystemExit(f"{path} does not hold a JSON array")
    return data


def create_app(sites: list[Any]) -> Starlette:
    """One route, no middleware, no auth: the floor the sandbox is measured against."""

    async def list_sites(request: Request) -> JSONResponse:
        return JSONResponse(sites)

    return Starlette(routes=[Route(SITES_PATH, list_sites, methods=["GET"])])


def main() -> None:
    """Serve on 127.0.0.1:PORT with the same uvicorn options as ``sandbox.server``."""
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        raise SystemExit("usage: bare_app.py PORT")
    uvicorn.run(
        create_app(load_sites()),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=10,
    )


if __name__ == "__main__":
    main()
