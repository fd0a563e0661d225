"""The batch protocol's figures (part of `make bench`), beside the seed
protocol's on the same server: claim->complete with 8 worker loops, one
worker loop, and a 50-job chain, each with the server's and Redis's CPU
per job (from /proc: utime + stime of each process over the run).

- seed: POST /api/jobs/claim, then POST /api/jobs/{lease}/complete, per job.
- next: complete with `next`: one request per job (BullMQ's fetchNext).
- batch: POST /api/jobs/claims for up to BATCH jobs, then POST
  /api/jobs/results with their results and the next claim: one request
  per BATCH jobs.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from typing import Optional

from bench.http1 import Conn

BATCH = 32
LOOPS = 8


def cpu_secs(pid: Optional[int]) -> float:
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def fill(port: int, total: int, chain: bool = False) -> None:
    conn = await Conn("127.0.0.1", port).open()
    for left in range(total, 0, -1000):
        n = min(1000, left)
        jobs = [{"id": f"j{i}", "command": "true", "depends_on": [f"j{i - 1}"] if chain and i else []}
                for i in range(n)]
        status, body = await conn.post_json("/api/workflows?run=true", {"name": "bench", "jobs": jobs})
        assert status == 201, (status, body)
    await conn.close()


async def seed_loop(conn: Conn, worker: str) -> int:
    done = 0
    body = {"worker_id": worker, "lease_ttl_secs": 60}
    while True:
        _, claim = await conn.post_json("/api/jobs/claim", body)
        if claim is None:
            return done
        status, _ = await conn.post_json(f"/api/jobs/{claim['lease']['lease_id']}/complete", {"outputs": {}})
        assert status == 200
        done += 1


async def next_loop(conn: Conn, worker: str) -> int:
    done = 0
    _, claim = await conn.post_json("/api/jobs/claim", {"worker_id": worker, "lease_ttl_secs": 60})
    while claim is not None:
        nxt = {"worker_id": worker, "lease_ttl_secs": 60, "claim_id": uuid.uuid4().hex}
        status, answer = await conn.post_json(f"/api/jobs/{claim['lease']['lease_id']}/complete",
                                              {"outputs": {}, "next": nxt})
        assert status == 200, answer
        done += 1
        claim = answer["next"][0] if answer["next"] else None
    return done


async def batch_loop(conn: Conn, worker: str, size: int = BATCH) -> int:
    done = 0
    claim = {"worker_id": worker, "lease_ttl_secs": 60, "max_jobs": size}
    _, answer = await conn.post_json("/api/jobs/claims", claim)
    leases = answer["claims"]
    while leases:
        results = [{"lease_id": c["lease"]["lease_id"], "kind": "complete"} for c in leases]
        status, answer = await conn.post_json("/api/jobs/results", {
            "results": results, "next": {**claim, "claim_id": uuid.uuid4().hex}})
        assert status == 200 and all("outcome" in r for r in answer["results"]), answer
        done += len(leases)
        leases = answer["next"]
    return done


async def measure(port: int, loop, loops: int, total: int, server_pid: Optional[int], redis_pid: Optional[int],
                  chain: bool = False) -> dict:
    await fill(port, total, chain)
    conns = [await Conn("127.0.0.1", port).open() for _ in range(loops)]
    s0, r0 = cpu_secs(server_pid), cpu_secs(redis_pid)
    t0 = time.perf_counter()
    done = sum(await asyncio.gather(*(loop(c, f"bench-{i}") for i, c in enumerate(conns))))
    elapsed = time.perf_counter() - t0
    s1, r1 = cpu_secs(server_pid), cpu_secs(redis_pid)
    for c in conns:
        await c.close()
    assert done == total, (done, total)
    return {"jobs_per_s": total / elapsed, "secs": elapsed, "server_us": (s1 - s0) / total * 1e6,
            "redis_us": (r1 - r0) / total * 1e6}


def line(what: str, runs: list[dict]) -> str:
    m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return (f"  {what}: {m['jobs_per_s']:,.0f} jobs/s, CPU per job: server {m['server_us']:.0f} us,"
            f" Redis {m['redis_us']:.0f} us (median of {len(runs)})")


async def main(port: int, server_pid: Optional[int] = None, redis_pid: Optional[int] = None,
               rounds: int = 3) -> None:
    print("rota batch protocol beside the seed protocol (bench/batch_bench.py):")
    forms = (("seed protocol", seed_loop), ("complete with next", next_loop), (f"batches of {BATCH}", batch_loop))
    for loops, total in ((LOOPS, 10_000), (1, 3_000)):
        runs: dict[str, list[dict]] = {name: [] for name, _ in forms}
        for _ in range(rounds):  # alternating, so a drift in the machine's speed hits every form alike
            for name, loop in forms:
                runs[name].append(await measure(port, loop, loops, total, server_pid, redis_pid))
        for name, _ in forms:
            print(line(f"claim->complete, {loops} worker loop(s), {total:,} no-op jobs, {name}", runs[name]))
    for name, loop in forms[:2]:
        walls = [(await measure(port, loop, 1, 50, server_pid, redis_pid, chain=True))["secs"] for _ in range(5)]
        print(f"  50-job chain, {name}: best {min(walls) * 1000:.0f} ms, median {statistics.median(walls) * 1000:.0f} ms")
