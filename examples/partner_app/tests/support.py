"""Test support for the example: its key pair, webhook secret and a handle on the service."""

from __future__ import annotations

from dataclasses import dataclass

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
