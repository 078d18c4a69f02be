"""``import sandbox`` stays cheap: every test run of a project that installs the package loads
its pytest plugin, so the package imports no web framework, server or data generator until
one of its names is used."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sandbox

HEAVY = ("starlette", "uvicorn", "httpx", "aiohttp", "faker", "hypothesis", "jwt", "yaml")


def loaded_after(code: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after running ``code``."""
    script = f"import sys\n{code}\nprint(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return {name.split(".")[0] for name in out.split()}


def test_importing_the_package_and_its_plugin_loads_nothing_heavy() -> None:
    loaded = loaded_after("import sandbox, sandbox.pytest_plugin")
    assert loaded.isdisjoint(HEAVY), sorted(loaded.intersection(HEAVY))


def test_a_public_name_loads_its_module_on_first_use() -> None:
    assert "starlette" in loaded_after("from sandbox import create_app")
    assert "starlette" not in loaded_after("from sandbox import Settings, VirtualClock")
    assert set(sandbox.__all__) <= set(dir(sandbox))
    assert all(getattr(sandbox, name) is not None for name in sandbox.__all__)
    with pytest.raises(AttributeError, match="NoSuchThing"):
        sandbox.NoSuchThing  # noqa: B018
