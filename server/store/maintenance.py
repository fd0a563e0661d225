"""The reaper's pass: expired leases, due backoffs, retention."""

from __future__ import annotations

from .base import StoreBase


class MaintenanceMixin(StoreBase):
    async def reap(self, limit: int = 500, purge_limit: int = 50) -> tuple[int, int, int]:
        """(leases expired, delayed jobs promoted, runs purged) in one pass."""
        expired, promoted, purged = await self._call("reap", limit, purge_limit, self.retention_secs * 1000)
        return int(expired), int(promoted), int(purged)
