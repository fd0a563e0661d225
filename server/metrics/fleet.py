"""What a scrape reads from Redis: the fleet's flushed counters and
histograms, every live process's gauges, and the shared state (queues,
jobs, runs, workers, dead letters) from the indexes the dashboard reads,
through the store's own functions. Bounded: MAX_QUEUES label sets,
MAX_WORKERS workers, MAX_SCAN leases and delayed jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..models import QueuesPage, WorkerOut
from ..store.queues import MAX_QUEUES, live_workers

if TYPE_CHECKING:
    from ..store import Store

# Workers read at a scrape (most recently seen first), as a prune looks at.
MAX_WORKERS = 10_000
_WORKER_PAGE = 1000
# Leases and delayed jobs whose label set a scrape looks up.
MAX_SCAN = 10_000


@dataclass
class Fleet:
    now_ms: int
    counts: dict[str, str]  # m:n: counters and histogram counts
    sums: dict[str, str]  # m:f: histogram sums
    processes: dict[str, str]  # m:p: process id -> "<flushed ms> <sse streams open>"
    queues: QueuesPage
    workers: list[WorkerOut]
    running: dict[str, int] = field(default_factory=dict)  # label set -> jobs under a lease
    delayed: dict[str, int] = field(default_factory=dict)  # label set -> jobs in backoff
    runs: dict[str, int] = field(default_factory=dict)  # status -> runs
    dead_letters: int = 0


async def read(store: "Store") -> Fleet:
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.time()
        for name in ("m:n", "m:f", "m:p"):
            pipe.hgetall(store.key(name))
        for index in ("runs", "finished", "delayedruns", "dead"):
            pipe.zcard(store.key(index))
        (now_s, now_us), counts, sums, processes, runs, finished, delayed_runs, dead = await pipe.execute()
    workers = await _workers(store)
    queues = await store.list_queues(live_workers(workers))
    by_lk = await store.scripts.call("metrics_jobs", MAX_SCAN)
    rows = sorted(((by_lk[i], int(by_lk[i + 1]), int(by_lk[i + 2])) for i in range(2, len(by_lk) - 2, 3)),
                  key=lambda row: -(row[1] + row[2]))[:MAX_QUEUES]  # the fullest: label sets are jobs' choice
    running = {lk: n for lk, n, _ in rows}
    delayed = {lk: n for lk, _, n in rows}
    # Runs not finished are in `runs` and not yet in `finished` (which holds
    # every finished run until retention purges it from both).
    active = max(int(runs) - int(finished) - int(delayed_runs), 0)
    return Fleet(now_ms=now_s * 1000 + now_us // 1000, counts=counts, sums=sums, processes=processes,
                 queues=queues, workers=workers, running=running, delayed=delayed,
                 runs={"delayed": int(delayed_runs), "active": active, "finished": int(finished)},
                 dead_letters=int(dead))


async def _workers(store: "Store") -> list[WorkerOut]:
    out: list[WorkerOut] = []
    for offset in range(0, MAX_WORKERS, _WORKER_PAGE):
        page = await store.list_workers(_WORKER_PAGE, offset)
        out += page
        if len(page) < _WORKER_PAGE:
            break
    return out
