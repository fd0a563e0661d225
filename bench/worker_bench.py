"""Worker benchmarks: real `rota worker` processes running real `true` jobs.

- chain: a 50-job chain (each job needs the previous) through one worker;
  the wall time is dominated by the per-job round trip: claim wake-up,
  spawn, complete, cascade to the next job.
- one worker: 1,000 independent jobs through one worker at concurrency 8
  (jobs/s): what one `rota worker` process sustains.
- fan-out: 1,000 independent jobs through 4 workers x concurrency 4 (jobs/s).
- cancel: from the cancel request to the SIGTERM of the job's process group
  (the job's TERM trap records the time), through a worker whose lease TTL
  is 300 s: the heartbeat long-poll carries the cancel, not the next beat.
  Each job has run for a second (past its first heartbeat, which waits
  worker/daemon/config.py FIRST_HEARTBEAT_DELAY). p50 and max over 10 cancels.

`await run(server_url)` measures against a running server and returns the
figures, `await main(server_url)` also prints them, and
`python -m bench.worker_bench [SERVER_URL]` does so from the shell, starting
an embedded server of its own when no URL is given.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from worker.client.api import Client

CHAIN_LENGTH = 50
FANOUT_JOBS = 1000
FANOUT_WORKERS = 4
FANOUT_CONCURRENCY = 4
ONE_WORKER_JOBS = 1000
ONE_WORKER_CONCURRENCY = 8
CANCEL_SAMPLES = 10
CANCEL_LEASE_TTL = 300
CANCEL_AFTER_SECS = 1.0


def _workflow(name: str, label: str, n: int, chained: bool) -> bytes:
    jobs = {}
    for i in range(n):
        job: dict = {"run": "true", "labels": [label]}
        if chained and i:
            job["needs"] = [f"j{i - 1}"]
        jobs[f"j{i}"] = job
    return json.dumps({"name": name, "on": "bench", "jobs": jobs}).encode()


def _start_workers(server_url: str, label: str, count: int, concurrency: int, tmp: str,
                   *flags: str) -> list[subprocess.Popen]:
    workers = []
    for i in range(count):
        worker_id = f"bench-{label}-{i}"
        log = open(os.path.join(tmp, f"{worker_id}.log"), "wb")
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "worker", "--server", server_url, "--labels", label,
             "--concurrency", str(concurrency), "--worker-id", worker_id, "--workdir", os.path.join(tmp, worker_id),
             *flags],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        ))
        log.close()
    return workers


def _stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(30)


async def _wait_registered(client: Client, label: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while sum(label in w.labels for w in await client.workers()) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench workers for {label} did not register within 30s")
        await asyncio.sleep(0.05)


async def _run_workflow(client: Client, document: bytes, timeout: float) -> tuple[float, float]:
    """(client-observed wall seconds, server-side seconds from first claim to last result)."""
    started = time.perf_counter()
    workflow = await client.submit(document, "application/json", run=True)
    deadline = time.monotonic() + timeout
    while True:
        status = await client.status(workflow.id)
        if status.status not in ("queued", "running"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench workflow {workflow.id} still {status.status} after {timeout}s")
        # a status read of 1,000 jobs is not free, and the workers need the CPU: poll gently
        await asyncio.sleep(0.1 if len(document) < 20_000 else 0.5)
    wall = time.perf_counter() - started
    if status.status != "success":
        raise RuntimeError(f"bench workflow {workflow.id} ended {status.status}")
    server_secs = ((status.finished_at_ms or 0) - (status.created_at_ms or 0)) / 1000
    return wall, server_secs


async def _measure(client: Client, server_url: str, tmp: str, n: int, chained: bool,
                   workers: int, concurrency: int) -> tuple[float, float]:
    label = f"bench-{uuid.uuid4().hex[:8]}"
    procs = _start_workers(server_url, label, workers, concurrency, tmp)
    try:
        await _wait_registered(client, label, workers)
        document = _workflow(f"bench-{'chain' if chained else 'fanout'}", label, n, chained)
        return await _run_workflow(client, document, timeout=300)
    finally:
        _stop_workers(procs)


async def through_workers(server_url: str, n: int, chained: bool, workers: int,
                          concurrency: int) -> tuple[float, float]:
    """`n` `true` jobs through real `rota worker` processes: (client-observed
    wall seconds, server-side seconds from first claim to last result)."""
    with tempfile.TemporaryDirectory(prefix="rota-bench-") as tmp:
        async with Client(server_url) as client:
            return await _measure(client, server_url, tmp, n, chained, workers, concurrency)


async def _wait_file(path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench: {path} did not appear within {timeout}s")
        await asyncio.sleep(0.002)


async def _cancel_latencies(client: Client, server_url: str, tmp: str) -> list[float]:
    """Seconds from each cancel request to the job's TERM trap, one job at a time."""
    label = f"bench-{uuid.uuid4().hex[:8]}"
    procs = _start_workers(server_url, label, 1, 1, tmp, "--lease-ttl", str(CANCEL_LEASE_TTL))
    latencies = []
    try:
        await _wait_registered(client, label, 1)
        for i in range(CANCEL_SAMPLES):
            started, signalled = (os.path.join(tmp, f"cancel-{label}-{i}.{what}") for what in ("started", "term"))
            # The trap writes the time it ran (bash's $EPOCHREALTIME, else date), atomically.
            script = (f"trap 't=${{EPOCHREALTIME:-$(date +%s.%N)}}; echo \"$t\" > {signalled}.tmp;"
                      f" mv {signalled}.tmp {signalled}; exit 0' TERM\ntouch {started}\nsleep 300 &\nwait")
            document = json.dumps({"name": "bench-cancel", "on": "bench",
                                   "jobs": {"hang": {"run": script, "labels": [label]}}}).encode()
            workflow = await client.submit(document, "application/json", run=True)
            await _wait_file(started, 60)
            await asyncio.sleep(CANCEL_AFTER_SECS)  # a job that has been running a while
            sent = time.time()
            await client.cancel(workflow.id)
            await _wait_file(signalled, 60)
            with open(signalled) as f:
                latencies.append(float(f.read().strip().replace(",", ".")) - sent)
    finally:
        _stop_workers(procs)
    return latencies


