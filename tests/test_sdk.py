"""The in-job SDK over HTTP, on both stores: what a running job reports
(progress, log entries, steps, checkpoints, state, annotations, outputs,
resources), the jobs it spawns, its waits for events, and what an operator
sees of each in the job's status and the run's events."""

from __future__ import annotations

import json

import pytest

from server.reaper import reap_once
from tests.test_api import assert_error
from tests.test_runs import YAML, claim, finish, put, start

ONE = """
name: one
jobs:
  build:
    run: make
    retries: 2
"""

CHAIN = """
name: chain
jobs:
  build:
    run: make
  test:
    needs: build
    run: make test
"""


async def running(api, doc: str = ONE, wf: str = "one") -> tuple[dict, str]:
    """(the claim of the workflow's first job, its run id)."""
    await put(api, wf, doc)
    run = (await start(api, wf))["run_id"]
    claimed = await claim(api)
    assert claimed is not None
    return claimed, run


def url(claimed: dict, call: str) -> str:
    return f"/api/jobs/{claimed['lease']['lease_id']}/{call}"


async def job_view(api, run: str, job: str = "build") -> dict:
    resp = await api.get(f"/api/runs/{run}/jobs/{job}")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def events(api, run: str, kind: str) -> list[dict]:
    resp = await api.get(f"/api/runs/{run}/events", params={"type": kind})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def ok(resp, status: int = 200) -> dict:
    assert resp.status_code == status, resp.text
    return resp.json()


# ---- progress, logs, steps --------------------------------------------------------------


async def test_progress_shows_in_the_job_and_as_an_event(api):
    claimed, run = await running(api)
    assert (await job_view(api, run))["progress"] is None
    await ok(await api.post(url(claimed, "progress"), json={
        "progress_percent": 45, "current_step_name": "batch 3", "current_step_index": 2,
        "metadata": {"records": 3000}}))
    job = await job_view(api, run)
    assert (job["progress"], job["current_step"], job["current_step_index"]) == (45.0, "batch 3", 2)
    assert job["progress_metadata"] == {"records": 3000}
    assert [e["detail"] for e in await events(api, run, "progress")] == ["45% batch 3"]


async def test_progress_out_of_range_is_422_naming_the_field(api):
    claimed, run = await running(api)
    err = assert_error(await api.post(url(claimed, "progress"), json={"progress_percent": 101}), 422)
    assert "progress_percent" in json.dumps(err)
    assert (await job_view(api, run))["progress"] is None


async def test_log_entries_join_the_job_log_beside_its_output_and_filter_by_level(api):
    claimed, run = await running(api)
    job = claimed["job"]
    chunk = {"workflow_id": job["workflow_id"], "job_id": "build", "sequence": 0, "data": "compiling\n",
             "timestamp_ms": 1}
    await ok(await api.post(url(claimed, "logs"), json={"chunks": [chunk]}))
    single = await ok(await api.post(url(claimed, "log"), json={
        "level": "warn", "message": "disk almost full", "log_data": {"free_mb": 12}, "step": "1"}))
    assert single["count"] == 1
    batch = await ok(await api.post(url(claimed, "log"), json={"logs": [
        {"level": "debug", "message": "query ran"}, {"level": "error", "message": "retrying"}]}))
    assert batch["count"] == 2

    logs = await ok(await api.get(f"/api/runs/{run}/jobs/build/logs"))
    assert [c.get("level") for c in logs] == [None, "warn", "debug", "error"]
    assert logs[0] == {**chunk, "stream": "stdout", "attempt": 0}  # an output chunk reads as before
    entry = logs[1]
    assert (entry["stream"], entry["data"], entry["log_data"], entry["step"]) == (
        "event", "disk almost full", {"free_mb": 12}, "1")
    warn_up = await ok(await api.get(f"/api/runs/{run}/jobs/build/logs", params={"level": "warn"}))
    assert [c["data"] for c in warn_up] == ["disk almost full", "retrying"]
    assert_error(await api.get(f"/api/runs/{run}/jobs/build/logs", params={"level": "loud"}), 422)


