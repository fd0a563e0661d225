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


# ---- 16: an admin removes workers -----------------------------------------------------------


async def set_last_seen(store, worker: str, ms_ago: int) -> int:
    now_s, now_us = await store.redis.time()
    at = now_s * 1000 + now_us // 1000 - ms_ago
    await store.redis.hset(f"{store.prefix}worker:{worker}", "last_seen", at)
    await store.redis.zadd(store.prefix + "workers", {worker: at})
    return at


async def test_an_admin_removes_any_workers_entry_keeping_its_last_seen_time(auth_app, auth_api):
    store = auth_app.state.store
    fleet = bearer((await make_token(auth_api, "worker", name="fleet"))["token"])
    other = bearer((await make_token(auth_api, "worker", name="other-fleet"))["token"])
    admins = bearer((await make_token(auth_api, "admin", name="ops"))["token"])
    for box in ("box-1", "box-2"):
        await ok(await auth_api.post("/api/workers/register", json={"worker_id": box}, headers=fleet))
    seen = await set_last_seen(store, "box-1", 3 * 86_400_000)  # gone three days ago
    # another fleet's token may not; the bootstrap admin and any admin-scoped token may
    assert_error(await auth_api.delete("/api/workers/box-1", headers=other), 409, "worker_id_taken")
    assert (await auth_api.delete("/api/workers/box-1", headers=ADMIN)).status_code == 204
    assert (await auth_api.delete("/api/workers/box-2", headers=admins)).status_code == 204
    workers = {w["worker_id"]: w for w in await ok(await auth_api.get("/api/workers", headers=ADMIN))}
    assert (workers["box-1"]["status"], workers["box-1"]["last_seen_ms"]) == ("stopped", seen)
    assert workers["box-2"]["status"] == "stopped"
    # the fleet still owns its ids: removing took nothing over
    assert (await auth_api.post("/api/workers/register", json={"worker_id": "box-1"}, headers=fleet)).status_code == 200
    assert_error(await auth_api.delete("/api/workers/ghost", headers=ADMIN), 404, "worker_not_found")


async def test_a_removed_worker_that_is_still_running_shows_again_when_it_is_next_seen(app, api):
    from server.reaper import reap_once

    store = app.state.store
    await ok(await api.post("/api/workers/register", json={"worker_id": "alive"}))
    await set_last_seen(store, "alive", 5_000)
    assert (await api.delete("/api/workers/alive")).status_code == 204
    assert (await ok(await api.get("/api/workers")))[0]["status"] == "stopped"
    await claim(api, "alive")  # its next claim (nothing to run)
    assert (await ok(await api.get("/api/workers")))[0]["status"] == "idle"
    await store.redis.zadd(store.prefix + "stopped", {"alive": 0})  # ten minutes on
    await reap_once(store)
    assert [w["worker_id"] for w in await ok(await api.get("/api/workers"))] == ["alive"]


async def test_prune_removes_the_workers_gone_or_unseen_for_long(app, api):
    store = app.state.store
    for name in ("fresh", "offline", "week-old"):
        await ok(await api.post("/api/workers/register", json={"worker_id": name, "claim_wait_secs": 30,
                                                                "lease_ttl_secs": 30}))
    await set_last_seen(store, "offline", 120_000)  # past its 65 s grace
    await set_last_seen(store, "week-old", 7 * 86_400_000)
    pruned = await ok(await api.delete("/api/workers"))  # the ones that show offline or lost
    assert (sorted(pruned["removed"]), pruned["more"]) == (["offline", "week-old"], False)
    status = {w["worker_id"]: w["status"] for w in await ok(await api.get("/api/workers"))}
    assert status == {"fresh": "idle", "offline": "stopped", "week-old": "stopped"}
    assert (await ok(await api.delete("/api/workers")))["removed"] == []  # already removed
    await ok(await api.post("/api/workers/register", json={"worker_id": "offline"}))
    await set_last_seen(store, "offline", 120_000)
    by_age = await ok(await api.delete("/api/workers?unseen_for_secs=86400"))
    assert by_age["removed"] == []  # two minutes is not a day
    assert (await ok(await api.delete("/api/workers?unseen_for_secs=60")))["removed"] == ["offline"]
    assert_error(await api.delete("/api/workers?unseen_for_secs=0"), 422, "invalid_query")


async def test_prune_is_for_admins(auth_api):
    fleet = bearer((await make_token(auth_api, "worker", name="fleet"))["token"])
    assert_error(await auth_api.delete("/api/workers", headers=fleet), 403, "forbidden")
    assert (await auth_api.delete("/api/workers", headers=ADMIN)).status_code == 200


# ---- 20: one-off workflows by name ---------------------------------------------------------


BATCH = {"name": "batch job", "jobs": [{"id": "a", "command": "true"}]}


async def test_resolve_says_what_a_name_stands_for(api):
    first = await create(api, BATCH)
    await put(api, "ci", ONE)
    run = await start(api, "ci")
    assert await ok(await api.get("/api/resolve/batch job")) == {
        "kind": "workflow", "workflow_id": first["id"], "run_id": first["latest_run_id"], "matched": "name"}
    assert await ok(await api.get(f"/api/resolve/{first['id']}")) == {
        "kind": "workflow", "workflow_id": first["id"], "run_id": first["latest_run_id"], "matched": "workflow_id"}
    assert await ok(await api.get(f"/api/resolve/{run['run_id']}")) == {
        "kind": "run", "workflow_id": "ci", "run_id": run["run_id"], "matched": "run_id"}
    idle = await create(api, {**BATCH, "name": "idle"}, run=False)
    assert (await ok(await api.get("/api/resolve/idle")))["run_id"] is None
    assert_error(await api.get("/api/resolve/nothing"), 404, "ref_not_found")
    second = await create(api, BATCH, run=False)
    err = assert_error(await api.get("/api/resolve/batch job"), 409, "ambiguous_name")
    assert err["details"]["workflow_ids"] == [second["id"], first["id"]]
    # gone with its workflow, and with a PUT that takes its id over
    assert (await api.delete(f"/api/workflows/{second['id']}")).status_code == 204
    assert (await ok(await api.get("/api/resolve/batch job")))["workflow_id"] == first["id"]
    await api.put(f"/api/workflows/{idle['id']}", content=b"name: idle\njobs:\n  a:\n    run: 'true'\n",
                  headers=YAML)
    assert_error(await api.get("/api/resolve/idle"), 404, "ref_not_found")  # a definition now: by its id
    assert_error(await api.get("/api/resolve/" + "x" * 300), 422, "invalid_ref")


async def test_a_purged_one_off_is_no_longer_found_by_name(app, api):
    from server.reaper import reap_once

    store = app.state.store
    made = await create(api, BATCH, run=False)
    await store.redis.zadd(store.prefix + "oneoffs", {made["id"]: 0})  # its retention is up
    await reap_once(store)
    assert_error(await api.get("/api/resolve/batch job"), 404, "ref_not_found")


async def test_log_lines_name_a_one_off_workflow_by_its_name(api, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="rota")
    made = await create(api, BATCH, run=False)
    run = (await ok(await api.post(f"/api/workflows/{made['id']}/runs", json={}), 201))["run_id"]
    await finish(api, await claim(api))
    said = [r.getMessage() for r in caplog.records if r.name == "rota.events"]
    assert f"run {run} (batch job #1) started by api" in said
    assert any(line.startswith(f"run {run} (batch job #1) finished: success in ") for line in said), said
