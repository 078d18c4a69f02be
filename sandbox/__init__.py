"""chekt-sandbox: a local, offline CHeKT for partner integration tests."""

from sandbox._version import __version__
from sandbox.app import create_app
from sandbox.client import Sandbox, SandboxError, SandboxServerError
from sandbox.clock import SystemClock, VirtualClock
from sandbox.scenario import play
from sandbox.settings import Settings, SettingsError

__all__ = [
    "Sandbox",
    "SandboxError",
    "SandboxServerError",
    "Settings",
    "SettingsError",
    "SystemClock",
    "VirtualClock",
    "__version__",
    "create_app",
    "play",
]
