"""chekt-sandbox: a local, offline CHeKT for partner integration tests.

The public names load on first use (a module ``__getattr__``): ``import sandbox`` imports no
web framework, server or data generator, so the pytest plugin, which every test run of a
project that installs the package loads, costs nothing until a fixture is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sandbox._version import __version__

__all__ = [
    "ExpectationFailed",
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

_HOMES = {
    "ExpectationFailed": "sandbox.errors",
    "Sandbox": "sandbox.client",
    "SandboxError": "sandbox.errors",
    "SandboxServerError": "sandbox.errors",
    "Settings": "sandbox.settings",
    "SettingsError": "sandbox.settings",
    "SystemClock": "sandbox.clock",
    "VirtualClock": "sandbox.clock",
    "create_app": "sandbox.app",
    "play": "sandbox.scenario",
}

if TYPE_CHECKING:  # the checkers see plain imports (and no __getattr__ hiding a typo)
    from sandbox.app import create_app
    from sandbox.client import Sandbox
    from sandbox.clock import SystemClock, VirtualClock
    from sandbox.errors import ExpectationFailed, SandboxError, SandboxServerError
    from sandbox.scenario import play
    from sandbox.settings import Settings, SettingsError
else:

    def __getattr__(name: str) -> Any:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value  # once loaded, a plain module attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
