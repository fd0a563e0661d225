"""GET /metrics figures.

In `make bench`: a scrape's time with 10,000 queued jobs (over 20 label
sets) and 1,000 workers: the whole HTTP answer, and the part spent reading
Redis (server/metrics/fleet.py, run here on its own).

`python -m bench.metrics_bench --ab DIR [--this DIR] [--rounds N]`: the hot path's cost
of counting, claim->complete at 8 clients (seed protocol) and 8 batch
loops, rota in DIR (e.g. `git archive main | tar -x -C DIR`) against this
tree, alternating pairs (ABBA: each goes first every other round) on one
redis-server, flushed before each run; medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

from bench import batch_bench
from bench.http1 import Conn
from bench.protocol import start_server, stop_server
from tests.redis_proc import RedisProcess, free_port

QUEUED, LABEL_SETS, WORKERS, SCRAPES = 10_000, 20, 1_000, 20


async def scrape_figures(port: int, redis_url: str) -> None:
    from redis.asyncio import Redis

    from server.metrics.fleet import read
    from server.store import Store

    conn = await Conn("127.0.0.1", port).open()
    for left in range(QUEUED, 0, -1000):
        jobs = [{"id": f"j{i}", "command": "true", "required_labels": [f"pool{i % LABEL_SETS}"]}
                for i in range(min(1000, left))]
        status, body = await conn.post_json("/api/workflows?run=true", {"name": "metrics-bench", "jobs": jobs})
        assert status == 201, (status, body)
    for i in range(WORKERS):
        status, _ = await conn.post_json("/api/workers/register", {
            "worker_id": f"mw{i}", "labels": [f"pool{i % LABEL_SETS}", "extra"], "concurrency": 4})
        assert status == 200
    await conn.close()
    http = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(SCRAPES):
            t0 = time.perf_counter()
            resp = await client.get("/metrics")
            http.append(time.perf_counter() - t0)
            assert resp.status_code == 200, resp.text
    redis = Redis.from_url(redis_url, decode_responses=True)
    store = Store(redis, NAMESPACE)
    reads = []
    for _ in range(SCRAPES):
        t0 = time.perf_counter()
        fleet = await read(store)
        reads.append(time.perf_counter() - t0)
    await redis.aclose()
    assert sum(q.ready for q in fleet.queues.queues) >= QUEUED and len(fleet.workers) >= WORKERS
    print(f"  GET /metrics with {QUEUED:,} queued jobs ({LABEL_SETS} label sets) and {WORKERS:,} workers,"
          f" median of {SCRAPES}: {statistics.median(http) * 1000:.1f} ms over HTTP, of which reading Redis"
          f" {statistics.median(reads) * 1000:.1f} ms (load average {os.getloadavg()[0]:.2f})")


NAMESPACE = "rota-metrics"


async def main(redis_url: str) -> None:
    """On a server of its own, on a namespace of its own."""
    print("rota /metrics (bench/metrics_bench.py):")
    port = free_port()
    proc = start_server(redis_url, port, namespace=NAMESPACE)
    try:
        await scrape_figures(port, redis_url)
    finally:
        stop_server(proc)


# ---- A/B: the hot path's cost -------------------------------------------------------------


def _server(tree: str, redis_url: str, port: int) -> subprocess.Popen:
    env = dict(os.environ, REDIS_URL=redis_url, PORT=str(port), WORKFLOWS_DIR="", LOG_LEVEL="warning",
               PYTHONPATH=tree)
    env.pop("ROTA_ADMIN_TOKEN", None)
    env.pop("SERVER_WORKERS", None)
    proc = subprocess.Popen([sys.executable, "-m", "server"], env=env, cwd=tree)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"rota server in {tree} did not start")


# Jobs per run: the batch protocol drains 10,000 in about a second here,
# too short to rise above the machine's noise.
SEED_JOBS, BATCH_JOBS = 10_000, 40_000


async def _one(tree: str, redis: RedisProcess) -> dict:
    port = free_port()
    proc = _server(tree, redis.url, port)
    try:
        seed = await batch_bench.measure(port, batch_bench.seed_loop, 8, SEED_JOBS, proc.pid, redis.proc.pid)
        batch = await batch_bench.measure(port, batch_bench.batch_loop, batch_bench.LOOPS, BATCH_JOBS, proc.pid,
                                          redis.proc.pid)
    finally:
        proc.terminate()
        proc.wait(20)
    return {"seed": seed["jobs_per_s"], "seed_server_us": seed["server_us"], "batch": batch["jobs_per_s"],
            "batch_server_us": batch["server_us"]}


async def ab(base: str, rounds: int, this: str = "") -> None:
    here = this or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs: dict[str, list[dict]] = {"base": [], "this": []}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisProcess(free_port(), tmp)
        redis.start()
        try:
            for r in range(rounds):
                # ABBA: whichever goes first in a pair must not be the one that pays for it
                order = (("base", base), ("this", here))
                for name, tree in order if r % 2 == 0 else order[::-1]:
                    subprocess.run(["redis-cli", "-p", redis.url.rsplit(":", 1)[1].split("/")[0], "FLUSHALL"],
                                   check=True, capture_output=True)
                    got = await _one(tree, redis)
                    runs[name].append(got)
                    loads.append(os.getloadavg()[0])
                    print(f"  round {r + 1} {name}: seed {got['seed']:,.0f} jobs/s (server {got['seed_server_us']:.1f}"
                          f" us/job), batch {got['batch']:,.0f} jobs/s (server {got['batch_server_us']:.1f} us/job)",
                          flush=True)
        finally:
            redis.stop()
    # The machine's speed drifts by tens of percent within minutes: each
    # pair's ratio, and the server's CPU per job, say more than the medians.
    for key, what in (("seed", f"claim->complete, 8 clients, {SEED_JOBS:,} no-op jobs"),
                      ("batch", f"batches of {batch_bench.BATCH}, 8 loops, {BATCH_JOBS:,} no-op jobs")):
        a = statistics.median(x[key] for x in runs["base"])
        b = statistics.median(x[key] for x in runs["this"])
        ratio = statistics.median(y[key] / x[key] for x, y in zip(runs["base"], runs["this"]))
        ca = statistics.median(x[f"{key}_server_us"] for x in runs["base"])
        cb = statistics.median(x[f"{key}_server_us"] for x in runs["this"])
        print(f"  {what}, {rounds} pairs: base {a:,.0f} jobs/s, this {b:,.0f} jobs/s (medians; median pair"
              f" ratio {ratio - 1:+.1%}); server CPU per job {ca:.1f} -> {cb:.1f} us ({cb / ca - 1:+.1%})")
    print(f"  load average (1 min) during the runs: {min(loads):.2f} to {max(loads):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ab", required=True, help="a tree of the rota to compare with")
    parser.add_argument("--this", default="", help="the tree to measure (default: this one; a copy lets you edit"
                        " meanwhile)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(ab(args.ab, args.rounds, args.this))
