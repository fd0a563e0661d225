"""Claims against many queued label sets (issue 14, item 8).

20,000 label sets are queued ("a,zz00000" ...), none of which the claiming
workers can serve. Then:

- claims that each offer a label key never seen before ("a,b,fresh-N"):
  time per claim (p50, max) and Redis commands per claim (INFO
  commandstats, the script's own commands included; the median, since a
  server sharing the Redis, as in `make bench`, adds its reaper's);
- a legitimate worker's claims (labels "c", one job queued for it each
  time) while four loops of such fresh-key claims run beside them.

Run on its own against any redis-server: `python -m bench.labelsets_bench
redis://127.0.0.1:6379/0` (it uses its own namespace and deletes nothing
else); `make bench` runs it on its own throwaway Redis.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid

from redis.asyncio import Redis

from server.models import JobSpec, WorkflowSpec
from server.store import Store

LABEL_SETS = 20_000
PER_WORKFLOW = 1_000
FRESH_CLAIMS = 200
LEGIT_CLAIMS = 100
LOOPS = 4


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _job(i: int, labels: list[str]) -> JobSpec:
    return JobSpec(id=f"j{i}", name=f"j{i}", command="true", labels=labels)


async def _commands(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_evalsha", "cmdstat_eval",
                                                                     "cmdstat_fcall", "cmdstat_function"))


async def queue_label_sets(store: Store, n: int) -> None:
    for start in range(0, n, PER_WORKFLOW):
        jobs = [_job(i, ["a", f"zz{i:05d}"]) for i in range(start, min(n, start + PER_WORKFLOW))]
        await store.create_workflow(WorkflowSpec(name="sets", jobs=jobs), f"sets-{start}", run=True)


async def fresh_claim(store: Store) -> float:
    t0 = time.perf_counter()
    got = await store.claim("fresh", ["a", "b", f"fresh-{uuid.uuid4().hex[:8]}"], 30, str(uuid.uuid4()))
    assert got is None
    return (time.perf_counter() - t0) * 1000


async def main(redis_url: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    store = Store(redis, namespace=f"lsbench-{uuid.uuid4().hex[:8]}")
    try:
        await queue_label_sets(store, LABEL_SETS)
        times, commands = [], []
        for _ in range(FRESH_CLAIMS):
            before = await _commands(redis)
            times.append(await fresh_claim(store))
            commands.append(await _commands(redis) - before)
        print(f"  claim offering a new label key, {LABEL_SETS:,} label sets queued it cannot serve"
              f" ({FRESH_CLAIMS} claims): p50 {pct(times, 50):.2f} ms, max {max(times):.2f} ms,"
              f" Redis commands per claim: median {statistics.median(commands):.0f}")

        stop = asyncio.Event()

        async def fresh_loop() -> int:
            n = 0
            while not stop.is_set():
                await fresh_claim(store)
                n += 1
            return n

        loops = [asyncio.create_task(fresh_loop()) for _ in range(LOOPS)]
        legit = []
        try:
            for i in range(LEGIT_CLAIMS):
                await store.create_workflow(WorkflowSpec(name="legit", jobs=[_job(0, ["c"])]), f"legit-{i}",
                                            run=True)
                t0 = time.perf_counter()
                got = await store.claim("legit", ["c"], 30, str(uuid.uuid4()))
                legit.append((time.perf_counter() - t0) * 1000)
                assert got is not None and got.job.required_labels == ["c"]
                await store.complete(got.lease.lease_id, {})
        finally:
            stop.set()
            fresh = sum(await asyncio.gather(*loops))
        print(f"  a legitimate claim beside {LOOPS} loops of new-key claims ({LEGIT_CLAIMS} claims,"
              f" {fresh:,} new-key claims meanwhile): p50 {pct(legit, 50):.2f} ms, p99 {pct(legit, 99):.2f} ms")
    finally:
        keys = [k async for k in redis.scan_iter(match=store.prefix + "*", count=1000)]
        for i in range(0, len(keys), 1000):
            await redis.delete(*keys[i:i + 1000])
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
