"""Drive a real server like a fleet does: many idle long-polling workers and
many SSE log tails from one event loop. Shared by tests/test_fleet_processes.py
(which asserts counts) and `make bench` (which prints times).

Raw keep-alive sockets (bench/http1.py) for the long-polls, so a thousand of
them cost this process little; httpx streams for the tails.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
import uuid
from dataclasses import dataclass, field

import httpx
import redis as redis_py

from bench.http1 import Conn
from worker.client.sse import SseParser, sse_lines


def lift_open_file_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def evalsha_calls(redis_url: str) -> int:
    """Scripts run so far on this Redis (every rota state change is one; the
    hot path's run as functions, FCALL).
    Refused calls do not count: while the script cache is cold, a burst of
    first calls each meets NOSCRIPT and sends the script again, and on a
    busy machine those bursts overlap whatever is being counted."""
    stats = redis_py.Redis.from_url(redis_url).info("commandstats")
    return sum(stats.get(name, {}).get("calls", 0) - stats.get(name, {}).get("failed_calls", 0)
               - stats.get(name, {}).get("rejected_calls", 0) for name in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_fcall"))


async def settled_evalsha_calls(redis_url: str) -> int:
    """The script count once the burst is over: parked claims are registered
    before their first attempt, which may still be queued for Redis. (The
    reaper's passes go on, a few a second at most.)"""
    last = evalsha_calls(redis_url)
    while True:
        await asyncio.sleep(0.3)
        now = evalsha_calls(redis_url)
        if now - last <= 3:
            return now
        last = now


def health(url: str) -> dict:
    """/healthz's figures; {} while it is not answering 200 (a busy server's
    Redis ping may take longer than /healthz waits): a wait goes on."""
    try:
        resp = httpx.get(url + "/healthz", timeout=30)
    except httpx.HTTPError:
        return {}
    return resp.json() if resp.status_code == 200 else {}


async def wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class ParkedFleet:
    """`n` workers, each with one long-poll claim parked on the server."""

    port: int
    n: int
    conns: list[Conn] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def park(self, url: str, wait_secs: float = 55) -> None:
        self.conns = [await Conn("127.0.0.1", self.port).open() for _ in range(self.n)]
        self.tasks = [asyncio.create_task(self._claim(conn, i, wait_secs)) for i, conn in enumerate(self.conns)]
        await wait_for(lambda: health(url).get("waiting_claims", 0) >= self.n, f"{self.n} parked claims")

    async def _claim(self, conn: Conn, i: int, wait_secs: float) -> tuple[int, dict | None, float]:
        status, body = await conn.post_json("/api/jobs/claim", {"worker_id": f"fleet-{i}", "wait_secs": wait_secs})
        return status, body, time.time() * 1000

    def answered(self) -> list[tuple[int, dict | None, float]]:
        return [t.result() for t in self.tasks if t.done()]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        # every outcome collected: no "Task exception was never retrieved" per claim
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for conn in self.conns:
            await conn.close()


def workflow(n: int, name: str = "fleet") -> dict:
    return {"name": f"{name}-{uuid.uuid4().hex[:6]}", "jobs": [{"id": f"j{i}", "command": "true"} for i in range(n)]}


async def submit(port: int, n: int) -> str:
    conn = await Conn("127.0.0.1", port).open()
    status, wf = await conn.post_json("/api/workflows?run=true", workflow(n))
    await conn.close()
    assert status == 201, wf
    return wf["id"]


async def tail(client: httpx.AsyncClient, wf: str, job: str, events: list[tuple[str, dict, float]]) -> None:
    """Reads one job's SSE stream to its end, recording (event, data, arrival ms)."""
    async with client.stream("GET", f"/api/workflows/{wf}/jobs/{job}/logs/stream") as resp:
        if resp.status_code != 200:
            events.append(("http", {"status": resp.status_code}, time.time() * 1000))
            return
        parser = SseParser()
        async for line in sse_lines(resp.aiter_bytes()):
            event = parser.feed(line)
            if event is not None:
                events.append((event.name, json.loads(event.data), time.time() * 1000))
                if event.name in ("end", "error"):
                    return


def stream_client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(120.0),
                             limits=httpx.Limits(max_connections=None, max_keepalive_connections=None))
