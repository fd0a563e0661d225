"""Daily operation over HTTP (issue 14, items 16-20), on both stores: an
admin removing workers, the job object a log tail ends with and the one a
workflow view shows, run listings by creation time, the seed views of a
never-started workflow, Restep's steps, log entries and heartbeats, and
one-off workflows found by name."""

from __future__ import annotations

import time

from tests.test_api import assert_error, create
from tests.test_auth import ADMIN, bearer, make_token
from tests.test_runs import YAML, claim, finish, put, start

ONE = "name: one\njobs:\n  build:\n    run: make\n    retries: 1\n"


async def ok(resp, status: int = 200):
    assert resp.status_code == status, resp.text
    return resp.json() if resp.content else None


async def running(api, wf: str = "one") -> tuple[dict, str]:
    await put(api, wf, ONE)
    run = (await start(api, wf))["run_id"]
    claimed = await claim(api)
    assert claimed is not None
    return claimed, run


# ---- 18: runs listed by creation time ----------------------------------------------------


async def test_runs_filter_by_creation_time_in_epoch_milliseconds(api):
    await put(api, "pipeline", "jobs:\n  a:\n    run: 'true'\n")
    first = await start(api, "pipeline")
    second = await start(api, "pipeline")
    now_ms = int(time.time() * 1000)
    page = await ok(await api.get(f"/api/runs?created_after={now_ms - 3_600_000}&created_before={now_ms + 3_600_000}"))
    assert {r["run_id"] for r in page["runs"]} == {first["run_id"], second["run_id"]}
    assert (await ok(await api.get(f"/api/runs?created_after={now_ms + 3_600_000}")))["runs"] == []
    assert (await ok(await api.get(f"/api/runs?created_before={first['created_at']}")))["runs"] == []
    if second["created_at"] > first["created_at"]:  # (the same millisecond is no test)
        newer = await ok(await api.get(f"/api/workflows/pipeline/runs?created_after={first['created_at']}"))
        assert [r["run_id"] for r in newer["runs"]] == [second["run_id"]]
    err = assert_error(await api.get("/api/runs?created_after=99999999999999999"), 422, "invalid_query")
    assert err["details"]["field"] == "created_after"
    assert_error(await api.get("/api/runs?created_before=yesterday"), 422, "invalid_query")


# ---- 18: a never-started workflow in the seed's listing ----------------------------------


async def test_a_never_started_workflow_is_listed_as_queued(api):
    idle = await create(api, run=False)
    started = await create(api)
    assert {j["status"] for j in (await ok(await api.get(f"/api/workflows/{idle['id']}/status")))["jobs"]} == {"queued"}
    queued = await ok(await api.get("/api/workflows?status=queued"))
    assert [w["id"] for w in queued] == [started["id"], idle["id"]]
    assert [w["id"] for w in await ok(await api.get("/api/workflows?status=running"))] == []
    paged = await ok(await api.get("/api/workflows?status=queued&limit=1&offset=1"))
    assert [w["id"] for w in paged] == [idle["id"]]


# ---- 18: Restep's steps and log entries -----------------------------------------------------


async def test_a_step_marked_running_keeps_the_current_step_name(api):
    claimed, run = await running(api)
    lid = claimed["lease"]["lease_id"]
    await ok(await api.post(f"/api/executions/{lid}/progress", json={
        "progress_percent": 20, "current_step_name": "Processing batch 3", "current_step_index": 2}))
    await ok(await api.post(f"/api/executions/{lid}/steps/7c0a4f6e-step/running"))
    job = await ok(await api.get(f"/api/runs/{run}/jobs/build"))
    assert (job["current_step"], job["current_step_index"]) == ("Processing batch 3", 2)
    # a step with a name (rota's worker sends one) still names the current step
    await ok(await api.post(f"/api/jobs/{lid}/steps/1/running", json={"name": "compile"}))
    job = await ok(await api.get(f"/api/runs/{run}/jobs/build"))
    assert (job["current_step"], job["current_step_index"]) == ("compile", 1)