async def test_a_log_without_message_or_logs_is_422(api):
    claimed, _ = await running(api)
    err = assert_error(await api.post(url(claimed, "log"), json={"level": "info"}), 422)
    assert err["details"]["field"] == "$.message"


async def test_steps_show_status_duration_exit_code_and_artifacts_become_the_checkpoint(api):
    claimed, run = await running(api)
    await ok(await api.post(url(claimed, "steps/0/running"), json={"name": "compile"}))
    assert (await job_view(api, run))["current_step"] == "compile"
    await ok(await api.post(url(claimed, "steps/0/completed"), json={
        "exit_code": 0, "result_data": {"rows": 3}, "artifacts": {"cursor": 7}}))
    await ok(await api.post(url(claimed, "steps/1/running"), json={"name": "test"}))
    await ok(await api.post(url(claimed, "steps/1/failed"), json={
        "exit_code": 2, "error_message": "3 tests failed", "error_type": "TestFailure"}))
    steps = (await job_view(api, run))["steps"]
    assert [(s["id"], s["name"], s["status"], s["exit_code"]) for s in steps] == [
        ("0", "compile", "completed", 0), ("1", "test", "failed", 2)]
    assert steps[0]["duration_ms"] is not None and steps[0]["result_data"] == {"rows": 3}
    assert steps[1]["error_type"] == "TestFailure"
    cps = await ok(await api.get(f"/api/runs/{run}/jobs/build/checkpoints"))
    assert [c["data"] for c in cps] == [{"cursor": 7}]
    assert {e["detail"] for e in await events(api, run, "step")} >= {"step 0 completed", "step 1 failed"}


async def test_a_skipped_step_shows_skipped_with_why_and_no_duration(api):
    """What rota worker reports of a step whose if: is false (or that an
    earlier failure skips)."""
    claimed, run = await running(api)
    await ok(await api.post(url(claimed, "steps/0/running"), json={"name": "test"}))
    await ok(await api.post(url(claimed, "steps/0/failed"), json={"name": "test", "exit_code": 1}))
    await ok(await api.post(url(claimed, "steps/1/skipped"), json={"name": "ship",
                                                                   "error_message": "an earlier step failed"}))
    steps = (await job_view(api, run))["steps"]
    assert [(s["id"], s["status"]) for s in steps] == [("0", "failed"), ("1", "skipped")]
    assert steps[1]["error_message"] == "an earlier step failed"
    assert steps[1]["duration_ms"] == 0 and steps[1]["exit_code"] is None
    assert [e["detail"] for e in await events(api, run, "step")][-1] == "step 1 skipped"


async def test_the_seed_paths_keep_their_own_step_states(api):
    claimed, _ = await running(api)
    lease = claimed["lease"]["lease_id"]
    assert (await api.post(f"/api/executions/{lease}/steps/0/skipped", json={})).status_code in (404, 405)


async def test_unknown_step_state_is_not_a_route(api):
    claimed, _ = await running(api)
    assert (await api.post(url(claimed, "steps/0/exploded"), json={})).status_code in (404, 405)


# ---- checkpoints --------------------------------------------------------------------------


async def test_the_next_attempt_gets_the_latest_checkpoint(api):
    claimed, run = await running(api)
    await ok(await api.post(url(claimed, "checkpoint"), json={"data": {"done": 10}}))
    await ok(await api.post(url(claimed, "checkpoint"), json={"data": {"done": 20}}))
    assert claimed["job"]["checkpoint"] is None
    await finish(api, claimed, ok=False, retryable=True)
    again = await claim(api)
    assert again["job"]["attempt"] == 1 and again["job"]["checkpoint"] == {"done": 20}
    payload = await ok(await api.get(url(again, "payload")))
    assert payload["checkpoint"] == {"done": 20}
    # every checkpoint is kept, numbered in the run, with what saved it
    cps = await ok(await api.get(f"/api/runs/{run}/jobs/build/checkpoints"))
    assert [(c["sequence"], c["attempt"], c["source"], c["data"]) for c in cps] == [
        (1, 0, "checkpoint", {"done": 10}), (2, 0, "checkpoint", {"done": 20})]
    assert await ok(await api.get(f"/api/runs/{run}/checkpoints")) == cps


