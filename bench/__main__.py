"""`make bench`: starts a real redis-server and one rota server process,
then measures the seed protocol end to end over loopback and prints figures.

  1. claim->complete throughput, no-op jobs, 1 and 8 concurrent clients,
     with auth off and with auth on (a worker token on every call)
  2. idle dispatch latency with long-poll (enqueue -> the waiting worker has it)
  3. a 50-job chain's wall time through the protocol
  4. the worker daemon figures (bench/worker_bench.py), when present
  5. the fleet figures (bench/fleet_bench.py), and how long hostile workflow
     documents take to refuse (bench/definitions_bench.py)
  6. the dashboard in headless chromium with real volumes (bench/ui_bench.py)
  7. claims against 20,000 queued label sets (bench/labelsets_bench.py)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench.http1 import Conn
from tests.redis_proc import RedisProcess, free_port


ADMIN_TOKEN = "bench-admin-token-0123456789abcdef0123"


def start_server(redis_url: str, port: int, auth: bool = False) -> subprocess.Popen:
    env = dict(os.environ, REDIS_URL=redis_url, PORT=str(port), WORKFLOWS_DIR="", LOG_LEVEL="warning")
    env.pop("ROTA_ADMIN_TOKEN", None)
    if auth:
        # its own namespace: the two servers share one Redis, not one queue
        env.update(ROTA_ADMIN_TOKEN=ADMIN_TOKEN, ROTA_NAMESPACE="rota-auth")
    proc = subprocess.Popen([sys.executable, "-m", "server"], env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            import httpx

            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return proc
        except Exception:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("rota server did not start")


def jobs_doc(n: int, chain: bool = False) -> dict:
    jobs = []
    for i in range(n):
        jobs.append({"id": f"j{i}", "command": "true",
                     "depends_on": [f"j{i - 1}"] if chain and i else []})
    return {"name": "bench", "trigger": "bench", "jobs": jobs}


async def submit(conn: Conn, n: int, chain: bool = False) -> str:
    status, wf = await conn.post_json("/api/workflows?run=true", jobs_doc(n, chain))
    assert status == 201, (status, wf)
    return wf["id"]


async def worker_token(port: int) -> str:
    admin = await Conn("127.0.0.1", port, ADMIN_TOKEN).open()
    status, created = await admin.post_json("/api/tokens", {"name": "bench", "scopes": ["worker", "submit"]})
    assert status == 201, created
    await admin.close()
    return created["token"]


async def throughput(port: int, clients: int, total: int, token: str | None = None) -> float:
    setup = await Conn("127.0.0.1", port, token).open()
    for left in range(total, 0, -1000):
        await submit(setup, min(1000, left))
    await setup.close()
    conns = [await Conn("127.0.0.1", port, token).open() for _ in range(clients)]
    done = 0

    async def loop(conn: Conn, i: int) -> None:
        nonlocal done
        claim_body = {"worker_id": f"bench-{i}", "labels": [], "lease_ttl_secs": 30}
        while True:
            status, claim = await conn.post_json("/api/jobs/claim", claim_body)
            if claim is None:
                return
            status, _ = await conn.post_json(f"/api/jobs/{claim['lease']['lease_id']}/complete", {"outputs": {}})
            assert status == 200
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(c, i) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - t0
    for c in conns:
        await c.close()
    assert done == total, (done, total)
    return total / elapsed


async def dispatch_latency(port: int, samples: int) -> list[float]:
    worker = await Conn("127.0.0.1", port).open()
    submitter = await Conn("127.0.0.1", port).open()
    latencies = []
    for _ in range(samples):
        waiting = asyncio.create_task(worker.post_json(
            "/api/jobs/claim", {"worker_id": "idle", "labels": [], "wait_secs": 10}))
        await asyncio.sleep(0.01)  # the worker is idle, parked in its long-poll
        await submit(submitter, 1)
        _, claim = await waiting
        received_ms = time.time() * 1000
        latencies.append(received_ms - claim["job"]["enqueued_at_ms"])
        await worker.post_json(f"/api/jobs/{claim['lease']['lease_id']}/complete", {"outputs": {}})
    await worker.close()
    await submitter.close()
    return latencies


async def chain(port: int, n: int) -> float:
    conn = await Conn("127.0.0.1", port).open()
    t0 = time.perf_counter()
    await submit(conn, n, chain=True)
    for _ in range(n):
        _, claim = await conn.post_json("/api/jobs/claim", {"worker_id": "chain", "wait_secs": 5})
        await conn.post_json(f"/api/jobs/{claim['lease']['lease_id']}/complete", {"outputs": {}})
    elapsed = time.perf_counter() - t0
    await conn.close()
    return elapsed


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


THROUGHPUT_RUNS = ((1, 3000), (8, 10000))
# Auth off and on alternate, so a drift in the machine's speed (a shared VM
# varies by tens of percent within minutes) hits both alike.
ROUNDS = 3


async def throughputs(port: int, redis_url: str) -> None:
    auth_port = free_port()
    auth_server = start_server(redis_url, auth_port, auth=True)
    try:
        token = await worker_token(auth_port)
        for clients, total in THROUGHPUT_RUNS:
            off, on = [], []
            for _ in range(ROUNDS):
                off.append(await throughput(port, clients, total))
                on.append(await throughput(auth_port, clients, total, token))
            a, b = statistics.median(off), statistics.median(on)
            print(f"  claim->complete, {clients} client(s), {total} no-op jobs, median of {ROUNDS}:"
                  f" auth off {a:,.0f} jobs/s, auth on {b:,.0f} jobs/s ({b / a:.0%})")
    finally:
        auth_server.terminate()
        auth_server.wait(10)


async def main_async(port: int, redis_url: str) -> None:
    print(f"rota bench: one server process, real redis-server, {os.cpu_count()} cores, loopback")
    await throughputs(port, redis_url)
    lat = await dispatch_latency(port, 200)
    print(f"  idle dispatch latency (long-poll, 200 samples): p50 {pct(lat, 50):.2f} ms, "
          f"p99 {pct(lat, 99):.2f} ms, mean {statistics.mean(lat):.2f} ms")
    walls = [await chain(port, 50) for _ in range(5)]
    print(f"  50-job chain through the protocol: best {min(walls) * 1000:.0f} ms, "
          f"median {statistics.median(walls) * 1000:.0f} ms (5 runs)")


def main() -> None:
    if not shutil.which("redis-server"):
        raise SystemExit("make bench needs redis-server (apt-get install redis-server)")
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisProcess(free_port(), tmp)
        redis.start()
        port = free_port()
        server = start_server(redis.url, port)
        try:
            asyncio.run(main_async(port, redis.url))
            try:
                from bench import worker_bench
            except ImportError:
                worker_bench = None
            if worker_bench is not None:
                asyncio.run(worker_bench.main(f"http://127.0.0.1:{port}"))
            from bench import definitions_bench, fleet_bench

            asyncio.run(fleet_bench.main(f"http://127.0.0.1:{port}", port, redis.url))
            definitions_bench.main()
            from bench import ui_bench

            asyncio.run(ui_bench.main(f"http://127.0.0.1:{port}", redis.url))
            from bench import labelsets_bench

            asyncio.run(labelsets_bench.main(redis.url))
        finally:
            server.terminate()
            server.wait(10)
            redis.stop()


if __name__ == "__main__":
    main()
