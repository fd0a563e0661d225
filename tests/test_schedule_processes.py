"""Schedules with real processes and the real clock: two server replicas on
one Redis fire each tick once, through a Redis restart and the kill -9 of
one replica; an API_ONLY server leaves them to `python -m server.reaper`;
and one real per-minute tick in-process. Ticks come every two seconds
through cron's seconds field; the assertions are on what was recorded
(each tick's run, once), never on how long anything took."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx
import pytest

from tests.redis_proc import redis_server
from tests.server_proc import ServerProcess

pytestmark = pytest.mark.slow
EVERY_2S = "on:\n  schedule: [{cron: '*/2 * * * * *', catch-up: all}]\njobs:\n  a: {run: 'true'}\n"
FAST = {"SCHEDULE_INTERVAL_SECS": "0.2"}


def wait_for(predicate, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except httpx.HTTPError:
            value = None  # a server or Redis restarting
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def cron_ticks(client: httpx.Client, wf: str) -> list[int]:
    runs = client.get(f"/api/workflows/{wf}/runs", params={"limit": 1000}).json()["runs"]
    return sorted(r["scheduled_at"] for r in runs if r["triggered_by"] == "cron")


def at_least(client: httpx.Client, wf: str, n: int):
    return lambda: len(cron_ticks(client, wf)) >= n


def test_two_replicas_fire_each_tick_once_through_a_redis_restart_and_a_kill():
    with redis_server(appendonly=True) as redis, ServerProcess(redis.url, **FAST) as one, \
            ServerProcess(redis.url, **FAST) as two:
        first, second = httpx.Client(base_url=one.url, timeout=30), httpx.Client(base_url=two.url, timeout=30)
        assert first.put("/api/workflows/tick", content=EVERY_2S,
                         headers={"Content-Type": "application/yaml"}).status_code == 201
        wait_for(at_least(second, "tick", 4), "four ticks with both replicas")
        redis.stop()
        redis.start()  # same port and directory: the append-only file brings the schedule back
        before = len(wait_for(lambda: cron_ticks(second, "tick"), "the store after the restart"))
        wait_for(at_least(second, "tick", before + 3), "three more ticks after Redis came back")
        one.kill()  # kill -9: whatever it was doing, a tick is claimed whole or not at all
        before = len(cron_ticks(second, "tick"))
        wait_for(at_least(second, "tick", before + 3), "three more ticks from the replica left")
        ticks = cron_ticks(second, "tick")
        assert len(ticks) == len(set(ticks)), "a tick started two runs"
        # catch-up: all, so the ticks missed while Redis was away were fired after: no gap
        assert ticks == list(range(ticks[0], ticks[-1] + 1, 2000))
        first.close()
        second.close()


def test_an_api_only_server_leaves_schedules_to_the_standalone_reaper():
    with redis_server() as redis, ServerProcess(redis.url, API_ONLY="1", **FAST) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.put("/api/workflows/tick", content=EVERY_2S,
                          headers={"Content-Type": "application/yaml"}).status_code == 201
        reaper = subprocess.Popen([sys.executable, "-m", "server.reaper"], env=dict(server.env, REDIS_URL=redis.url),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(at_least(client, "tick", 2), "the standalone reaper's scheduler to fire two ticks")
        finally:
            reaper.terminate()
            reaper.wait(10)


async def test_a_real_per_minute_tick(api, backend):
    """The app's own scheduler on the real clock (Redis TIME): one tick of a
    per-minute cron starts one run. Up to a minute's wait, on real Redis only."""
    if backend != "redis":
        pytest.skip("one real minute is enough: real Redis only")
    resp = await api.put("/api/workflows/minutely", content="on: {schedule: [{cron: '* * * * *'}]}\n"
                         "jobs: {a: {run: 'true'}}\n", headers={"Content-Type": "application/yaml"})
    assert resp.status_code == 201
    (schedule,) = (await api.get("/api/schedules")).json()
    deadline = time.monotonic() + 150
    runs: list = []
    while not runs and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        runs = (await api.get("/api/workflows/minutely/runs")).json()["runs"]
    assert runs, "no tick fired within 150 s"
    (run,) = runs
    assert run["triggered_by"] == "cron" and run["scheduled_at"] == schedule["next_fire_at"]
    assert run["created_at"] >= run["scheduled_at"]
