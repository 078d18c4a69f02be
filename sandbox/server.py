"""``run(settings)``: serve the app with uvicorn (uvloop + httptools, no access log — the
journal replaces it) on a socket bound before the app starts, so port 0 works and the real
port is known before the first request."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from sandbox.app import create_app
from sandbox.logs import safe_logger
from sandbox.protocol import deadline_protocol
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


def tls_files(settings: Settings) -> TlsFiles:
    """The local CA and server certificate, made once under the state directory."""
    hosts = dict.fromkeys((*DEFAULT_HOSTS, settings.host))
    return ensure_certificates(Path(settings.state_dir) / "tls", hosts=tuple(hosts))


def make_server(
    app: ASGIApp,
    tls: TlsFiles | None = None,
    settings: Settings | None = None,
) -> uvicorn.Server:
    """uvicorn with the sandbox's connection deadlines (see ``sandbox.protocol``) and its
    log records escaped (``sandbox.logs``)."""
    limits = settings or Settings()  # the connection deadlines; defaults for other apps
    for name in ("uvicorn.error", "asyncio"):
        safe_logger(name)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=deadline_protocol(limits.request_timeout, limits.idle_timeout, limits.max_headers),
        lifespan="on",
        access_log=False,
        log_level="warning",
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
    )
    return _Server(config)


class _Server(uvicorn.Server):
    """uvicorn, which first ends the app's open event streams when it stops: it waits for
    every response to finish, and a stream never finishes by itself."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        bell = getattr(getattr(self.config.app, "state", None), "bell", None)
        if bell is not None:
            bell.close()
        await super().shutdown(sockets)


class ThreadedServer:
    """An ASGI app on a free port in a background thread, stopped cleanly: the sandbox behind
    ``Sandbox``, and in tests any other app, such as a partner's webhook receiver.

        with ThreadedServer(receiver_app) as url:
            ...
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        sock: socket.socket | None = None,
        tls: TlsFiles | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.sock = sock or bind(host, 0)
        self.server = make_server(app, tls, settings)
        port = self.sock.getsockname()[1]
        name = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if tls else 'http'}://{name}:{port}"
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> str:
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.005)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(
    settings: Settings,
    *,
    on_ready: Callable[[Starlette, str], None] | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve until interrupted; Ctrl-C and SIGTERM stop cleanly and return normally."""
    sock = sock or bind(settings.host, settings.port)
    settings = settings.with_port(sock.getsockname()[1])
    try:
        app = create_app(settings)
    except BaseException:
        sock.close()
        raise
    app.state.tls = tls_files(settings) if settings.tls else None
    server = make_server(app, app.state.tls, settings)

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started and on_ready is not None:
            on_ready(app, settings.origin)
        await task

    try:
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            runner.run(serve())
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the signal it handled once it has shut down
    finally:
        sock.close()
        app.state.services.close()