async def test_a_checkpoint_survives_a_lost_lease(api, store):
    claimed, run = await running(api)
    await ok(await api.post(url(claimed, "checkpoint"), json={"step": 3}))  # Strait's form: the body whole
    await store.redis.zadd(store.key("leases"), {claimed["lease"]["lease_id"]: 0})
    await reap_once(store)
    again = await claim(api, worker="w2")
    assert again["job"]["checkpoint"] == {"step": 3}


async def test_a_checkpoint_over_a_megabyte_is_422_and_not_saved(api):
    claimed, run = await running(api)
    err = assert_error(await api.post(url(claimed, "checkpoint"), json={"data": "x" * (1024 * 1024 + 1)}), 422)
    assert err["details"]["field"] == "data"
    assert await ok(await api.get(f"/api/runs/{run}/jobs/build/checkpoints")) == []


# ---- run state ---------------------------------------------------------------------------------


async def test_state_is_shared_by_the_jobs_of_a_run(api):
    doc = """
name: pair
jobs:
  a: {run: a}
  b: {run: b}
"""
    await put(api, "pair", doc)
    run = (await start(api, "pair"))["run_id"]
    first, second = await claim(api, "w1"), await claim(api, "w2")
    await ok(await api.put(url(first, "state/version"), json={"value": {"major": 2}}))
    await ok(await api.post(url(first, "state"), json={"key": "seen", "value": ["a"]}))
    assert await ok(await api.get(url(second, "state/version"))) == {"key": "version", "value": {"major": 2}}
    assert await ok(await api.get(url(second, "state"))) == {"version": {"major": 2}, "seen": ["a"]}
    await ok(await api.delete(url(second, "state/seen")))
    assert_error(await api.get(url(first, "state/seen")), 404, "state_key_not_found")
    assert await ok(await api.get(f"/api/runs/{run}/state")) == {"version": {"major": 2}}
    # another run of the workflow has its own
    await start(api, "pair")
    third = await claim(api, "w3")
    assert await ok(await api.get(url(third, "state"))) == {}


async def test_state_limits_are_enforced_before_anything_is_stored(api, monkeypatch):
    from server import limits

    claimed, run = await running(api)
    err = assert_error(await api.put(url(claimed, "state/big"), json={"value": "x" * (64 * 1024)}), 422)
    assert err["details"]["field"] == "value"
    assert_error(await api.put(url(claimed, "state/bad%20key"), json={"value": 1}), 422, "invalid_key")
    monkeypatch.setattr(limits, "MAX_STATE_KEYS", 2)
    await ok(await api.put(url(claimed, "state/k1"), json={"value": 1}))
    await ok(await api.put(url(claimed, "state/k2"), json={"value": 2}))
    assert_error(await api.put(url(claimed, "state/k3"), json={"value": 3}), 422, "limit_exceeded")
    await ok(await api.put(url(claimed, "state/k2"), json={"value": 22}))  # an existing key may change
    assert await ok(await api.get(f"/api/runs/{run}/state")) == {"k1": 1, "k2": 22}


# ---- annotations, outputs, resources ----------------------------------------------------------