async def run(server_url: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="rota-bench-") as tmp:
        async with Client(server_url) as client:
            chain_wall, chain_server = await _measure(client, server_url, tmp, CHAIN_LENGTH, True, 1, 1)
            one_wall, one_server = await _measure(client, server_url, tmp, ONE_WORKER_JOBS, False, 1,
                                                  ONE_WORKER_CONCURRENCY)
            fan_wall, fan_server = await _measure(
                client, server_url, tmp, FANOUT_JOBS, False, FANOUT_WORKERS, FANOUT_CONCURRENCY
            )
            cancels = await _cancel_latencies(client, server_url, tmp)
    return {
        "chain_jobs": CHAIN_LENGTH,
        "chain_wall_secs": round(chain_wall, 3),
        "chain_server_secs": round(chain_server, 3),
        "chain_ms_per_job": round(chain_server / CHAIN_LENGTH * 1000, 2),
        "one_worker_jobs": ONE_WORKER_JOBS,
        "one_worker_concurrency": ONE_WORKER_CONCURRENCY,
        "one_worker_wall_secs": round(one_wall, 3),
        "one_worker_jobs_per_sec": round(ONE_WORKER_JOBS / one_server, 1),
        "fanout_jobs": FANOUT_JOBS,
        "fanout_workers": f"{FANOUT_WORKERS}x{FANOUT_CONCURRENCY}",
        "fanout_wall_secs": round(fan_wall, 3),
        "fanout_jobs_per_sec": round(FANOUT_JOBS / fan_server, 1),
        "cancel_samples": len(cancels),
        "cancel_lease_ttl_secs": CANCEL_LEASE_TTL,
        "cancel_p50_ms": round(statistics.median(cancels) * 1000, 1),
        "cancel_max_ms": round(max(cancels) * 1000, 1),
    }


def _start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "WORKFLOWS_DIR": "", "LOG_LEVEL": "warning"}
    server = subprocess.Popen([sys.executable, "-m", "server"], env=env, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server, url
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("the bench server did not start") from None
            time.sleep(0.05)


async def main(server_url: str) -> dict:
    """Measure against `server_url` and print the figures (what `make bench` calls)."""
    figures = await run(server_url)
    print(f"worker chain: {figures['chain_jobs']} jobs in {figures['chain_server_secs']}s"
          f" ({figures['chain_ms_per_job']} ms/job; {figures['chain_wall_secs']}s seen by the client)")
    print(f"one worker: {figures['one_worker_jobs']} `true` jobs at concurrency {figures['one_worker_concurrency']}:"
          f" {figures['one_worker_jobs_per_sec']} jobs/s ({figures['one_worker_wall_secs']}s wall)")
    print(f"worker fan-out: {figures['fanout_jobs']} jobs through {figures['fanout_workers']} workers:"
          f" {figures['fanout_jobs_per_sec']} jobs/s ({figures['fanout_wall_secs']}s wall)")
    print(f"worker cancel -> job's process group signalled (lease TTL {figures['cancel_lease_ttl_secs']}s):"
          f" p50 {figures['cancel_p50_ms']} ms, max {figures['cancel_max_ms']} ms"
          f" over {figures['cancel_samples']} cancels")
    return figures


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(sys.argv[1]))
    else:
        embedded, embedded_url = _start_server()
        try:
            asyncio.run(main(embedded_url))
        finally:
            embedded.terminate()
            embedded.wait(30)
