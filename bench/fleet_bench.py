"""Fleet figures: idle long-polling workers and SSE tails at scale.

- For 1, 100 and 1,000 idle workers parked in long-poll claims: enqueue ->
  claim latency (p50/p99; the job's enqueue time is Redis's clock, the
  arrival this machine's, the same clock here), claim scripts run per job
  (INFO commandstats), and how many answers were 503 (must be 0).
- For 1,000 SSE tails of one running job: the time from a chunk's push to
  its arrival at the last of the tails (p50/p99).
"""

from __future__ import annotations

import asyncio
import json
import time

from bench.http1 import Conn
from worker.client.sse import SseParser, sse_lines
from tests.fleet import (
    ParkedFleet,
    evalsha_calls,
    health,
    lift_open_file_limit,
    settled_evalsha_calls,
    stream_client,
    submit,
    wait_for,
)

SAMPLES = 100
CHUNKS = 20


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def idle_fleet(url: str, port: int, redis_url: str, workers: int) -> str:
    fleet = ParkedFleet(port, workers)
    await fleet.park(url)
    latencies, refused = [], 0
    scripts_before = await settled_evalsha_calls(redis_url)
    try:
        for _ in range(SAMPLES):
            before = {t for t in fleet.tasks if t.done()}
            await submit(port, 1)
            await wait_for(lambda before=before: len([t for t in fleet.tasks if t.done()]) > len(before), "a claim")
            for task in [t for t in fleet.tasks if t.done() and t not in before]:
                status, body, arrived_ms = task.result()
                if status == 503:
                    refused += 1
                elif body:
                    latencies.append(arrived_ms - body["job"]["enqueued_at_ms"])
                # that worker asks again, as a real one would
                i = fleet.tasks.index(task)
                fleet.tasks[i] = asyncio.create_task(fleet._claim(fleet.conns[i], i, 55))
        # less one create per job; each worker's re-poll runs one claim too
        scripts = (evalsha_calls(redis_url) - scripts_before - SAMPLES) / SAMPLES
    finally:
        await fleet.close()
    return (f"  {workers:>5} idle long-polling workers: enqueue->claim p50 {pct(latencies, 50):.2f} ms, "
            f"p99 {pct(latencies, 99):.2f} ms; {scripts:.2f} claim scripts per job; {refused} answered 503")


async def tails(url: str, port: int, n: int) -> str:
    wf = await submit(port, 1)
    conn = await Conn("127.0.0.1", port).open()
    _, claim = await conn.post_json("/api/jobs/claim", {"worker_id": "bench-tails"})
    lease = claim["lease"]["lease_id"]
    arrivals: list[dict[int, float]] = [dict() for _ in range(n)]

    async def one(i: int, client) -> None:
        async with client.stream("GET", f"/api/workflows/{wf}/jobs/j0/logs/stream") as resp:
            assert resp.status_code == 200, resp.status_code
            parser = SseParser()
            async for line in sse_lines(resp.aiter_bytes()):
                event = parser.feed(line)
                if event is None:
                    continue
                if event.name == "end":
                    return
                if event.name == "log":
                    arrivals[i][json.loads(event.data)["sequence"]] = time.perf_counter()

    async with stream_client(url) as client:
        readers = [asyncio.create_task(one(i, client)) for i in range(n)]
        await wait_for(lambda: health(url).get("open_streams", 0) >= n, f"{n} open tails")
        # Opening the tails may take longer than uvicorn keeps an idle
        # connection open (5 s) on a busy machine: push on a fresh one.
        await conn.close()
        conn = await Conn("127.0.0.1", port).open()
        pushed: dict[int, float] = {}
        for seq in range(CHUNKS):
            pushed[seq] = time.perf_counter()
            chunk = {"workflow_id": wf, "job_id": "j0", "sequence": seq, "data": "x\n", "timestamp_ms": 1}
            status, _ = await conn.post_json(f"/api/jobs/{lease}/logs", {"chunks": [chunk]})
            assert status == 200
            await wait_for(lambda seq=seq: all(seq in a for a in arrivals), "the chunk at every tail", timeout=60)
        await conn.post_json(f"/api/jobs/{lease}/complete", {"outputs": {}})
        await asyncio.wait_for(asyncio.gather(*readers), 60)
    await conn.close()
    last = [(max(a[seq] for a in arrivals) - pushed[seq]) * 1000 for seq in range(CHUNKS)]
    return (f"  {n} SSE tails of one job: chunk push -> arrival at the last tail p50 {pct(last, 50):.1f} ms, "
            f"p99 {pct(last, 99):.1f} ms ({CHUNKS} chunks)")


async def main(url: str, port: int, redis_url: str) -> None:
    lift_open_file_limit(4096)
    for workers in (1, 100, 1000):
        print(await idle_fleet(url, port, redis_url, workers), flush=True)
    print(await tails(url, port, 1000), flush=True)
