"""Issue 19's table, rota's side: every row measured on a fresh
`redis-server --save '' --appendonly no` and fresh server processes, over
loopback, with bench/http1.py's client (and wrk where the row says so).
`make bench` prints these; bench/peers.py (`make bench-peers`) measures
workflow-graph and BullMQ beside them and prints both with the ratio.

CPU per job is the server's processes (user + system, from /proc) and
Redis's (INFO cpu), over the measured stretch only, divided by the jobs it
finished; the load generator's own CPU is not counted. "Script time" is
Redis's own account of the time in rota's scripts (INFO commandstats,
EVALSHA and FCALL), "commands" the Redis commands run per job, those inside scripts
included.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis as redis_py

from bench.http1 import Conn
from bench.protocol import chain, dispatch_latency, drain, fill, pct, start_server, stop_server, submit
from tests.redis_proc import RedisProcess, free_port

HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "wrk_claim_complete.lua"
WRK_SECS, WRK_CONNECTIONS = 10, 8
MEMORY_JOBS = 2000  # two workflows of 1,000 (rota's cap per workflow), definitions included
MEMORY_SETTLE_SECS = 3
ENQUEUE_JOBS, ENQUEUE_CLIENTS = 10_000, 8
LOOPS8_JOBS, LOOPS1_JOBS, LOOPS16_JOBS = 10_000, 3000, 10_000
CHAIN_RUNS, DISPATCH_SAMPLES = 5, 200
# The machine drifts by tens of percent within minutes: one and two processes alternate.
SCALING_ROUNDS = 3
WORKER_JOBS, WORKER_CONCURRENCY = 1000, 8


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of `root` and every process under it."""
    parents, cpu = {}, {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


@dataclass
class Usage:
    server_cpu: float = 0.0
    redis_cpu: float = 0.0
    script_usec: float = 0.0
    commands: float = 0.0

    def __sub__(self, other: "Usage") -> "Usage":
        return Usage(*(a - b for a, b in zip(vars(self).values(), vars(other).values())))

    def per_job(self, jobs: int) -> dict:
        return {"server_cpu_ms": self.server_cpu * 1000 / jobs, "redis_cpu_ms": self.redis_cpu * 1000 / jobs,
                "cpu_ms": (self.server_cpu + self.redis_cpu) * 1000 / jobs,
                "script_usec": self.script_usec / jobs, "commands": self.commands / jobs}


def redis_usage(client: redis_py.Redis) -> tuple[float, float, float]:
    """(CPU seconds, usec in scripts, commands run) of a Redis so far."""
    cpu = client.info("cpu")
    stats = client.info("commandstats")
    scripts = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_fcall")  # the hot path's run as functions
    script_usec = sum(v["usec"] for k, v in stats.items() if k.split("|")[0] in scripts)
    commands = sum(v["calls"] for k, v in stats.items()
                   if k.split("|")[0] not in (*scripts, "cmdstat_info", "cmdstat_function"))
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"], script_usec, commands


class Rota:
    """A fresh redis-server and a rota server of `processes` processes on it."""

    def __init__(self, tmp: str, processes: int = 1):
        self.redis = RedisProcess(free_port(), tempfile.mkdtemp(dir=tmp))
        self.redis.start()
        self.client = redis_py.Redis.from_url(self.redis.url)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = start_server(self.redis.url, self.port, processes=processes)

    def usage(self) -> Usage:
        return Usage(tree_cpu(self.server.pid), *redis_usage(self.client))

    def used_memory(self) -> int:
        return self.client.info("memory")["used_memory"]

    def close(self) -> None:
        stop_server(self.server)
        self.client.close()
        self.redis.stop()


# ---- the rows -------------------------------------------------------------------------


async def memory_per_job(rota: Rota) -> float:
    # One job through first: the scripts it runs enter Redis's script cache
    # now, not during the measurement (they are no job's cost).
    await fill(rota.port, 1)
    await drain(rota.port, 1, 1)
    before = rota.used_memory()
    await fill(rota.port, MEMORY_JOBS)
    # Redis shrinks a client's query buffer, which held the requests, once
    # the client has been idle for 2 s: it is no job's cost either.
    await asyncio.sleep(MEMORY_SETTLE_SECS)
    grown = rota.used_memory() - before
    await drain(rota.port, 8, MEMORY_JOBS)
    return grown / MEMORY_JOBS


async def enqueue(port: int, total: int, clients: int) -> float:
    conns = [await Conn("127.0.0.1", port).open() for _ in range(clients)]
    batches = list(range(total, 0, -1000))

    async def one(conn: Conn) -> None:
        while batches:
            await submit(conn, min(1000, batches.pop()))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(c) for c in conns))
    elapsed = time.perf_counter() - t0
    for c in conns:
        await c.close()
    return total / elapsed


