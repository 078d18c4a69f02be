"""``run(settings)``: serve the app with uvicorn (uvloop + httptools, no access log — the
journal replaces it) on a socket bound before the app starts, so port 0 works and the real
port is known before the first request."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from sandbox.app import create_app
from sandbox.settings import Settings
from sandbox.tls import DEFAULT_HOSTS, TlsFiles, ensure_certificates


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def base_url(settings: Settings, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"{'https' if settings.tls else 'http'}://{host}:{port}"


def tls_files(settings: Settings) -> TlsFiles:
    """The local CA and server certificate, made once under the state directory."""
    hosts = dict.fromkeys((*DEFAULT_HOSTS, settings.host))
    return ensure_certificates(Path(settings.state_dir) / "tls", hosts=tuple(hosts))


def make_server(app: Starlette, tls: TlsFiles | None = None) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=10,
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
    )
    return uvicorn.Server(config)


def run(
    settings: Settings,
    *,
    on_ready: Callable[[Starlette, str], None] | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve until interrupted; Ctrl-C and SIGTERM stop cleanly and return normally."""
    sock = sock or bind(settings.host, settings.port)
    try:
        app = create_app(settings.with_port(sock.getsockname()[1]))
    except BaseException:
        sock.close()
        raise
    app.state.tls = tls_files(settings) if settings.tls else None
    server = make_server(app, app.state.tls)

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started and on_ready is not None:
            on_ready(app, base_url(settings, sock))
        await task

    try:
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            runner.run(serve())
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the signal it handled once it has shut down
    finally:
        sock.close()
        app.state.services.world.store.close()
