"""Pausing and resuming over HTTP, on both stores: a run (its queued jobs
go to no worker, running ones finish), a workflow (new runs wait, or are
refused), and a label's queues (no worker takes a job needing it, while
the claim index leaves it out)."""

from __future__ import annotations

from server import limits
from tests.test_api import assert_error
from tests.test_concurrency import doc, drain, events, run_of
from tests.test_runs import claim, finish, put, start

PIPELINE = """
jobs:
  a: {run: 'true'}
  b: {run: 'true'}
  c: {run: 'true', needs: [a, b]}
"""


async def pause(api, what: str, **body) -> dict:
    resp = await api.post(f"/api/{what}/pause", json=body or None)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def resume(api, what: str) -> dict:
    resp = await api.post(f"/api/{what}/resume")
    assert resp.status_code == 200, resp.text
    return resp.json()


# ---- runs -------------------------------------------------------------------------------------


async def test_a_paused_run_hands_out_nothing_and_its_running_jobs_finish(api):
    await put(api, "p", PIPELINE)
    run = (await start(api, "p"))["run_id"]
    running = await claim(api)
    answer = await pause(api, f"runs/{run}")
    assert answer["changed"] is True and "1 queued job(s) held" in answer["detail"]
    assert answer["run"]["paused"] is True and answer["run"]["status"] == "running"
    assert answer["run"]["paused_at"] is not None
    assert await claim(api) is None, "its queued job stays with it"
    other = (await start(api, "p"))["run_id"]
    taken = await claim(api)
    assert taken["job"]["run_id"] == other, "other runs go on"
    await finish(api, taken)
    await finish(api, running)  # a running job finishes, and its dependents wait too
    left = "b" if running["job"]["job_id"] == "a" else "a"
    queued = [j["id"] for j in (await run_of(api, run))["jobs"] if j["status"] == "queued"]
    assert sorted(queued) == sorted([left, "c"])
    blocked = (await api.get(f"/api/runs/{run}/jobs/{left}")).json()["blocked_by"]
    assert blocked["run_held"] == "paused"

    again = await pause(api, f"runs/{run}")
    assert again["changed"] is False and again["detail"] == "already paused (no-op)"
    resumed = await resume(api, f"runs/{run}")
    assert resumed["changed"] is True and resumed["run"]["paused"] is False
    assert [j for r, j in await drain(api) if r == run] == [left, "c"]
    assert (await run_of(api, run))["status"] == "success"
    kinds = [(e["status"], e["detail"].split(":")[0]) for e in await events(api, run, "pause")]
    assert kinds == [("paused", "paused"), ("resumed", "resumed")]


async def test_pausing_and_resuming_what_cannot_be_is_a_clear_no_op(api):
    await put(api, "p", doc("x"))
    run = (await start(api, "p"))["run_id"]
    not_paused = await resume(api, f"runs/{run}")
    assert not_paused["changed"] is False and not_paused["detail"] == "not paused: nothing to resume (no-op)"
    await drain(api)
    done = await pause(api, f"runs/{run}")
    assert done["changed"] is False and "finished" in done["detail"] and done["run"]["status"] == "success"
    assert_error(await api.post("/api/runs/nope/pause"), 404, "run_not_found")
    assert_error(await api.post("/api/runs/nope/resume"), 404, "run_not_found")


async def test_a_job_due_after_its_backoff_stays_held_while_its_run_is_paused(app, api):
    await put(api, "p", "jobs:\n  a: {run: x, retries: 1, backoff: {fixed: {delay_secs: 600}}}\n")
    run = (await start(api, "p"))["run_id"]
    await finish(api, await claim(api), ok=False, retryable=True)
    await pause(api, f"runs/{run}")
    store = app.state.store
    await store.redis.zadd(store.prefix + "delayed", {f"{run}:a": 0})  # due now
    assert await claim(api) is None
    assert (await run_of(api, run))["jobs"][0]["status"] == "queued"
    await resume(api, f"runs/{run}")
    again = await claim(api)
    assert again["job"]["attempt"] == 1