async def test_annotations_on_the_job_and_notes_on_the_run(api):
    claimed, run = await running(api)
    await ok(await api.post(url(claimed, "annotate"), json={"coverage": "81%", "commit": "abc"}))
    await ok(await api.post(url(claimed, "annotate"), json={"coverage": "83%"}))
    assert (await job_view(api, run))["annotations"] == {"coverage": "83%", "commit": "abc"}
    note = {"markdown": "**2 warnings**", "style": "warning", "context": "lint"}
    await ok(await api.post(url(claimed, "annotate"), json=note))
    await ok(await api.post(url(claimed, "annotate"), json={**note, "markdown": "**clean**", "style": "success"}))
    notes = (await ok(await api.get(f"/api/runs/{run}")))["notes"]
    assert [(n["context"], n["style"], n["markdown"], n["job_id"]) for n in notes] == [
        ("lint", "success", "**clean**", "build")]
    assert_error(await api.post(url(claimed, "annotate"), json={"n": 3}), 422)


async def test_outputs_set_while_running_merge_under_completes(api):
    claimed, run = await running(api, CHAIN, "chain")
    await ok(await api.post(url(claimed, "output"), json={"version": "1.2", "image": "draft"}))
    assert (await job_view(api, run))["outputs"] == {"version": "1.2", "image": "draft"}
    await finish(api, claimed, outputs={"image": "final"})
    assert (await job_view(api, run))["outputs"] == {"version": "1.2", "image": "final"}
    downstream = await claim(api)
    assert downstream["job"]["upstream_outputs"] == {"build": {"version": "1.2", "image": "final"}}


async def test_a_retried_attempt_starts_without_the_outputs_the_failed_one_set(api):
    claimed, run = await running(api)
    await ok(await api.post(url(claimed, "output"), json={"half": "done"}))
    await finish(api, claimed, ok=False, retryable=True)
    again = await claim(api)
    await finish(api, again, outputs={"all": "done"})
    assert (await job_view(api, run))["outputs"] == {"all": "done"}


async def test_resources_show_the_latest_sample_and_the_peak(api):
    claimed, run = await running(api)
    await ok(await api.post(url(claimed, "resources"), json={"cpu_percent": 150.0, "memory_bytes": 900}))
    await ok(await api.post(url(claimed, "resources"), json={"cpu_percent": 20.5, "memory_bytes": 400,
                                                             "extra": {"gpu": 1}}))
    res = (await job_view(api, run))["resources"]
    assert (res["cpu_percent"], res["memory_bytes"], res["peak_cpu_percent"], res["peak_memory_bytes"]) == (
        20.5, 400, 150.0, 900)
    assert res["extra"] == {"gpu": 1}


async def test_complete_and_fail_keep_restep_details(api):
    claimed, run = await running(api, CHAIN, "chain")
    await ok(await api.post(url(claimed, "complete"), json={"result_data": {"rows": 10}}))
    assert (await job_view(api, run))["result_data"] == {"rows": 10}
    second = await claim(api)
    await ok(await api.post(url(second, "fail"), json={
        "error_message": "timeout", "error_type": "TimeoutError", "error_stack": "at db.js:45"}))
    job = await job_view(api, run, "test")
    assert (job["status"], job["error"], job["error_type"], job["error_stack"]) == (
        "failure", "timeout", "TimeoutError", "at db.js:45")


async def test_typed_reports_are_run_events_of_their_type(api):
    claimed, run = await running(api)
    await ok(await api.post(url(claimed, "usage"), json={"provider": "acme", "model": "m1", "tokens": 12}))
    await ok(await api.post(url(claimed, "tool-call"), json={"name": "search"}))
    usage = await events(api, run, "usage")
    assert [e["data"] for e in usage] == [{"provider": "acme", "model": "m1", "tokens": 12}]
    assert len(await events(api, run, "tool_call")) == 1


# ---- the lease rules ------------------------------------------------------------------------------

