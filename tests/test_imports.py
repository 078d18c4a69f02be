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


# what a ``serve`` that nobody has called yet must not have loaded: each costs megabytes of
# RSS and loads with its first use (a token, a page, a settings file, a scenario, a frame)
NOT_AT_START = (
    "cryptography",
    "jwt",
    "jinja2",
    "yaml",
    "httpx",
    "rich",
    "hypothesis",
    "jsonschema",
    "PIL",
    "av",
    "websockets",
    "aiohttp",  # the webhook client: with the first delivery
)
SERVE = """
import os, signal, sys
import sandbox.cli  # everything the ``chekt-sandbox`` command imports
from sandbox.server import run
from sandbox.settings import Settings

def ready(app, url):
    print(" ".join(sys.modules), flush=True)
    os.kill(os.getpid(), signal.SIGINT)  # serve stops on Ctrl-C

run(Settings(port=0, db=sys.argv[1], bridge=False, state_dir=sys.argv[2]), on_ready=ready)
"""


def served_modules(db: str, state_dir: str) -> set[str]:
    """Every module a real ``serve`` has loaded once it listens."""
    out = subprocess.run(
        [sys.executable, "-c", SERVE, db, state_dir],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return set(out.split())


def test_a_plain_serve_starts_without_the_heavy_packages(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sandbox.app import create_app
    from sandbox.settings import Settings

    db = str(tmp_path / "sandbox.db")
    create_app(Settings(db=db)).state.services.close()  # a store whose world is drawn
    loaded = {name.split(".")[0] for name in served_modules(db, str(tmp_path))}
    heavy = {*NOT_AT_START, "faker"}  # Faker only draws a world the store does not hold
    assert loaded.isdisjoint(heavy), sorted(loaded & heavy)


def test_loading_the_plugin_imports_no_part_of_the_sandbox_but_its_names() -> None:
    script = "import sys, sandbox, sandbox.pytest_plugin\nprint(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    ours = {name for name in out.split() if name.split(".")[0] == "sandbox"}
    assert ours == {"sandbox", "sandbox._version", "sandbox.pytest_plugin"}, sorted(ours)
