"""Concurrency groups against the claim path (issue 17):

- claim->complete, 8 clients, 10,000 no-op jobs of runs in no group, on a
  server whose Redis has 1,000 concurrency groups in use (each holding one
  run and one waiting, their jobs on a label no client offers) and on one
  with none, alternating: a claim never looks at groups.
- a claim's own cost in Redis (INFO commandstats: EVALSHA usec per call,
  and the commands run inside it, while 8 clients only claim) with and
  without those 1,000 groups.
- 8 clients draining 2,000 one-job runs in 1,000 groups (two each, limit
  1): each complete gives its group's place to the run waiting there.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import redis as redis_sync

from bench.http1 import Conn

GROUPS = 1000
ROUNDS = 3
PARKED = """
concurrency: {group: "g-${{ inputs.n }}"}
jobs:
  a: {run: 'true', labels: [parked]}
"""
DRAIN = """
concurrency: {group: "d-${{ inputs.n }}", queue: max}
jobs:
  a: {run: 'true'}
"""


async def put(conn: Conn, wf: str, doc: str) -> None:
    status, _ = await conn.request("PUT", f"/api/workflows/{wf}", doc.encode(), "application/yaml")
    assert status in (200, 201), status


async def start_runs(port: int, wf: str, groups: int, per_group: int) -> None:
    conns = [await Conn("127.0.0.1", port).open() for _ in range(8)]

    async def starter(i: int) -> None:
        for n in range(i, groups, len(conns)):
            for _ in range(per_group):
                status, run = await conns[i].post_json(f"/api/workflows/{wf}/runs", {"inputs": {"n": str(n)}})
                assert status == 201, (status, run)

    await asyncio.gather(*(starter(i) for i in range(len(conns))))
    for c in conns:
        await c.close()


async def fill_groups(port: int) -> None:
    conn = await Conn("127.0.0.1", port).open()
    await put(conn, "parked", PARKED)
    await conn.close()
    await start_runs(port, "parked", GROUPS, 2)


async def claims_only(port: int, total: int) -> None:
    """8 clients claim `total` jobs (and leave them leased)."""
    conns = [await Conn("127.0.0.1", port).open() for _ in range(8)]
    left = total

    async def loop(conn: Conn, i: int) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status, claim = await conn.post_json("/api/jobs/claim", {"worker_id": f"c-{i}", "lease_ttl_secs": 300})
            assert status == 200 and claim is not None, status

    await asyncio.gather(*(loop(c, i) for i, c in enumerate(conns)))
    for c in conns:
        await c.close()


def evalsha(redis_url: str) -> tuple[int, int, int]:
    """Script calls (EVALSHA, and FCALL: the hot path's run as functions)
    and their usec, and every command run inside scripts."""
    stats = redis_sync.Redis.from_url(redis_url).info("commandstats")
    calls = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_fcall")
    inner = sum(int(v.get("calls", 0)) for k, v in stats.items()
                if k not in (*calls, "cmdstat_function", "cmdstat_info"))
    scripts = [stats.get(name, {}) for name in calls[::2]]
    return sum(int(s.get("calls", 0)) for s in scripts), sum(int(s.get("usec", 0)) for s in scripts), inner


async def claim_cost(port: int, redis_url: str, submit, total: int = 2000) -> tuple[float, float]:
    """(EVALSHA usec per call, Redis commands per claim) while 8 clients only claim."""
    setup = await Conn("127.0.0.1", port).open()
    for left in range(total, 0, -1000):
        await submit(setup, min(1000, left))
    await setup.close()
    calls, usec, inner = evalsha(redis_url)
    await claims_only(port, total)
    calls2, usec2, inner2 = evalsha(redis_url)
    return (usec2 - usec) / max(calls2 - calls, 1), (inner2 - inner) / total


async def drain(port: int) -> float:
    conn = await Conn("127.0.0.1", port).open()
    await put(conn, "drain", DRAIN)
    await conn.close()
    await start_runs(port, "drain", GROUPS, 2)
    conns = [await Conn("127.0.0.1", port).open() for _ in range(8)]
    done = 0

    async def loop(c: Conn, i: int) -> None:
        nonlocal done
        idle = 0
        while idle < 3:
            status, claim = await c.post_json("/api/jobs/claim", {"worker_id": f"d-{i}"})
            if claim is None:
                idle += 1
                await asyncio.sleep(0.01)
                continue
            idle = 0
            status, _ = await c.post_json(f"/api/jobs/{claim['lease']['lease_id']}/complete", {"outputs": {}})
            assert status == 200
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(c, i) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - t0
    for c in conns:
        await c.close()
    assert done == 2 * GROUPS, done
    return done / elapsed


async def main(plain_port: int, grouped_port: int, redis_url: str) -> None:
    """`plain_port` and `grouped_port`: two servers on namespaces of their own."""
    from bench.protocol import submit, throughput

    print(f"concurrency groups ({GROUPS:,} in use on the second server, each holding a run and one waiting):")
    await fill_groups(grouped_port)
    plain, grouped = [], []
    for _ in range(ROUNDS):
        plain.append(await throughput(plain_port, 8, 10000))
        grouped.append(await throughput(grouped_port, 8, 10000))
    a, b = statistics.median(plain), statistics.median(grouped)
    print(f"  claim->complete, 8 clients, 10,000 no-op jobs in no group, median of {ROUNDS}: no groups"
          f" {a:,.0f} jobs/s, {GROUPS:,} groups in use {b:,.0f} jobs/s ({b / a:.0%})")
    usec_plain, commands_plain = await claim_cost(plain_port, redis_url, submit)
    usec_grouped, commands_grouped = await claim_cost(grouped_port, redis_url, submit)
    print(f"  a claim in Redis (2,000 claims, 8 clients): no groups {usec_plain:.1f} us per script,"
          f" {commands_plain:.1f} commands; {GROUPS:,} groups in use {usec_grouped:.1f} us,"
          f" {commands_grouped:.1f} commands")
    rate = await drain(grouped_port)
    print(f"  {2 * GROUPS:,} one-job runs in {GROUPS:,} groups (two each, limit 1), 8 clients: {rate:,.0f} jobs/s")