CALLS = [
    ("POST", "progress", {"progress_percent": 1}), ("POST", "log", {"message": "m"}),
    ("POST", "steps/0/running", {}), ("POST", "checkpoint", {"data": 1}), ("GET", "state", None),
    ("PUT", "state/k", {"value": 1}), ("DELETE", "state/k", None), ("POST", "annotate", {"k": "v"}),
    ("POST", "output", {"k": "v"}), ("POST", "spawn", {"jobs": {"extra": {"run": "x"}}}),
    ("POST", "wait-for-event", {"event_key": "e"}), ("POST", "resources", {"cpu_percent": 1}),
    ("GET", "payload", None), ("POST", "usage", {}),
]


@pytest.mark.parametrize("method, call, body", CALLS, ids=[c[1] for c in CALLS])
async def test_a_finished_lease_is_409_lease_lost_and_changes_nothing(api, method, call, body):
    claimed, run = await running(api)
    await finish(api, claimed)
    before = await job_view(api, run)
    err = assert_error(await api.request(method, url(claimed, call), json=body), 409)
    assert err["code"] == "lease_lost"
    after = await job_view(api, run)
    assert after == before
    assert await ok(await api.get(f"/api/runs/{run}/state")) == {}


async def test_a_run_token_of_another_lease_is_refused(auth_api):
    from tests.test_auth import bearer, make_token

    worker = bearer((await make_token(auth_api, "worker", "submit"))["token"])
    resp = await auth_api.put("/api/workflows/pair", content=b"jobs:\n  a: {run: a}\n  b: {run: b}\n",
                              headers={**YAML, **worker})
    assert resp.status_code == 201, resp.text
    await auth_api.post("/api/workflows/pair/runs", json={}, headers=worker)
    first = (await auth_api.post("/api/jobs/claim", json={"worker_id": "w1"}, headers=worker)).json()
    second = (await auth_api.post("/api/jobs/claim", json={"worker_id": "w1"}, headers=worker)).json()
    own = bearer(first["lease"]["run_token"])
    assert (await auth_api.post(url(first, "progress"), json={"progress_percent": 5}, headers=own)).status_code == 200
    err = assert_error(await auth_api.post(url(second, "progress"), json={"progress_percent": 5}, headers=own), 403)
    assert err["code"] == "forbidden"


# ---- spawning ------------------------------------------------------------------------------------------

PIPE = """
name: pipe
jobs:
  plan:
    run: plan
    spawn: {workflows: [child, nope]}
  ship:
    needs: plan
    run: ship
"""


async def test_spawned_jobs_join_the_run_in_order_and_the_spawners_dependents_wait(api):
    claimed, run = await running(api, PIPE, "pipe")
    doc = b"jobs:\n  test-a:\n    run: make a\n  test-b:\n    needs: [test-a, plan]\n    run: make b\n"
    spawned = await ok(await api.post(url(claimed, "spawn"), content=doc, headers=YAML), 201)
    assert spawned["jobs"] == ["test-a", "test-b"]
    await finish(api, claimed)
    order = []
    while (c := await claim(api)) is not None:
        order.append(c["job"]["job_id"])
        assert c["job"]["command"] == {"test-a": "make a", "test-b": "make b", "ship": "ship"}[order[-1]]
        await finish(api, c)
    assert order == ["test-a", "test-b", "ship"]
    view = await ok(await api.get(f"/api/runs/{run}"))
    assert view["status"] == "success"
    assert {j["id"]: j["status"] for j in view["jobs"]} == {
        "plan": "success", "ship": "success", "test-a": "success", "test-b": "success"}
    assert next(j for j in view["jobs"] if j["id"] == "ship")["depends_on"] == ["plan"]  # its definition's


async def test_a_spawn_with_wait_false_leaves_the_dependents_alone(api):
    claimed, run = await running(api, PIPE, "pipe")
    await ok(await api.post(url(claimed, "spawn"), json={"jobs": {"notify": {"run": "notify"}}, "wait": False}), 201)
    await finish(api, claimed)
    first, second = await claim(api), await claim(api)
    assert {first["job"]["job_id"], second["job"]["job_id"]} == {"notify", "ship"}


