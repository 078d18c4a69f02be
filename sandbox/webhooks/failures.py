"""Each subscription's failure run: when its unbroken run of failed attempts began, which
decides when 24 h of failure disables it.

Kept in the ``webhooks`` table and mirrored here, so an attempt costs no read and a write
happens only when a run starts or ends (a write per attempt would be a commit per attempt).
Any other write to ``webhooks`` (re-enabling resets the run) forgets the mirror.
"""

from __future__ import annotations

from sandbox.world import World


class FailureRuns:
    def __init__(self, world: World) -> None:
        self.world = world
        self._since: dict[str, float | None] = {}  # None: not failing
        world.store.watch(("webhooks",), self._since.clear)

    def _read(self, webhook_id: str) -> float | None:
        if webhook_id in self._since:
            return self._since[webhook_id]
        value = self.world.store.scalar(
            "SELECT failing_since FROM webhooks WHERE webhook_id = ?", (webhook_id,)
        )
        return None if value is None else float(value)

    def end(self, webhook_id: str) -> None:
        """A delivered attempt: the run, if any, is over."""
        if self._read(webhook_id) is not None:
            self.world.store.execute(
                "UPDATE webhooks SET failing_since = NULL WHERE webhook_id = ?", (webhook_id,)
            )
        self._since[webhook_id] = None  # after the write, which clears the mirror

    def start(self, webhook_id: str, at: float) -> float:
        """A failed attempt scheduled ``at``: when the run it belongs to began."""
        since = self._read(webhook_id)
        if since is None:
            self.world.store.execute(
                "UPDATE webhooks SET failing_since = ? WHERE webhook_id = ?", (at, webhook_id)
            )
            since = at
        self._since[webhook_id] = since
        return since

    def disable(self, webhook_id: str) -> None:
        self.world.store.execute(
            "UPDATE webhooks SET status = 'disabled' WHERE webhook_id = ?", (webhook_id,)
        )