async def test_log_entries_are_numbered_and_their_progress_counts(api):
    claimed, run = await running(api)
    lid = claimed["lease"]["lease_id"]
    await ok(await api.post(f"/api/executions/{lid}/log", json={"message": "one", "progress_percent": 10}))
    await ok(await api.post(f"/api/executions/{lid}/log", json={"logs": [
        {"message": "two"}, {"message": "three", "progress_percent": 30}, {"message": "four"}]}))
    logs = await ok(await api.get(f"/api/runs/{run}/jobs/build/logs"))
    assert [(c["data"], c["sequence"]) for c in logs] == [("one", 0), ("two", 1), ("three", 2), ("four", 3)]
    assert (await ok(await api.get(f"/api/runs/{run}/jobs/build")))["progress"] == 30.0
    # the next attempt's entries go on numbering; its progress starts afresh
    await ok(await api.post(f"/api/jobs/{lid}/fail", json={"error": "x", "retryable": True}))
    again = await claim(api)
    await ok(await api.post(f"/api/jobs/{again['lease']['lease_id']}/log", json={"message": "five"}))
    logs = await ok(await api.get(f"/api/runs/{run}/jobs/build/logs?attempt=1"))
    assert [(c["data"], c["sequence"]) for c in logs] == [("five", 4)]
    assert (await ok(await api.get(f"/api/runs/{run}/jobs/build")))["progress"] is None


# ---- 19: Restep's heartbeat interval -------------------------------------------------------


async def test_a_restep_heartbeat_holds_the_lease_past_a_minute(app, api):
    from server import limits

    claimed, run = await running(api)
    lid = claimed["lease"]["lease_id"]
    assert claimed["lease"]["ttl_secs"] == 30  # the seed worker's default
    native = await ok(await api.post(f"/api/jobs/{lid}/heartbeat"))
    now_ms = int(time.time() * 1000)
    assert native["expires_at_ms"] - now_ms <= 31_000  # rota's own heartbeat renews by the lease's TTL
    await ok(await api.post(f"/api/executions/{lid}/heartbeat"))
    store = app.state.store
    expires = await store.redis.zscore(store.prefix + "leases", lid)
    now_s, now_us = await store.redis.time()
    held_ms = expires - (now_s * 1000 + now_us // 1000)
    # Restep executors heartbeat every 30-60 s and time out after 5 minutes unheard
    assert held_ms > 120_000 and held_ms <= limits.RESTEP_LEASE_SECS * 1000
    # and what the reaper does after 61 s unheard changes nothing
    from server.reaper import reap_once

    await store.redis.zadd(store.prefix + "leases", {lid: expires - 61_000})
    await reap_once(store)
    assert (await ok(await api.get(f"/api/runs/{run}/jobs/build")))["status"] == "running"
    done = await ok(await api.post(f"/api/executions/{lid}/complete", json={}))
    assert done["data"]["status"] == "completed"


# ---- 17: the job object of a tail's end, and of a workflow's view ---------------------------


def end_event(body: str) -> str:
    return body.split("event: end\ndata: ", 1)[1].split("\n", 1)[0]


async def test_the_end_of_a_log_tail_is_the_job_as_get_shows_it(api):
    import json

    claimed, run = await running(api)
    lid = claimed["lease"]["lease_id"]
    await ok(await api.post(f"/api/jobs/{lid}/steps/0/running", json={"name": "compile"}))
    await ok(await api.post(f"/api/jobs/{lid}/annotate", json={"coverage": "91%"}))
    await finish(api, claimed)
    got = await ok(await api.get(f"/api/runs/{run}/jobs/build"))
    end = json.loads(end_event((await api.get(f"/api/runs/{run}/jobs/build/logs/stream")).text))
    assert end == got
    assert (end["command"], end["required_labels"], end["attempts"][0]["status"]) == ("make", [], "success")
    # the seed's path to the same tail ends the same way
    seed = json.loads(end_event((await api.get("/api/workflows/one/jobs/build/logs/stream")).text))
    assert seed == got


async def test_a_workflow_view_shows_the_steps_annotations_and_attempts_its_jobs_reported(api):
    claimed, run = await running(api)
    lid = claimed["lease"]["lease_id"]
    await ok(await api.post(f"/api/jobs/{lid}/steps/0/running", json={"name": "compile"}))
    await ok(await api.post(f"/api/jobs/{lid}/annotate", json={"coverage": "91%"}))
    in_run = (await ok(await api.get(f"/api/runs/{run}/jobs/build")))
    for path in ("/api/workflows/one", "/api/workflows/one/status"):
        (job,) = (await ok(await api.get(path)))["jobs"]
        assert (job["steps"], job["annotations"], job["attempts"]) == (
            in_run["steps"], {"coverage": "91%"}, in_run["attempts"]), path
        assert job["steps"][0]["name"] == "compile"
    (listed,) = await ok(await api.get("/api/workflows"))
    assert listed["jobs"][0]["annotations"] == {"coverage": "91%"} and listed["jobs"][0]["steps"]