@pytest.mark.parametrize("doc, code", [
    ({"jobs": {"x": {"run": "x", "needs": ["nope"]}}}, "invalid_spawn"),
    ({"jobs": {"x": {"run": "x", "needs": ["y"]}, "y": {"run": "y", "needs": ["x"]}}}, "invalid_spawn"),
    ({"jobs": {"ship": {"run": "again"}}}, "job_exists"),
    ({"jobs": {"x": {"run": "x", "needs": ["ship"]}}}, "cycle"),  # ship waits for x
    ({"jobs": {}}, "invalid_spawn"),
    ({"jobs": {"x": {"command": "x"}}}, "invalid_spawn"),
])
async def test_a_bad_spawn_is_refused_with_nothing_added(api, doc, code):
    claimed, run = await running(api, PIPE, "pipe")
    before = await ok(await api.get(f"/api/runs/{run}"))
    resp = await api.post(url(claimed, "spawn"), json=doc)
    assert resp.status_code in (409, 422), resp.text
    assert resp.json()["error"]["code"] == code
    after = await ok(await api.get(f"/api/runs/{run}"))
    assert [j["id"] for j in after["jobs"]] == [j["id"] for j in before["jobs"]]


async def test_spawning_the_same_jobs_again_is_a_no_op(api):
    claimed, run = await running(api, PIPE, "pipe")
    doc = {"jobs": {"extra": {"run": "x"}}}
    assert (await ok(await api.post(url(claimed, "spawn"), json=doc), 201))["jobs"] == ["extra"]
    assert (await ok(await api.post(url(claimed, "spawn"), json=doc), 201))["jobs"] == []
    assert len((await ok(await api.get(f"/api/runs/{run}")))["jobs"]) == 3


async def test_spawning_a_workflow_starts_a_child_run(api):
    await put(api, "child", "jobs:\n  c: {run: c}\n")
    claimed, run = await running(api, PIPE, "pipe")
    spawned = await ok(await api.post(url(claimed, "spawn"), json={"workflow_id": "child", "inputs": {"v": "1"}}),
                       201)
    child = await ok(await api.get(f"/api/runs/{spawned['child_run_id']}"))
    assert (child["parent_run_id"], child["inputs"], child["triggered_by"]) == (run, {"v": "1"}, "spawn")
    assert [c["run_id"] for c in await ok(await api.get(f"/api/runs/{run}/children"))] == [child["run_id"]]
    assert_error(await api.post(url(claimed, "spawn"), json={"workflow_id": "nope"}), 404)  # listed, not stored
    spawns = [e["detail"] for e in await events(api, run, "spawn")]
    assert spawns == [f"child run {child['run_id']} (child #1)"]


async def test_a_retried_job_spawning_the_same_child_run_gets_the_first_one_back(api):
    await put(api, "child", "jobs:\n  c: {run: c}\n")
    claimed, run = await running(api, PIPE.replace("run: plan", "run: plan\n    retries: 1"), "pipe")
    body = {"workflow_id": "child", "inputs": {"v": "1"}}
    first = (await ok(await api.post(url(claimed, "spawn"), json=body), 201))["child_run_id"]
    await finish(api, claimed, ok=False, retryable=True)
    claimed_now = {c["job"]["job_id"]: c for c in (await claim(api), await claim(api))}  # the child's c too
    again = claimed_now["plan"]
    assert again["job"]["attempt"] == 1
    assert (await ok(await api.post(url(again, "spawn"), json=body), 201))["child_run_id"] == first
    other = await ok(await api.post(url(again, "spawn"), json={"workflow_id": "child", "inputs": {"v": "2"}}), 201)
    assert other["child_run_id"] != first
    assert len(await ok(await api.get(f"/api/runs/{run}/children"))) == 2


