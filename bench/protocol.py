"""What the benchmarks share: a rota server process (or `--workers N` of
them) on a given Redis, and drivers of the worker protocol over loopback
with bench/http1.py's cheap client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx

from bench.http1 import Conn

ADMIN_TOKEN = "bench-admin-token-0123456789abcdef0123"


def start_server(redis_url: str, port: int, auth: bool = False, processes: int = 1,
                 namespace: str = "") -> subprocess.Popen:
    env = dict(os.environ, REDIS_URL=redis_url, PORT=str(port), WORKFLOWS_DIR="", LOG_LEVEL="warning")
    env.pop("ROTA_ADMIN_TOKEN", None)
    env.pop("SERVER_WORKERS", None)
    if namespace:
        env["ROTA_NAMESPACE"] = namespace
    if auth:
        # its own namespace: the two servers share one Redis, not one queue
        env.update(ROTA_ADMIN_TOKEN=ADMIN_TOKEN, ROTA_NAMESPACE="rota-auth")
    flags = ["--workers", str(processes)] if processes > 1 else []
    proc = subprocess.Popen([sys.executable, "-m", "server", *flags], env=env)
    deadline = time.monotonic() + 30
    seen: set[int] = set()
    while time.monotonic() < deadline:
        try:
            # every process up: a fresh connection each time lands on any of them
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).json()
            seen.add(health.get("pid", 0))
            if len(seen) >= processes:
                return proc
        except Exception:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("rota server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


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


async def fill(port: int, total: int, token: str | None = None) -> None:
    setup = await Conn("127.0.0.1", port, token).open()
    for left in range(total, 0, -1000):
        await submit(setup, min(1000, left))
    await setup.close()


async def drain(port: int, clients: int, total: int, token: str | None = None) -> float:
    """`clients` claim->complete loops until the queue is empty; jobs/s."""
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


async def throughput(port: int, clients: int, total: int, token: str | None = None) -> float:
    await fill(port, total, token)
    return await drain(port, clients, total, token)


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