async def loops(rota: Rota, clients: int, total: int, filled: bool = False) -> tuple[float, dict]:
    if not filled:
        await fill(rota.port, total)
    before = rota.usage()
    rate = await drain(rota.port, clients, total)
    return rate, (rota.usage() - before).per_job(total)


def batch_loops() -> dict:
    """The batch protocol's worker loops (bench/batch_bench.py), where this
    checkout has it: {name: loop(conn, worker_id) -> jobs done}."""
    try:
        from bench import batch_bench
    except ImportError:
        return {}
    found = {"batch": getattr(batch_bench, "batch_loop", None), "next": getattr(batch_bench, "next_loop", None)}
    return {name: loop for name, loop in found.items() if loop is not None}


async def protocol_loops(rota: Rota, loop, clients: int, total: int) -> tuple[float, dict]:
    """`clients` connections each running `loop` until the queue is empty."""
    await fill(rota.port, total)
    conns = [await Conn("127.0.0.1", rota.port).open() for _ in range(clients)]
    before = rota.usage()
    t0 = time.perf_counter()
    done = sum(await asyncio.gather(*(loop(c, f"bench-{i}") for i, c in enumerate(conns))))
    elapsed = time.perf_counter() - t0
    used = rota.usage() - before
    for c in conns:
        await c.close()
    assert done == total, (done, total)
    return total / elapsed, used.per_job(total)


async def seed_prefill(url: str, workflows: int) -> None:
    """Seed 002's own create, then run: what workflow-graph also accepts."""
    host, port = url.rsplit("/", 1)[-1].split(":")
    conn = await Conn(host, int(port)).open()
    doc = {"name": "wrk", "trigger": "bench", "jobs": [
        {"id": f"j{i}", "name": f"job {i}", "status": "queued", "command": "true", "duration_secs": None,
         "depends_on": [], "output": None} for i in range(1000)]}
    for _ in range(workflows):
        status, wf = await conn.post_json("/api/workflows", doc)
        assert status == 201, (status, wf)
        status, _ = await conn.request("POST", f"/api/workflows/{wf['id']}/run")
        assert status in (200, 202), status
    await conn.close()


def wrk_claim_complete(url: str, secs: int = WRK_SECS, connections: int = WRK_CONNECTIONS) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{secs}s", "-s", str(WRK_SCRIPT), url],
                         capture_output=True, text=True, timeout=secs + 60).stdout
    line = next(line for line in out.splitlines() if line.startswith("completes="))
    figures = dict(part.split("=") for part in line.split())
    return {"jobs_per_s": float(figures["jobs_per_s"]), "completes": int(figures["completes"]),
            "empties": int(figures["empties"]), "others": int(figures["others"])}


async def wrk_row(rota: Rota, expected_rate: float) -> dict | None:
    if not shutil.which("wrk"):
        return None
    # enough queued for the whole run at half again the rate the loops saw
    workflows = max(20, int(expected_rate * 1.5 * WRK_SECS / 1000) + 1)
    await seed_prefill(rota.url, workflows)
    before = rota.usage()
    result = await asyncio.to_thread(wrk_claim_complete, rota.url)
    result["cpu"] = (rota.usage() - before).per_job(max(1, result["completes"]))
    return result


async def worker_rows(url: str) -> dict:
    from bench import worker_bench

    fan = await worker_bench.through_workers(url, WORKER_JOBS, chained=False, workers=1,
                                             concurrency=WORKER_CONCURRENCY)
    walls = await worker_bench.through_workers(url, 50, chained=True, workers=1, concurrency=1)
    return {"worker8": WORKER_JOBS / fan[1], "worker_chain": walls[1]}


async def measure(tmp: str, *, workers: bool = True, say=print) -> dict:
    """Every row on rota, as {key: figure}; `say` reports progress."""
    rows: dict = {}
    rota = Rota(tmp)
    try:
        rows["memory_per_job"] = await memory_per_job(rota)
        rows["enqueue8"] = await enqueue(rota.port, ENQUEUE_JOBS, ENQUEUE_CLIENTS)
        rows["loops8"], rows["loops8_cpu"] = await loops(rota, 8, LOOPS8_JOBS, filled=True)
        rows["loops1"], _ = await loops(rota, 1, LOOPS1_JOBS)
        for name, loop in batch_loops().items():
            rows[f"{name}8"], rows[f"{name}8_cpu"] = await protocol_loops(rota, loop, 8, LOOPS8_JOBS)
        rows["chain50"] = statistics.median([await chain(rota.port, 50) for _ in range(CHAIN_RUNS)])
        rows["dispatch_p50_ms"] = pct(await dispatch_latency(rota.port, DISPATCH_SAMPLES), 50)
        say(f"  protocol rows: 8 loops {rows['loops8']:,.0f} jobs/s, 1 loop {rows['loops1']:,.0f} jobs/s")
        if workers:
            rows.update(await worker_rows(rota.url))
        # last: it leaves jobs queued
        rows["wrk8"] = await wrk_row(rota, rows["loops8"])
    finally:
        rota.close()
    rows.update(await scaling(tmp))
    return rows