async def test_cancelling_a_paused_run_ends_it(api):
    await put(api, "p", PIPELINE)
    run = (await start(api, "p"))["run_id"]
    await pause(api, f"runs/{run}")
    assert (await api.post(f"/api/runs/{run}/cancel")).status_code == 202
    ended = await run_of(api, run)
    assert ended["status"] == "cancelled" and ended["paused"] is False


# ---- workflows ----------------------------------------------------------------------------------


async def test_a_paused_workflow_holds_new_runs_and_starts_them_in_order_when_resumed(api):
    await put(api, "p", doc("x"))
    going = (await start(api, "p"))["run_id"]
    answer = await pause(api, "workflows/p")
    assert answer == {"workflow_id": "p", "paused": True, "new_runs": "queue", "changed": True,
                      "detail": "paused: new runs wait for it to resume", "runs_released": 0}
    held = [await start(api, "p") for _ in range(2)]
    assert all(r["status"] == "queued" and r["waiting_for_workflow"] for r in held)
    wf = (await api.get("/api/workflows/p")).json()
    assert wf["paused"] == "queue" and wf["paused_at_ms"] is not None
    assert (await api.get("/api/paused")).json()["workflows"] == [
        {"workflow_id": "p", "new_runs": "queue", "paused_at_ms": wf["paused_at_ms"], "waiting_runs": 2}]
    blocked = (await api.get(f"/api/runs/{held[0]['run_id']}/jobs/a")).json()["blocked_by"]
    assert blocked["run_held"] == "workflow_paused"
    # runs in progress go on; x is its own group: the held ones are not in it yet
    assert await drain(api) == [(going, "a")]

    resumed = await resume(api, "workflows/p")
    assert resumed["changed"] is True and resumed["runs_released"] == 2
    assert (await api.get("/api/workflows/p")).json()["paused"] is None
    assert [r for r, _ in await drain(api)] == [r["run_id"] for r in held]
    assert [e["status"] for e in await events(api, held[0]["run_id"], "pause")] == ["held", "released"]
    again = await resume(api, "workflows/p")
    assert again["changed"] is False and again["detail"] == "not paused: nothing to resume (no-op)"


async def test_a_workflow_paused_with_new_runs_skipped_refuses_them(api):
    await put(api, "p", doc("x"))
    await pause(api, "workflows/p", new_runs="skip")
    refused = await api.post("/api/workflows/p/runs", json={})
    assert_error(refused, 409, "workflow_paused")
    assert refused.json()["error"]["details"] == {"workflow_id": "p"}
    same = await pause(api, "workflows/p", new_runs="skip")
    assert same["changed"] is False and same["detail"].endswith("no-op")
    switched = await pause(api, "workflows/p", new_runs="queue")
    assert switched["changed"] is True
    assert (await start(api, "p"))["waiting_for_workflow"] is True
    assert_error(await api.post("/api/workflows/p/pause", json={"new_runs": "drop"}), 422, "invalid_body")
    assert_error(await api.post("/api/workflows/nope/pause"), 404, "workflow_not_found")


async def test_a_paused_workflow_holds_a_bounded_number_of_runs(api, monkeypatch):
    monkeypatch.setattr(limits, "MAX_HELD_RUNS", 2)
    await put(api, "p", doc("x"))
    await pause(api, "workflows/p")
    for _ in range(2):
        await start(api, "p")
    resp = await api.post("/api/workflows/p/runs", json={})
    assert_error(resp, 409, "too_many_waiting_runs")
    assert resp.json()["error"]["details"] == {"workflow_id": "p", "limit": 2}


async def test_a_resumed_workflows_runs_take_their_turn_in_their_group(api):
    await put(api, "p", doc("{group: one, queue: max}"))
    await pause(api, "workflows/p")
    held = [(await start(api, "p"))["run_id"] for _ in range(3)]
    await resume(api, "workflows/p")
    after = [await run_of(api, r) for r in held]
    assert [r["waiting_for_group"] for r in after] == [None, "one", "one"]
    assert [r for r, _ in await drain(api)] == held


# ---- labels -------------------------------------------------------------------------------------


