"""Worker benchmarks: real `rota worker` processes running real `true` jobs.

- chain: a 50-job chain (each job needs the previous) through one worker;
  the wall time is dominated by the per-job round trip: claim wake-up,
  spawn, complete, cascade to the next job.
- one worker: 1,000 independent jobs through one worker at concurrency 8
  (jobs/s): what one `rota worker` process sustains; then again with the
  workers' --workdir on a tmpfs (/dev/shm), where there is one: a job's
  directory is four new inodes, and on a disk that allocates them slowly
  (this VM's ext4 has no journal, and then skips every inode freed in the
  last 30 s, one buffer look-up each) the disk is much of a short job's cost.
- fan-out: 1,000 independent jobs through 4 workers x concurrency 4 (jobs/s).
- cancel: from the cancel request to the SIGTERM of the job's process group
  (the job's TERM trap records the time), through a worker whose lease TTL
  is 300 s: the heartbeat long-poll carries the cancel, not the next beat.
  Each job has run for a second (past its first heartbeat, which waits
  worker/daemon/config.py FIRST_HEARTBEAT_DELAY). p50 and max over 10 cancels.

Each throughput figure also says what a job cost in CPU (from /proc: utime +
stime over the measured run, from just before the submit to the end): the
worker process itself, the children it reaped (the steps' `bash`/`true`),
and the server's process when its pid is known. On this shared machine
jobs/s moves with the load; CPU per job much less, so it is the figure to
compare.

`await run(server_url)` measures against a running server and returns the
figures, `await main(server_url)` also prints them, and
`python -m bench.worker_bench [SERVER_URL]` does so from the shell, starting
a redis-server and a server of its own when no URL is given (`--only
one,chain` picks figures, `--rounds N` repeats them, `--py-spy FILE`
records the worker of the first `one` run at 250 Hz into FILE, `--cprofile
FILE` runs it under cProfile).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Optional

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


_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Cpu:
    """A process's CPU seconds: its own (utime + stime), and its reaped children's."""

    own: float = 0.0
    children: float = 0.0

    @classmethod
    def of(cls, pid: Optional[int]) -> "Cpu":
        if pid is None:
            return cls()
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return cls()
        return cls((int(fields[11]) + int(fields[12])) / _TICK, (int(fields[13]) + int(fields[14])) / _TICK)

    def __sub__(self, other: "Cpu") -> "Cpu":
        return Cpu(self.own - other.own, self.children - other.children)


@dataclass
class Measured:
    wall: float  # seconds, submit to success seen by the client
    server_secs: float  # first claim to last result, as the server saw it
    worker: Cpu  # of the worker processes together
    server: Cpu
    load: float  # the 1-minute load average at the end

    def ms_per_job(self, cpu: float, jobs: int) -> float:
        return round(cpu / jobs * 1000, 2)


def _workflow(name: str, label: str, n: int, chained: bool) -> bytes:
    jobs = {}
    for i in range(n):
        job: dict = {"run": "true", "labels": [label]}
        if chained and i:
            job["needs"] = [f"j{i - 1}"]
        jobs[f"j{i}"] = job
    return json.dumps({"name": name, "on": "bench", "jobs": jobs}).encode()


def _start_workers(server_url: str, label: str, count: int, concurrency: int, tmp: str,
                   *flags: str, profile: Optional[str] = None) -> list[subprocess.Popen]:
    workers = []
    for i in range(count):
        worker_id = f"bench-{label}-{i}"
        log = open(os.path.join(tmp, f"{worker_id}.log"), "wb")
        workers.append(subprocess.Popen(
            [sys.executable, *(["-m", "cProfile", "-o", profile] if profile and not i else []),
             "-m", "worker", "--server", server_url, "--labels", label,
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


def _worker_cpu(procs: list[subprocess.Popen]) -> Cpu:
    total = Cpu()
    for proc in procs:
        cpu = Cpu.of(proc.pid)
        total = Cpu(total.own + cpu.own, total.children + cpu.children)
    return total


def _py_spy(pid: int, out: str) -> subprocess.Popen:
    """py-spy (OUT) or, for an OUT ending in .perf, Linux perf with call graphs, on the worker."""
    if out.endswith(".perf"):
        argv = ["perf", "record", "-F", "999", "-g", "-o", out, "-p", str(pid)]
    else:
        spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
        argv = [spy, "record", "-r", "250", "-p", str(pid), "-o", out, "--format", "raw", "--nonblocking", "--gil"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _measure(client: Client, server_url: str, tmp: str, n: int, chained: bool,
                   workers: int, concurrency: int, server_pid: Optional[int] = None,
                   py_spy: Optional[str] = None, cprofile: Optional[str] = None) -> Measured:
    label = f"bench-{uuid.uuid4().hex[:8]}"
    procs = _start_workers(server_url, label, workers, concurrency, tmp, profile=cprofile)
    spy = None
    try:
        await _wait_registered(client, label, workers)
        document = _workflow(f"bench-{'chain' if chained else 'fanout'}", label, n, chained)
        if py_spy:
            spy = _py_spy(procs[0].pid, py_spy)
            await asyncio.sleep(1.0)  # attached
        worker_before, server_before = _worker_cpu(procs), Cpu.of(server_pid)
        wall, server_secs = await _run_workflow(client, document, timeout=300)
        worker, server = _worker_cpu(procs) - worker_before, Cpu.of(server_pid) - server_before
        return Measured(wall, server_secs, worker, server, os.getloadavg()[0])
    finally:
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes what it has and exits
            spy.wait(30)
        _stop_workers(procs)


async def through_workers(server_url: str, n: int, chained: bool, workers: int,
                          concurrency: int) -> tuple[float, float]:
    """`n` `true` jobs through real `rota worker` processes: (client-observed
    wall seconds, server-side seconds from first claim to last result)."""
    with tempfile.TemporaryDirectory(prefix="rota-bench-") as tmp:
        async with Client(server_url) as client:
            measured = await _measure(client, server_url, tmp, n, chained, workers, concurrency)
            return measured.wall, measured.server_secs


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


FIGURES = ("chain", "one", "one_tmpfs", "fanout", "cancel")
TMPFS = "/dev/shm"


def _cpu_figures(prefix: str, measured: Measured, jobs: int) -> dict:
    figures = {
        f"{prefix}_worker_cpu_ms_per_job": measured.ms_per_job(measured.worker.own, jobs),
        f"{prefix}_steps_cpu_ms_per_job": measured.ms_per_job(measured.worker.children, jobs),
        f"{prefix}_load": round(measured.load, 1),
    }
    if measured.server.own:
        figures[f"{prefix}_server_cpu_ms_per_job"] = measured.ms_per_job(measured.server.own, jobs)
    return figures


async def run(server_url: str, server_pid: Optional[int] = None, only: tuple[str, ...] = FIGURES,
              py_spy: Optional[str] = None, cprofile: Optional[str] = None) -> dict:
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="rota-bench-") as tmp:
        async with Client(server_url) as client:
            if "chain" in only:
                chain = await _measure(client, server_url, tmp, CHAIN_LENGTH, True, 1, 1, server_pid)
                figures.update({
                    "chain_jobs": CHAIN_LENGTH,
                    "chain_wall_secs": round(chain.wall, 3),
                    "chain_server_secs": round(chain.server_secs, 3),
                    "chain_ms_per_job": round(chain.server_secs / CHAIN_LENGTH * 1000, 2),
                    **_cpu_figures("chain", chain, CHAIN_LENGTH),
                })
            if "one" in only:
                one = await _measure(client, server_url, tmp, ONE_WORKER_JOBS, False, 1, ONE_WORKER_CONCURRENCY,
                                     server_pid, py_spy, cprofile)
                figures.update({
                    "one_worker_jobs": ONE_WORKER_JOBS,
                    "one_worker_concurrency": ONE_WORKER_CONCURRENCY,
                    "one_worker_wall_secs": round(one.wall, 3),
                    "one_worker_jobs_per_sec": round(ONE_WORKER_JOBS / one.server_secs, 1),
                    **_cpu_figures("one_worker", one, ONE_WORKER_JOBS),
                })
            if "one_tmpfs" in only and os.path.isdir(TMPFS) and os.access(TMPFS, os.W_OK):
                with tempfile.TemporaryDirectory(prefix="rota-bench-", dir=TMPFS) as shm:
                    one = await _measure(client, server_url, shm, ONE_WORKER_JOBS, False, 1, ONE_WORKER_CONCURRENCY,
                                         server_pid)
                figures.update({
                    "one_worker_tmpfs_jobs_per_sec": round(ONE_WORKER_JOBS / one.server_secs, 1),
                    "one_worker_tmpfs_wall_secs": round(one.wall, 3),
                    **_cpu_figures("one_worker_tmpfs", one, ONE_WORKER_JOBS),
                })
            if "fanout" in only:
                fan = await _measure(client, server_url, tmp, FANOUT_JOBS, False, FANOUT_WORKERS, FANOUT_CONCURRENCY,
                                     server_pid)
                figures.update({
                    "fanout_jobs": FANOUT_JOBS,
                    "fanout_workers": f"{FANOUT_WORKERS}x{FANOUT_CONCURRENCY}",
                    "fanout_wall_secs": round(fan.wall, 3),
                    "fanout_jobs_per_sec": round(FANOUT_JOBS / fan.server_secs, 1),
                    **_cpu_figures("fanout", fan, FANOUT_JOBS),
                })
            if "cancel" in only:
                cancels = await _cancel_latencies(client, server_url, tmp)
                figures.update({
                    "cancel_samples": len(cancels),
                    "cancel_lease_ttl_secs": CANCEL_LEASE_TTL,
                    "cancel_p50_ms": round(statistics.median(cancels) * 1000, 1),
                    "cancel_max_ms": round(max(cancels) * 1000, 1),
                })
    return figures


def _cpu_line(figures: dict, prefix: str) -> str:
    parts = [f"worker {figures[f'{prefix}_worker_cpu_ms_per_job']}",
             f"its steps {figures[f'{prefix}_steps_cpu_ms_per_job']}"]
    if f"{prefix}_server_cpu_ms_per_job" in figures:
        parts.append(f"server {figures[f'{prefix}_server_cpu_ms_per_job']}")
    return f"; CPU ms/job: {', '.join(parts)}; load {figures[f'{prefix}_load']}"


def report(figures: dict) -> None:
    if "chain_jobs" in figures:
        print(f"worker chain: {figures['chain_jobs']} jobs in {figures['chain_server_secs']}s"
              f" ({figures['chain_ms_per_job']} ms/job; {figures['chain_wall_secs']}s seen by the client)"
              + _cpu_line(figures, "chain"))
    if "one_worker_jobs" in figures:
        print(f"one worker: {figures['one_worker_jobs']} `true` jobs at concurrency"
              f" {figures['one_worker_concurrency']}: {figures['one_worker_jobs_per_sec']} jobs/s"
              f" ({figures['one_worker_wall_secs']}s wall)" + _cpu_line(figures, "one_worker"))
    if "one_worker_tmpfs_jobs_per_sec" in figures:
        print(f"one worker, --workdir on {TMPFS}: {ONE_WORKER_JOBS} `true` jobs at concurrency {ONE_WORKER_CONCURRENCY}:"
              f" {figures['one_worker_tmpfs_jobs_per_sec']} jobs/s ({figures['one_worker_tmpfs_wall_secs']}s wall)"
              + _cpu_line(figures, "one_worker_tmpfs"))
    if "fanout_jobs" in figures:
        print(f"worker fan-out: {figures['fanout_jobs']} jobs through {figures['fanout_workers']} workers:"
              f" {figures['fanout_jobs_per_sec']} jobs/s ({figures['fanout_wall_secs']}s wall)"
              + _cpu_line(figures, "fanout"))
    if "cancel_samples" in figures:
        print(f"worker cancel -> job's process group signalled (lease TTL {figures['cancel_lease_ttl_secs']}s):"
              f" p50 {figures['cancel_p50_ms']} ms, max {figures['cancel_max_ms']} ms"
              f" over {figures['cancel_samples']} cancels")


async def main(server_url: str, server_pid: Optional[int] = None) -> dict:
    """Measure against `server_url` and print the figures (what `make bench` calls)."""
    figures = await run(server_url, server_pid)
    report(figures)
    return figures


def _standalone(args: argparse.Namespace) -> None:
    """A redis-server and a rota server of our own, as `make bench` runs them."""
    from bench.protocol import start_server, stop_server
    from tests.redis_proc import RedisProcess, free_port

    only = tuple(args.only.split(",")) if args.only else FIGURES
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisProcess(free_port(), tmp)
        redis.start()
        port = free_port()
        server = start_server(redis.url, port)
        try:
            for round_ in range(args.rounds):
                first = round_ == 0
                figures = asyncio.run(run(f"http://127.0.0.1:{port}", server.pid, only,
                                          args.py_spy if first else None, args.cprofile if first else None))
                report(figures)
                if args.json:
                    print(json.dumps(figures))
        finally:
            stop_server(server)
            redis.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.worker_bench")
    parser.add_argument("server", nargs="?", help="a running server's URL (else one of our own, on real Redis)")
    parser.add_argument("--only", help=f"comma-separated, of {','.join(FIGURES)}")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--py-spy", help="record the worker of the first `one` run into this file (raw format)")
    parser.add_argument("--cprofile", help="run the worker of the first `one` run under cProfile, into this file")
    parser.add_argument("--json", action="store_true", help="print each round's figures as JSON too")
    parsed = parser.parse_args()
    if parsed.server:
        only = tuple(parsed.only.split(",")) if parsed.only else FIGURES
        for _ in range(parsed.rounds):
            report(asyncio.run(run(parsed.server, None, only, parsed.py_spy, parsed.cprofile)))
    else:
        _standalone(parsed)