async def scaling(tmp: str) -> dict:
    """16 loops on one process and on two, alternating on fresh Redis each time."""
    one, two = [], []
    for _ in range(SCALING_ROUNDS):
        for processes, figures in ((1, one), (2, two)):
            rota = Rota(tmp, processes=processes)
            try:
                figures.append((await loops(rota, 16, LOOPS16_JOBS))[0])
            finally:
                rota.close()
    return {"loops16_one_process": statistics.median(one), "loops16_two_processes": statistics.median(two)}


def rota_lines(rows: dict) -> list[str]:
    """Rota's side of every row, as `make bench` prints them."""
    cpu = rows["loops8_cpu"]
    wrk = rows.get("wrk8")
    lines = [
        ("claim→complete, seed protocol, 8 connections (wrk, 10 s)",
         f"{wrk['jobs_per_s']:,.0f} jobs/s" + _dry(wrk) if wrk else "skipped: no wrk (apt-get install wrk)"),
        ("the same, 8 worker loops, 10,000 jobs", f"{rows['loops8']:,.0f} jobs/s"),
        ("one worker loop, 3,000 jobs", f"{rows['loops1']:,.0f} jobs/s"),
        *_batch_lines(rows),
        ("enqueue 10,000 jobs, 8 clients (1,000-job workflows)", f"{rows['enqueue8']:,.0f} jobs/s"),
        ("50-job chain through the protocol, median of 5", f"{rows['chain50']:.3f} s"),
        (f"16 loops, 10,000 jobs: two server processes | one, median of {SCALING_ROUNDS} alternating",
         f"{rows['loops16_two_processes']:,.0f} | {rows['loops16_one_process']:,.0f} jobs/s"),
    ]
    if "worker8" in rows:
        lines += [("`rota worker` running `true`, concurrency 8, 1,000 jobs", f"{rows['worker8']:,.0f} jobs/s"),
                  ("50-job chain through one `rota worker`", f"{rows['worker_chain']:.2f} s")]
    lines += [
        ("Redis used_memory per queued job (2,000 jobs, definition included)", f"{rows['memory_per_job']:,.0f} B"),
        ("CPU per job, 8 loops: server + Redis",
         f"{cpu['cpu_ms']:.3f} ms ({cpu['server_cpu_ms']:.3f} + {cpu['redis_cpu_ms']:.3f})"),
        ("Redis per job, 8 loops: script time, commands",
         f"{cpu['script_usec']:.0f} µs, {cpu['commands']:.1f} commands"),
        ("idle dispatch (enqueue → claim of a parked long-poll) p50", f"{rows['dispatch_p50_ms']:.2f} ms"),
    ]
    if wrk:
        lines.append(("CPU per job, wrk: server + Redis",
                      f"{wrk['cpu']['cpu_ms']:.3f} ms ({wrk['cpu']['server_cpu_ms']:.3f}"
                      f" + {wrk['cpu']['redis_cpu_ms']:.3f})"))
    return [f"  {what}: {figure}" for what, figure in lines]


def _batch_lines(rows: dict) -> list[tuple[str, str]]:
    if "batch8" not in rows and "next8" not in rows:
        return [("batch protocol, 8 worker loops", "skipped: this checkout has no bench/batch_bench.py")]
    out = []
    for key, what in (("batch8", "batch protocol (claims and results in batches), 8 worker loops, 10,000 jobs"),
                      ("next8", "complete with the next claim, 8 worker loops, 10,000 jobs")):
        if key in rows:
            cpu = rows[f"{key}_cpu"]
            out.append((what, f"{rows[key]:,.0f} jobs/s, CPU per job {cpu['cpu_ms']:.3f} ms"
                              f" ({cpu['server_cpu_ms']:.3f} + {cpu['redis_cpu_ms']:.3f})"))
    return out


def _dry(wrk: dict) -> str:
    return " (the queue ran dry: a lower bound)" if wrk["empties"] else ""


async def main(tmp: str | None = None) -> dict:
    print("issue 19's table, rota's side (fresh redis-server and server for each part):", flush=True)
    with tempfile.TemporaryDirectory(prefix="rota-table-") as own:
        rows = await measure(tmp or own)
    for line in rota_lines(rows):
        print(line)
    return rows


if __name__ == "__main__":
    asyncio.run(main())
