"""The reaper's pass: expired leases, due backoffs, retention; and bringing
data kept by an older version up to this one's layout."""

from __future__ import annotations

import logging

from .base import StoreBase

log = logging.getLogger("rota.store")


class MaintenanceMixin(StoreBase):
    async def reap(self, limit: int = 500, purge_limit: int = 50) -> tuple[int, int, int]:
        """(leases expired, delayed jobs promoted, runs purged) in one pass."""
        expired, promoted, purged = await self._call("reap", limit, purge_limit, self.retention_secs * 1000)
        return int(expired), int(promoted), int(purged)

    async def upgrade(self) -> int:
        """Once per Redis, before serving (a no-op after the first): returns
        the layout the data is now in."""
        layout, indexed, workers, repacked = map(int, await self._call("upgrade"))
        if indexed or workers or repacked:
            log.info("data from an older rota brought up to layout %d: %d ready label sets indexed,"
                     " %d workers counted against their tokens, %d definitions repacked",
                     layout, indexed, workers, repacked)
        return layout
