"""A process's tallies go to Redis as deltas, one script call
(metrics_flush.lua) every METRICS_FLUSH_SECS and before each scrape it
answers: every process adds to the same fleet-wide counts, which outlive
any one process. A process killed -9 loses what it counted since its
last flush; one that stops cleanly flushes and takes its gauges away.

A batch carries the process's sequence number, and the script adds a
batch once: Redis may have run a flush whose reply was lost (a reset
connection, a failover), and the client's retry or the next flush sends
that same batch again rather than counting it twice."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING, Callable, Optional

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger("rota.metrics")
# A process's gauges count while it flushed within this many intervals
# (at least STALE_MIN_MS): a process that died stops counting soon after.
STALE_INTERVALS = 5
STALE_MIN_MS = 10_000


class Flusher:
    def __init__(self, store: "Store", interval_secs: float, sse_open: Callable[[], int]):
        self.store = store
        self.interval_secs = interval_secs
        self._sse_open = sse_open
        # unique across hosts and restarts: a pid is reused, a host's name may be too
        self.process = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._stale_ms = max(STALE_MIN_MS, int(interval_secs * 1000 * STALE_INTERVALS))
        self._seq = 0
        # (sequence, integer fields, float fields) of a batch sent without an answer
        self._unacked: Optional[tuple[int, list, list]] = None

    async def flush(self, leaving: bool = False) -> None:
        """Adds what this process counted to the fleet's; `leaving`: and
        takes its gauges away (a clean stop)."""
        gauges = "" if leaving else str(self._sse_open())
        resending = self._unacked is not None
        await self._send(gauges)
        if resending:
            await self._send(gauges)  # and what was counted since

    async def _send(self, gauges: str) -> None:
        if self._unacked is None:
            self._seq += 1
            self._unacked = (self._seq, *self.store.tally.take().fields())
        seq, ints, floats = self._unacked
        # Until Redis answers, the batch may or may not have been added: it
        # stays as it is, under its number, to be sent again.
        await self.store.scripts.call("metrics_flush", self.process, seq, gauges, self._stale_ms, len(ints) // 2,
                                      *ints, *floats)
        self._unacked = None

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.interval_secs)
            except asyncio.TimeoutError:
                pass
            try:
                await self.flush(leaving=stop.is_set())
            except (RedisError, OSError) as exc:
                log.debug("flushing metrics failed (%s); they go with the next flush", exc)
