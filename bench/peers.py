"""`make bench-peers`: rota beside the queues users would pick instead, on
this machine in one run, each on a fresh `redis-server --save ''
--appendonly no` of its own, one after the other; prints issue 19's table
with both sides and the ratio.

- workflow-graph (seed 002's server; its state in process memory): the
  claim->complete row, driven by wrk with bench/wrk_claim_complete.lua
  against both, and its server's CPU per job.
- BullMQ (npm `bullmq`, `ioredis`): bench/bullmq_bench.mjs, its own worker
  loop at concurrency 8 and 1, `addBulk`, a 50-job flow chain, Redis
  used_memory per queued job, and CPU per job (worker + Redis).

Where they are (a peer that is missing is skipped, saying so): ROTA_PEERS
(default: peers/ beside this checkout, or beside its parent directory for a
git worktree) holds bin/workflow-graph-server
(build it with ../shared/bench/build_anchor.sh) and bullmq/ (`npm init -y
&& npm install bullmq ioredis` there); WFG_SERVER and BULLMQ_DIR override
each. wrk (apt-get install wrk) drives the claim->complete row.

`--rounds N` repeats every side N times, alternating, and prints medians:
this machine's speed drifts by tens of percent within minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

import httpx

from bench import table
from tests.redis_proc import RedisProcess, free_port

ROOT = Path(__file__).resolve().parent.parent


def _peers_dir() -> Path:
    if os.environ.get("ROTA_PEERS"):
        return Path(os.environ["ROTA_PEERS"])
    # beside the checkout; a git worktree (wt/NAME) looks one level further up
    candidates = [ROOT.parent / "peers", ROOT.parent.parent / "peers"]
    return next((c for c in candidates if c.is_dir()), candidates[0])


PEERS = _peers_dir()
WFG_SERVER = Path(os.environ.get("WFG_SERVER") or PEERS / "bin" / "workflow-graph-server")
BULLMQ_DIR = Path(os.environ.get("BULLMQ_DIR") or PEERS / "bullmq")
BULLMQ_SCRIPT = Path(__file__).resolve().parent / "bullmq_bench.mjs"
BULLMQ_JOBS = 10_000


def missing_workflow_graph() -> Optional[str]:
    if not (WFG_SERVER.is_file() and os.access(WFG_SERVER, os.X_OK)):
        return f"workflow-graph not installed (no {WFG_SERVER}; build it with ../shared/bench/build_anchor.sh)"
    if not shutil.which("wrk"):
        return "workflow-graph skipped: its row needs wrk (apt-get install wrk)"
    return None


def missing_bullmq() -> Optional[str]:
    if not shutil.which("node"):
        return "BullMQ skipped: no node"
    if not (BULLMQ_DIR / "node_modules" / "bullmq").is_dir():
        return f"BullMQ not installed (no {BULLMQ_DIR}/node_modules/bullmq; npm install bullmq ioredis there)"
    return None


async def workflow_graph(tmp: str) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    empty = tempfile.mkdtemp(dir=tmp)  # no workflow files: only what the bench creates
    log = open(os.path.join(tmp, "workflow-graph.log"), "wb")
    proc = subprocess.Popen([str(WFG_SERVER)], env=dict(os.environ, PORT=str(port), WORKFLOWS_DIR=empty),
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/api/workflows", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"workflow-graph did not start; see {log.name}")
            time.sleep(0.1)
        # the shared claim_bench's pre-fill: enough for ~20,000 jobs/s
        await table.seed_prefill(url, table.WRK_SECS * 20 + 20)
        before = table.tree_cpu(proc.pid)
        result = await asyncio.to_thread(table.wrk_claim_complete, url)
        cpu = table.tree_cpu(proc.pid) - before
        result["cpu_ms"] = cpu * 1000 / max(1, result["completes"])
        return result
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def bullmq(tmp: str) -> dict:
    redis = RedisProcess(free_port(), tempfile.mkdtemp(dir=tmp))
    redis.start()
    try:
        done = subprocess.run(["node", str(BULLMQ_SCRIPT), str(redis.port), str(BULLMQ_JOBS)],
                              env=dict(os.environ, BULLMQ_DIR=str(BULLMQ_DIR)),
                              capture_output=True, text=True, timeout=900)
        line = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"bullmq_bench.mjs gave no result:\n{done.stdout}\n{done.stderr}")
        return json.loads(line[len("RESULT "):])
    finally:
        redis.stop()


def _median(samples: list[dict], *path: str) -> Optional[float]:
    values = []
    for sample in samples:
        value = sample
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(value)
    return statistics.median(values) if values else None


def rows(rota: list[dict], wfg: list[dict], bull: list[dict]) -> list[tuple]:
    """(what, rota's figure, peer, peer's figure, how to compare): `rate`
    (more is better), `time` and `cost` (less is better)."""
    m = _median
    return [
        ("claim→complete, seed protocol, 8 connections (wrk, 10 s; jobs/s)", m(rota, "wrk8", "jobs_per_s"),
         "workflow-graph", m(wfg, "jobs_per_s"), "rate"),
        ("the same, 8 worker loops, 10,000 jobs (jobs/s)", m(rota, "loops8"), "BullMQ, concurrency 8",
         m(bull, "c8"), "rate"),
        ("one worker loop (jobs/s)", m(rota, "loops1"), "BullMQ, concurrency 1", m(bull, "c1"), "rate"),
        ("batch protocol, 8 worker loops, 10,000 jobs (jobs/s; – where this checkout has none)",
         m(rota, "batch8"), "BullMQ, concurrency 8", m(bull, "c8"), "rate"),
        ("complete with the next claim, 8 worker loops (jobs/s)", m(rota, "next8"), "BullMQ, concurrency 8",
         m(bull, "c8"), "rate"),
        ("enqueue 10,000 jobs (jobs/s; rota 8 clients, BullMQ addBulk)", m(rota, "enqueue8"),
         "BullMQ", m(bull, "enqueue_c8"), "rate"),
        ("50-job chain through the protocol (s)", m(rota, "chain50"), "BullMQ flow", m(bull, "chain50_s"), "time"),
        ("16 loops, 10,000 jobs: two server processes (jobs/s)", m(rota, "loops16_two_processes"),
         "rota, one process", m(rota, "loops16_one_process"), "rate"),
        ("`rota worker` running `true`, concurrency 8 (jobs/s)", m(rota, "worker8"), None, None, "rate"),
        ("50-job chain through one `rota worker` (s)", m(rota, "worker_chain"), None, None, "time"),
        ("Redis used_memory per queued job, 2,000 jobs, definition included (B)", m(rota, "memory_per_job"),
         "BullMQ", m(bull, "memory_per_job"), "cost"),
        ("CPU per job, 8 loops: rota server + Redis; BullMQ worker + Redis (ms)", m(rota, "loops8_cpu", "cpu_ms"),
         "BullMQ", _sum(m(bull, "c8_cpu_ms_per_job"), m(bull, "c8_redis_cpu_ms_per_job")), "cost"),
        ("Redis CPU per job, 8 loops (ms)", m(rota, "loops8_cpu", "redis_cpu_ms"), "BullMQ",
         m(bull, "c8_redis_cpu_ms_per_job"), "cost"),
        ("CPU per job, wrk row: server + Redis (ms)", m(rota, "wrk8", "cpu", "cpu_ms"), "workflow-graph",
         m(wfg, "cpu_ms"), "cost"),
        ("CPU per job, batch protocol: rota server + Redis; workflow-graph's server (ms)",
         m(rota, "batch8_cpu", "cpu_ms"), "workflow-graph", m(wfg, "cpu_ms"), "cost"),
        ("idle dispatch, enqueue → claim of a parked long-poll, p50 (ms)", m(rota, "dispatch_p50_ms"), None, None,
         "time"),
    ]


def _sum(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else a + b


def _figure(value: Optional[float]) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _ratio(rota: Optional[float], peer: Optional[float], kind: str) -> str:
    if rota is None or peer is None or not rota or not peer:
        return ""
    if kind == "time":
        return f"{rota / peer:.1f}× slower" if rota > peer else f"{peer / rota:.1f}× faster"
    return f"{rota / peer:.2f}"


def render(table_rows: list[tuple]) -> str:
    lines = ["| what | rota | peer | peer's | ratio (rota ÷ peer) |", "|---|---|---|---|---|"]
    for what, ours, peer, theirs, kind in table_rows:
        lines.append(f"| {what} | {_figure(ours)} | {peer or ''} | {_figure(theirs) if peer else ''}"
                     f" | {_ratio(ours, theirs, kind)} |")
    return "\n".join(lines)


async def main_async(rounds: int) -> None:
    wfg_missing, bull_missing = missing_workflow_graph(), missing_bullmq()
    for reason in (wfg_missing, bull_missing):
        if reason:
            print(reason, flush=True)
    rota, wfg, bull = [], [], []
    with tempfile.TemporaryDirectory(prefix="rota-peers-") as tmp:
        for n in range(rounds):
            print(f"round {n + 1} of {rounds}", flush=True)
            if not wfg_missing:
                wfg.append(await workflow_graph(tmp))
                print(f"  workflow-graph: wrk {wfg[-1]['jobs_per_s']:,.0f} jobs/s", flush=True)
            if not bull_missing:
                bull.append(await asyncio.to_thread(bullmq, tmp))
                print(f"  BullMQ: {json.dumps(bull[-1])}", flush=True)
            rota.append(await table.measure(tmp, say=lambda line: print(line, flush=True)))
    print()
    print(f"Side by side, {os.cpu_count()} cores, loopback, medians of {rounds} round(s):")
    print(render(rows(rota, wfg, bull)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds, medians printed (default 1)")
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        raise SystemExit("bench-peers needs redis-server (apt-get install redis-server)")
    asyncio.run(main_async(max(1, args.rounds)))


if __name__ == "__main__":
    main()
