"""The one thing the ``Sandbox`` mixins (record, chaos, insights) need from it: ``call``,
which reaches the control API and raises ``ExpectationFailed`` on a refusal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ControlCalls:
    """A base for ``Sandbox``'s mixins; ``Sandbox`` provides :meth:`call`."""

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: Any = None,
    ) -> Any:
        raise NotImplementedError  # pragma: no cover - Sandbox provides it
