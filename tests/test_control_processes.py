"""Run control across real processes on one real Redis: many runs started
at once through two server replicas never run more than a group's limit
(from the runs' own records), and a paused label drains a real `rota
worker` without stopping it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.procs import WorkerProc, rota, wait_until
from tests.redis_proc import redis_server
from tests.server_proc import ServerProcess
from tests.test_concurrency import max_overlap

pytestmark = pytest.mark.slow

RUNS = 40
RACE = """
concurrency: {group: race, limit: 3, queue: max}
jobs:
  a: {run: 'true'}
  b:
    needs: a
    run: 'true'
    concurrency: {group: race-b, queue: max}
"""


@pytest.fixture(scope="module")
def redis():
    with redis_server() as proc:
        yield proc


@pytest.fixture(scope="module")
def replicas(redis):
    with ServerProcess(redis.url) as one, ServerProcess(redis.url) as two:
        yield one, two


async def test_a_group_limit_holds_across_two_replicas(replicas):
    one, two = replicas
    async with httpx.AsyncClient(base_url=one.url, timeout=30) as a, \
            httpx.AsyncClient(base_url=two.url, timeout=30) as b:
        put = await a.put("/api/workflows/race", content=RACE, headers={"content-type": "application/yaml"})
        assert put.status_code == 201, put.text
        starts = await asyncio.gather(*(api.post("/api/workflows/race/runs", json={})
                                        for api in [a, b] * (RUNS // 2)))
        assert [s.status_code for s in starts] == [201] * RUNS
        runs = [s.json()["run_id"] for s in starts]
        most_seen = 0

        async def worker(api: httpx.AsyncClient, name: str) -> None:
            nonlocal most_seen
            while True:
                claim = (await api.post("/api/jobs/claim", json={"worker_id": name, "wait_secs": 1})).json()
                if claim is None:
                    if all(s == "success" for s in await statuses()):
                        return
                    continue
                groups = (await api.get("/api/concurrency-groups", params={"group": "race"})).json()["groups"]
                most_seen = max([most_seen] + [len(g["running"]) for g in groups])
                done = await api.post(f"/api/jobs/{claim['lease']['lease_id']}/complete", json={"outputs": {}})
                assert done.status_code == 200, done.text

        async def statuses() -> list[str]:
            return [(await a.get(f"/api/runs/{r}")).json()["status"] for r in runs]

        await asyncio.wait_for(asyncio.gather(*(worker(api, f"w{i}") for i, api in enumerate([a, b] * 3))), 300)
        records = [(await b.get(f"/api/runs/{r}")).json() for r in runs]
    assert {r["status"] for r in records} == {"success"}
    assert 1 <= most_seen <= 3
    assert max_overlap(records) <= 3, "never more than the limit of runs running at once"
    deploys = [next(j for j in r["jobs"] if j["id"] == "b")["attempts"][0] for r in records]
    assert max_overlap([{"started_at": x["started_at"], "finished_at": x["finished_at"]} for x in deploys]) == 1
    assert "Traceback" not in one.output() + two.output()


def test_a_paused_label_drains_a_real_worker_without_stopping_it(replicas, tmp_path, label):
    one, two = replicas
    worker = WorkerProc(one, tmp_path, "drained", "--labels", label, "--claim-wait", "1")
    try:
        doc = f"jobs:\n  a: {{run: 'true', labels: [{label}]}}\n"
        assert httpx.put(f"{two.url}/api/workflows/drain", content=doc,
                         headers={"content-type": "application/yaml"}).status_code == 201
        paused = rota("pause", "--label", label, server=two)
        assert paused.returncode == 0, paused.stderr
        run = httpx.post(f"{two.url}/api/workflows/drain/runs", json={}).json()["run_id"]

        def polls() -> int:
            found = [w for w in httpx.get(f"{one.url}/api/workers").json() if w["worker_id"] == "drained"]
            return found[0]["last_seen_ms"] if found else 0

        seen = polls()
        wait_until(lambda: polls() > seen, "the worker to poll again while its label is paused", timeout=60,
                   logs=worker.log)
        assert httpx.get(f"{one.url}/api/runs/{run}").json()["status"] == "queued"
        listed = rota("workers", server=one).stdout
        assert f"{label} (paused)" in listed
        assert worker.popen.poll() is None, "the worker keeps running"
        assert rota("resume", "--label", label, server=one).returncode == 0
        wait_until(lambda: httpx.get(f"{two.url}/api/runs/{run}").json()["status"] == "success",
                   "the run to finish once the label resumed", timeout=60, logs=worker.log)
    finally:
        worker.stop()
