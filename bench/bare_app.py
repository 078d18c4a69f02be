"""The baseline of ``make bench``: a bare Starlette app serving the sandbox's own answers.

It answers ``GET`` on each path of a JSON object (read once from the file named by
``BENCH_ROUTES_JSON``: path → the JSON the sandbox returned there) with that JSON, serialized
per request by a ``JSONResponse`` exactly as the sandbox's handlers do, and is served by
uvicorn with the sandbox's options (``sandbox/server.py``), so the only difference left is
the sandbox's own work.

Usage: ``BENCH_ROUTES_JSON=/tmp/routes.json python bench/bare_app.py PORT``
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ENV_VAR = "BENCH_ROUTES_JSON"


def load_routes() -> dict[str, Any]:
    """Read the payloads captured from the sandbox, so both servers send the same bytes."""
    path = os.environ.get(ENV_VAR)
    if not path:
        raise SystemExit(f"{ENV_VAR} must name a JSON file mapping paths to payloads")
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(p.startswith("/") for p in data):
        raise SystemExit(f"{path} does not hold an object of paths")
    return data


def answer(payload: Any) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def serve(request: Request) -> JSONResponse:
        return JSONResponse(payload)

    return serve


def create_app(routes: dict[str, Any]) -> Starlette:
    """One route per path, no middleware, no auth: the floor the sandbox is measured against."""
    return Starlette(
        routes=[Route(path, answer(payload), methods=["GET"]) for path, payload in routes.items()]
    )


def main() -> None:
    """Serve on 127.0.0.1:PORT with the same uvicorn options as ``sandbox.server``."""
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        raise SystemExit("usage: bare_app.py PORT")
    uvicorn.run(
        create_app(load_routes()),
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
