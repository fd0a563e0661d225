"""Identical reads in flight at the same moment share one Redis round trip.

A thousand SSE tails of one job wake on the same log append and ask for the
same entries after the same id: one XREAD serves them all, so the Redis
work per chunk does not grow with the number of tails.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Hashable


class SingleFlight:
    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future] = {}

    async def do(self, key: Hashable, read: Callable[[], Awaitable[Any]]) -> Any:
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(read())
            self._inflight[key] = future
            future.add_done_callback(lambda _: self._inflight.pop(key, None))
        # One caller giving up (its client left) must not cancel the others' read.
        return await asyncio.shield(future)
