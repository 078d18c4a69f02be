"""Test support for the example: the partner service on a real port and its key pair."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from partner_app.app import PartnerState, Switches
from starlette.applications import Starlette

PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SECRET = "whsec_example_partner_0123456789"


@dataclass
class Partner:
    url: str
    app: Starlette
    subscription: dict[str, str]

    @property
    def state(self) -> PartnerState:
        state: PartnerState = self.app.state.partner
        return state

    @property
    def switches(self) -> Switches:
        switches: Switches = self.app.state.switches
        return switches


def serve(app: Starlette) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