async def test_a_paused_label_drains_its_fleet_without_stopping_it(app, api):
    await put(api, "gpu", "jobs:\n  train: {run: x, labels: [gpu]}\n  both: {run: x, labels: [gpu, linux]}\n"
                          "  any: {run: x}\n")
    run = (await start(api, "gpu"))["run_id"]
    running = await claim(api, "w", ["gpu", "linux"])
    assert running["job"]["job_id"] in ("train", "both")
    answer = await pause(api, "labels/gpu")
    assert answer["changed"] is True and answer["queued"] == 1
    rest = await drain(api, "w", ["gpu", "linux"])
    assert [j for _, j in rest] == ["any"], "jobs needing no paused label still go"
    await finish(api, running)
    store = app.state.store
    assert set(await store.redis.smembers(store.prefix + "plsets")) <= {"gpu", "gpu,linux"}
    assert not {"gpu", "gpu,linux"} & set(await store.redis.smembers(store.prefix + "labelsets"))

    second = (await start(api, "gpu"))["run_id"]  # queued while paused: held too
    assert [j for _, j in await drain(api, "w", ["gpu", "linux"])] == ["any"]
    waiting = [j for j in (await run_of(api, second))["jobs"] if j["id"] != "any"]
    blocked = (await api.get(f"/api/runs/{second}/jobs/{waiting[0]['id']}")).json()["blocked_by"]
    assert blocked["paused_labels"] == ["gpu"]
    workers = (await api.get("/api/workers")).json()
    assert [w["paused_labels"] for w in workers] == [["gpu"]]
    paused = (await api.get("/api/paused")).json()["labels"]
    assert [(p["label"], p["queued"]) for p in paused] == [("gpu", 3)]
    queues = {",".join(q["labels"]): q for q in (await api.get("/api/queues")).json()["queues"]}
    assert queues["gpu"]["paused"] is True and queues["gpu"]["paused_labels"] == ["gpu"]
    assert queues["gpu,linux"]["paused_labels"] == ["gpu"]
    assert queues["gpu"]["ready"] + queues["gpu,linux"]["ready"] == 3 and "" not in queues
    again = await pause(api, "labels/gpu")
    assert again["changed"] is False and again["queued"] == 3

    resumed = await resume(api, "labels/gpu")
    assert resumed["changed"] is True and resumed["queued"] == 3
    assert len(await drain(api, "w", ["gpu", "linux"])) == 3
    assert {(await run_of(api, r))["status"] for r in (run, second)} == {"success"}
    assert (await resume(api, "labels/gpu"))["changed"] is False
    assert (await api.get("/api/paused")).json()["labels"] == []


async def test_a_label_set_needing_two_paused_labels_waits_for_both(api):
    await put(api, "x", "jobs:\n  a: {run: x, labels: [gpu, linux]}\n")
    await pause(api, "labels/gpu")
    await pause(api, "labels/linux")
    await start(api, "x")
    await resume(api, "labels/gpu")
    assert await claim(api, "w", ["gpu", "linux"]) is None
    await resume(api, "labels/linux")
    assert len(await drain(api, "w", ["gpu", "linux"])) == 1


async def test_a_label_is_checked_before_anything_is_paused(api):
    assert_error(await api.post("/api/labels/a,b/pause"), 422, "invalid_label")
    assert (await api.get("/api/paused")).json() == {"workflows": [], "labels": []}


async def test_every_pause_and_resume_is_on_the_record(api):
    await put(api, "p", doc("x"))
    run = (await start(api, "p"))["run_id"]
    await pause(api, f"runs/{run}")
    await pause(api, "workflows/p", new_runs="skip")
    await pause(api, "labels/gpu")
    await resume(api, "labels/gpu")
    found = (await api.get("/api/paused/events")).json()
    assert [(e["kind"], e["target"], e["action"]) for e in found] == [
        ("run", run, "paused"), ("workflow", "p", "paused"), ("label", "gpu", "paused"), ("label", "gpu", "resumed")]
    later = (await api.get("/api/paused/events", params={"after": found[1]["id"]})).json()
    assert len(later) == 2


async def test_a_deleted_workflow_is_no_longer_listed_paused(api):
    await put(api, "p", doc("x"))
    await pause(api, "workflows/p")
    assert [w["workflow_id"] for w in (await api.get("/api/paused")).json()["workflows"]] == ["p"]
    assert (await api.delete("/api/workflows/p")).status_code == 204
    assert (await api.get("/api/paused")).json()["workflows"] == []
