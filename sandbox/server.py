"""``run(settings)``: serve the app with uvicorn (uvloop + httptools, no access log — the
journal replaces it) on a socket bound before the app starts, so port 0 works and the real
port is known before the first request."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gc
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from sandbox.app import bridge_app, create_app
from sandbox.logs import safe_logger
from sandbox.protocol import deadline_protocol
from sandbox.settings import DEFAULT_BRIDGE_PORT, Settings, SettingsError

if TYPE_CHECKING:
    from sandbox.tls import TlsFiles


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


def bind_bridge(settings: Settings) -> socket.socket | None:
    """The socket of the bridges' local API (None when ``bridge`` is off), on the main
    listener's host: loopback unless that is bound wider (which needs an admin token). When
    the default port is taken (another sandbox serves there) a free port is used instead;
    the banner and ``/_sandbox/credentials`` tell which."""
    if not settings.bridge:
        return None
    try:
        return bind(settings.host, settings.bridge_port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and settings.bridge_port == DEFAULT_BRIDGE_PORT:
            return bind(settings.host, 0)
        where = f"{settings.host}:{settings.bridge_port}"
        raise SettingsError(
            f"cannot serve the bridges' local API on {where}: {exc.strerror or exc}; pick "
            "another --bridge-port (0 picks a free one) or turn it off with --no-bridge"
        ) from exc


def with_bridge(settings: Settings, sock: socket.socket | None) -> Settings:
    """``settings`` with the bridges' port as bound (it is one of the sandbox's own)."""
    if sock is None:
        return settings
    return dataclasses.replace(settings, bridge_port=sock.getsockname()[1])


def listener_url(host: str, sock: socket.socket, scheme: str = "http") -> str:
    name = f"[{host}]" if ":" in host else host
    return f"{scheme}://{name}:{sock.getsockname()[1]}"


def tls_files(settings: Settings) -> TlsFiles:
    """The local CA and server certificate, made once under the state directory (cryptography
    loads only for https)."""
    from sandbox.tls import DEFAULT_HOSTS, ensure_certificates

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
        ws="none",  # no WebSocket routes: the websockets package never loads
        access_log=False,
        log_level="warning",
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
    )
    return _Server(config)


class _Server(uvicorn.Server):
    """uvicorn, which first ends the app's open event streams when it stops: it waits for
    every response to finish, and a stream never finishes by itself. ``signals`` False
    leaves Ctrl-C to the caller (``run`` stops both its listeners on it)."""

    signals = True

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self.signals:
            yield
            return
        with super().capture_signals():
            yield

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
        self.url = listener_url(host, self.sock, "https" if tls else "http")
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
    """Serve until interrupted, the API and (unless ``bridge`` is off) the bridges' local API
    on a listener of its own; Ctrl-C and SIGTERM stop both cleanly and return normally."""
    sock = sock or bind(settings.host, settings.port)
    settings = settings.with_port(sock.getsockname()[1])
    listeners = [sock]
    try:
        bridge_sock = bind_bridge(settings)
        listeners += [bridge_sock] if bridge_sock is not None else []
        wanted = settings.bridge_port
        settings = with_bridge(settings, bridge_sock)
        app = create_app(settings, draw_apart=True)
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    app.state.tls = tls_files(settings) if settings.tls else None
    servers = [(make_server(app, app.state.tls, settings), sock)]
    if bridge_sock is not None:
        app.state.bridge_url = listener_url(settings.host, bridge_sock)
        app.state.bridge_wanted = wanted  # the banner tells when it was taken
        servers.append((make_server(bridge_app(app), None, settings), bridge_sock))

    async def serve() -> None:
        def stop() -> None:
            for server, _ in servers:  # a second Ctrl-C stops without waiting
                server.force_exit = server.should_exit
                server.should_exit = True

        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(number, stop)
        for server, _ in servers:
            assert isinstance(server, _Server)
            server.signals = False
        tasks = [asyncio.create_task(server.serve(sockets=[s])) for server, s in servers]
        try:
            while not all(server.started for server, _ in servers):
                if any(task.done() for task in tasks):
                    break
                await asyncio.sleep(0.01)
            else:
                # what the server holds by now lives as long as it does: the collector's
                # full passes need not walk it again (one cost ~60 ms, about one per few
                # thousand webhook deliveries)
                gc.freeze()
                if on_ready is not None:
                    on_ready(app, settings.origin)
            await asyncio.gather(*tasks)
        finally:
            stop()
            await asyncio.gather(*tasks, return_exceptions=True)

    try:
        with asyncio.Runner(loop_factory=servers[0][0].config.get_loop_factory()) as runner:
            runner.run(serve())
    except KeyboardInterrupt:
        pass
    finally:
        for listener in listeners:
            listener.close()
        app.state.services.close()