async def test_spawned_jobs_have_their_events(api):
    claimed, run = await running(api, PIPE, "pipe")
    doc = {"jobs": {"a": {"run": "a"}, "b": {"run": "b", "needs": ["a"]}}}
    await ok(await api.post(url(claimed, "spawn"), json=doc), 201)
    mine = [(e["job_id"], e["type"], e["status"], e["detail"])
            for e in await ok(await api.get(f"/api/runs/{run}/events")) if e["job_id"] in ("plan", "a", "b")]
    assert mine[-2:] == [("plan", "spawn", "running", "a,b"), ("a", "job", "queued", "spawned by plan")]


# ---- waiting for events ---------------------------------------------------------------------------------


async def test_a_job_waits_for_an_event_and_resumes_with_it_and_its_checkpoint(api):
    claimed, run = await running(api)
    await ok(await api.post(url(claimed, "checkpoint"), json={"data": {"stage": "built"}}))
    waiting = await ok(await api.post(url(claimed, "wait-for-event"), json={"event_key": "deploy.ok",
                                                                            "timeout_secs": 600}))
    assert waiting["status"] == "waiting" and waiting["expires_at"].endswith("Z")
    job = await job_view(api, run)
    assert (job["status"], job["waiting_for"], job["worker_id"]) == ("waiting", "deploy.ok", None)
    assert [a["status"] for a in job["attempts"]] == ["waiting"]
    # the worker's next heartbeat says so, and the lease takes no result
    assert_error(await api.post(url(claimed, "heartbeat")), 409, "job_waiting")
    assert_error(await api.post(url(claimed, "complete"), json={}), 409, "job_waiting")
    assert await claim(api) is None  # nothing to run meanwhile
    fired = await ok(await api.post("/api/events/deploy.ok", json={"payload": {"approved_by": "ann"}}))
    assert fired == {"event_key": "deploy.ok", "released": 1}
    again = await claim(api)
    assert (again["job"]["event"], again["job"]["checkpoint"]) == ({"approved_by": "ann"}, {"stage": "built"})
    await finish(api, again)
    job = await job_view(api, run)
    assert job["status"] == "success" and job["max_retries"] == 2
    assert [a["status"] for a in job["attempts"]] == ["waiting", "success"]
    # the waiting attempt used no retry: two retries are still there
    assert (await ok(await api.post("/api/events/deploy.ok", json={})))["released"] == 0


async def test_a_wait_times_out_as_a_failure(api, store):
    claimed, run = await running(api)
    await ok(await api.post(url(claimed, "wait-for-event"), json={"event_key": "never", "timeout_secs": 1}))
    await store.redis.zadd(store.key("evtimeouts"), {f"{run}:build": 0})
    await reap_once(store)
    job = await job_view(api, run)
    assert (job["status"], job["error"]) == ("failure", "event timed out")
    assert (await ok(await api.get(f"/api/runs/{run}")))["status"] == "failure"


async def test_a_waiting_job_is_approved_by_name_or_cancelled(api):
    claimed, run = await running(api)
    await ok(await api.post(url(claimed, "wait-for-event"), json={"event_key": "k"}))
    assert_error(await api.post(f"/api/runs/{run}/jobs/nope/approve", json={}), 404)
    approved = await ok(await api.post(f"/api/runs/{run}/jobs/build/approve", json={"payload": "go"}), 202)
    assert approved["status"] == "queued"
    assert_error(await api.post(f"/api/runs/{run}/jobs/build/approve", json={}), 409, "job_not_waiting")
    again = await claim(api)
    assert again["job"]["event"] == "go"
    await ok(await api.post(url(again, "wait-for-event"), json={"event_key": "k2"}))
    await ok(await api.post(f"/api/runs/{run}/cancel"), 202)
    assert (await job_view(api, run))["status"] == "cancelled"
    assert (await ok(await api.post("/api/events/k2", json={})))["released"] == 0


async def test_a_bad_event_key_is_422(api):
    assert_error(await api.post("/api/events/bad%20key", json={}), 422, "invalid_key")
