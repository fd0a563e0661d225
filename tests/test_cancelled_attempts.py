"""A job cancelled while it runs closes its attempt, on both stores: the
attempt says `cancelled`, with when and why, whichever way the cancel came
(the run cancelled, fail-fast, a newer run taking its concurrency group),
and stays so when the worker's late result or the lease's expiry follows."""

from __future__ import annotations

from server.reaper import reap_once
from tests.test_concurrency import doc
from tests.test_runs import claim, finish, put, start

TWO = "jobs:\n  a: {run: 'true'}\n  b: {run: 'true'}\n"


async def attempts(api, run: str, job: str) -> list[dict]:
    resp = await api.get(f"/api/runs/{run}/jobs/{job}")
    assert resp.status_code == 200, resp.text
    return resp.json()["attempts"]


def closed_cancelled(found: list[dict], worker: str = "w") -> bool:
    return (len(found) == 1 and found[0]["status"] == "cancelled" and found[0]["worker_id"] == worker
            and found[0]["finished_at"] is not None)


async def test_cancelling_a_run_closes_its_running_attempts(api, store):
    await put(api, "two", TWO)
    run = (await start(api, "two"))["run_id"]
    running = await claim(api)
    job = running["job"]["job_id"]
    assert (await api.post(f"/api/runs/{run}/cancel")).status_code == 202
    assert closed_cancelled(await attempts(api, run, job))
    # the worker's result after the cancel is refused and changes nothing
    lid = running["lease"]["lease_id"]
    assert (await api.post(f"/api/jobs/{lid}/complete", json={})).status_code == 409
    # nor does the lease of a worker that died meanwhile
    await store.redis.zadd(store.key("leases"), {lid: 0})
    await reap_once(store)
    assert closed_cancelled(await attempts(api, run, job))


async def test_fail_fast_closes_a_running_siblings_attempt(api):
    await put(api, "m", "jobs:\n  t:\n    strategy: {matrix: {n: [1, 2]}}\n    run: 'true'\n")
    run = (await start(api, "m"))["run_id"]
    first, second = await claim(api), await claim(api)
    await finish(api, first, ok=False)
    assert closed_cancelled(await attempts(api, run, second["job"]["job_id"]))


async def test_a_newer_run_cancelling_in_progress_closes_the_running_attempt(api):
    await put(api, "deploy", doc("{group: prod, cancel-in-progress: true}"))
    run = (await start(api, "deploy"))["run_id"]
    await claim(api)
    await start(api, "deploy")
    assert closed_cancelled(await attempts(api, run, "a"))
