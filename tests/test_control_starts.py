"""Run control meets the other ways runs start (issue 17: items 4-6 with
items 1, 3 and 7), on both stores: a delayed run released when its time
comes, a schedule's tick and a restart pass through a paused workflow and
a concurrency group exactly as a run started now does; a run that expires
unstarted gives its group place (or turn) up; a delayed run can be paused.
The scheduler is driven by the test (a fake clock, `due_runs` called
directly): no timing is asserted."""

from __future__ import annotations

from server import scheduler
from tests.test_api import assert_error
from tests.test_concurrency import drain, events, group, run_of
from tests.test_delayed_runs import due_now
from tests.test_pause import pause, resume
from tests.test_runs import claim, finish, put
from tests import test_schedules
from tests.test_schedules import clock_now, cron_runs

# test_schedules' app, with no reaper and no scheduler of its own: the tests drive them
quiet_app, api, store = test_schedules.quiet_app, test_schedules.api, test_schedules.store

GROUPED = "concurrency: prod\njobs:\n  a: {run: 'true'}\n"
PLAIN = "jobs:\n  a: {run: 'true'}\n"


async def started(api, wf: str, **body) -> dict:
    resp = await api.post(f"/api/workflows/{wf}/runs", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def release(store, run: str) -> None:
    """The scheduler's pass over delayed runs, with this run's time made due."""
    await due_now(store, "delayedruns", run)
    assert await store.due_runs() == (1, 0)


# ---- a delayed run, released, meets its group and its workflow's pause -------------------------


async def test_a_delayed_run_takes_its_group_turn_when_released_not_when_started(api, store):
    await put(api, "deploy", GROUPED)
    first = await started(api, "deploy")
    held = await claim(api)
    assert held["job"]["run_id"] == first["run_id"]
    later = await started(api, "deploy", delay="1h")
    assert later["status"] == "delayed" and later["concurrency_group"] == "prod"
    assert later["waiting_for_group"] is None, "a delayed run is no member of its group yet"
    assert (await group(api, "prod"))["waiting"] == []
    waiting = await started(api, "deploy")
    assert waiting["waiting_for_group"] == "prod"

    await release(store, later["run_id"])
    # as a run started now: it replaces the one waiting (queue: single), and waits itself
    assert (await run_of(api, waiting["run_id"]))["status"] == "cancelled"
    released = await run_of(api, later["run_id"])
    assert released["status"] == "queued" and released["waiting_for_group"] == "prod"
    assert await claim(api) is None, "the group's one place is taken"
    await finish(api, held)
    assert await drain(api) == [(later["run_id"], "a")]
    kinds = [(e["type"], e["status"]) for e in await events(api, later["run_id"])]
    assert kinds[:4] == [("run", "delayed"), ("run", "queued"), ("group", "waiting"), ("group", "admitted")]


async def test_a_delayed_run_released_while_its_workflow_is_paused_waits_behind_the_runs_held_before(api, store):
    await put(api, "p", PLAIN)
    delayed = (await started(api, "p", delay="1h"))["run_id"]
    assert (await pause(api, "workflows/p"))["new_runs"] == "queue"
    now = (await started(api, "p"))["run_id"]
    await release(store, delayed)
    view = await run_of(api, delayed)
    assert view["status"] == "queued" and view["waiting_for_workflow"] is True
    assert await claim(api) is None
    (paused,) = (await api.get("/api/paused")).json()["workflows"]
    assert paused["waiting_runs"] == 2
    assert (await resume(api, "workflows/p"))["runs_released"] == 2
    # in the order they came to wait: the run started while paused first
    assert await drain(api) == [(now, "a"), (delayed, "a")]


async def test_a_delayed_run_released_while_its_workflow_refuses_new_runs_is_cancelled_saying_why(api, store):
    await put(api, "p", PLAIN)
    delayed = (await started(api, "p", delay="1h"))["run_id"]
    await pause(api, "workflows/p", new_runs="skip")
    # a delayed start is refused at once, as any new run
    assert_error(await api.post("/api/workflows/p/runs", json={"delay": "1h"}), 409, "workflow_paused")
    await release(store, delayed)
    view = await run_of(api, delayed)
    assert view["status"] == "cancelled" and view["waiting_for_workflow"] is False
    (refused,) = await events(api, delayed, "pause")
    assert refused["status"] == "refused" and "workflow p is paused and refuses new runs" in refused["detail"]
    assert await claim(api) is None


async def test_a_run_rescheduled_to_now_meets_its_group_too(api, store):
    await put(api, "deploy", GROUPED)
    first = await started(api, "deploy")
    later = (await started(api, "deploy", delay="1h"))["run_id"]
    resp = await api.post(f"/api/runs/{later}/reschedule", json={"delay": 0})
    assert resp.status_code == 200, resp.text
    assert resp.json()["waiting_for_group"] == "prod"
    assert await drain(api) == [(first["run_id"], "a"), (later, "a")]


async def test_a_delayed_run_can_be_paused_and_its_jobs_wait_for_the_resume_once_released(api, store):
    await put(api, "p", PLAIN)
    run = (await started(api, "p", delay="1h"))["run_id"]
    answer = await pause(api, f"runs/{run}")
    assert answer["changed"] is True and answer["run"]["paused"] is True and answer["run"]["status"] == "delayed"
    await release(store, run)
    assert await claim(api) is None
    assert (await resume(api, f"runs/{run}"))["changed"] is True
    assert await drain(api) == [(run, "a")]


# ---- a run that expires unstarted gives its place up ----------------------------------------------


async def test_a_run_that_expires_holding_its_group_place_lets_the_next_one_in(api, store):
    await put(api, "deploy", "concurrency: {group: prod, queue: max}\njobs:\n  a: {run: 'true'}\n")
    holder = (await started(api, "deploy", expires_in="1h"))["run_id"]
    nxt = (await started(api, "deploy"))["run_id"]
    gone = (await started(api, "deploy", expires_in="1h"))["run_id"]
    assert [m["run_id"] for m in (await group(api, "prod"))["waiting"]] == [nxt, gone]
    for run in (holder, gone):
        await due_now(store, "expiring", run)
    assert await store.due_runs() == (0, 2)
    assert (await run_of(api, holder))["status"] == "expired"
    assert (await run_of(api, gone))["status"] == "expired"
    members = await group(api, "prod")
    assert [m["run_id"] for m in members["running"]] == [nxt] and members["waiting"] == []
    assert await drain(api) == [(nxt, "a")]


async def test_a_job_waiting_for_its_group_in_a_run_that_expires_leaves_the_group(api, store):
    jobs = "jobs:\n  a: {run: 'true', concurrency: {group: db, queue: max}}\n"
    await put(api, "j", jobs)
    first = (await started(api, "j"))["run_id"]
    running = await claim(api)
    second = (await started(api, "j", expires_in="1h"))["run_id"]
    assert (await group(api, "db"))["waiting"][0]["run_id"] == second
    await due_now(store, "expiring", second)
    assert await store.due_runs() == (0, 1)
    assert (await group(api, "db"))["waiting"] == []
    await finish(api, running)
    assert (await run_of(api, first))["status"] == "success"
    assert await group(api, "db") == {"running": [], "waiting": []}


# ---- a schedule's tick --------------------------------------------------------------------------


async def put_scheduled(api, wf: str, concurrency: str = "") -> None:
    doc = f"on:\n  schedule: [{{cron: '*/15 * * * *'}}]\n{concurrency}jobs:\n  a: {{run: echo}}\n"
    resp = await api.put(f"/api/workflows/{wf}", content=doc, headers={"Content-Type": "application/yaml"})
    assert resp.status_code in (200, 201), resp.text


async def next_tick(api, store, clock) -> int:
    """Fires the schedule's next tick (1 s after it, as a scheduler pass would); the runs started."""
    (schedule,) = (await api.get("/api/schedules")).json()
    clock.ms = schedule["next_fire_at"] + 1000
    return await scheduler.fire_due(store, clock.ms)


async def test_a_tick_of_a_workflow_refusing_new_runs_is_skipped_and_one_queuing_them_waits(api, store):
    await put_scheduled(api, "nightly")
    clock = await clock_now(store)
    assert await scheduler.fire_due(store, clock.ms) == 0  # the first pass computes the next tick
    await pause(api, "workflows/nightly", new_runs="skip")
    assert await next_tick(api, store, clock) == 0
    (schedule,) = (await api.get("/api/schedules")).json()
    assert schedule["ticks_skipped"] == 1 and schedule["runs_started"] == 0
    assert await cron_runs(api, "nightly") == []

    await pause(api, "workflows/nightly", new_runs="queue")
    assert await next_tick(api, store, clock) == 1
    (run,) = await cron_runs(api, "nightly")
    assert run["status"] == "queued" and run["waiting_for_workflow"] is True
    assert await claim(api) is None
    await resume(api, "workflows/nightly")
    assert await drain(api) == [(run["run_id"], "a")]


async def test_a_ticks_run_joins_its_workflows_concurrency_group(api, store):
    await put_scheduled(api, "nightly", "concurrency: {group: 'nightly-${{ run.triggered_by }}', queue: max}\n")
    clock = await clock_now(store)
    await scheduler.fire_due(store, clock.ms)
    assert await next_tick(api, store, clock) == 1
    assert await next_tick(api, store, clock) == 1
    first, second = await cron_runs(api, "nightly")
    assert first["concurrency_group"] == second["concurrency_group"] == "nightly-cron"
    assert first["waiting_for_group"] is None and second["waiting_for_group"] == "nightly-cron"
    assert await drain(api) == [(first["run_id"], "a"), (second["run_id"], "a")]


# ---- a restart, with overrides --------------------------------------------------------------------


async def test_a_restart_with_a_label_override_joins_the_group_its_run_was_in(api):
    await put(api, "deploy", GROUPED)
    original = await started(api, "deploy")
    restarted = await api.post(f"/api/runs/{original['run_id']}/restart", json={"overrides": {"labels": ["big"]}})
    assert restarted.status_code == 201, restarted.text
    again = restarted.json()
    assert again["concurrency_group"] == "prod" and again["waiting_for_group"] == "prod"
    held = await claim(api, "w", ["big"])
    assert held["job"]["run_id"] == original["run_id"]
    assert await claim(api, "w", ["big"]) is None, "the original holds the group's place"
    await finish(api, held)
    assert await drain(api, labels=["big"]) == [(again["run_id"], "a")]


async def test_a_restart_keeps_the_concurrency_key_its_run_was_started_with(api):
    await put(api, "p", PLAIN)
    original = await started(api, "p", concurrency_key="tenant-7")
    restarted = (await api.post(f"/api/runs/{original['run_id']}/restart", json={})).json()
    assert restarted["concurrency_group"] == "tenant-7" and restarted["waiting_for_group"] == "tenant-7"
    assert await drain(api) == [(original["run_id"], "a"), (restarted["run_id"], "a")]


async def test_per_run_overrides_at_start_leave_the_jobs_groups_as_they_are(api):
    await put(api, "j", "jobs:\n  a: {run: 'true', concurrency: db}\n")
    first = await started(api, "j", overrides={"priority": 50})
    second = await started(api, "j", overrides={"add_labels": ["ssd"]})
    assert [j["waiting_for_group"] for j in (await run_of(api, second["run_id"]))["jobs"]] == ["db"]
    assert await drain(api, labels=["ssd"]) == [(first["run_id"], "a"), (second["run_id"], "a")]


async def test_a_ticks_group_that_cannot_be_rendered_starts_nothing_and_is_said_once(api, store, caplog):
    """A default input that renders the group past its 256 characters: the
    start that would give another value is refused (422); a tick, which has
    only the default, skips and says so, and is not tried again each pass."""
    on = ("on:\n  schedule: [{cron: '*/15 * * * *'}]\n  workflow_dispatch:\n"
          f"    inputs: {{env: {{default: {'x' * 300}}}}}\n")
    doc = on + "concurrency: 'deploy-${{ inputs.env }}'\njobs:\n  a: {run: echo}\n"
    resp = await api.put("/api/workflows/wide", content=doc, headers={"Content-Type": "application/yaml"})
    assert resp.status_code == 201, resp.text
    err = assert_error(await api.post("/api/workflows/wide/runs", json={}), 422, "invalid_concurrency_group")
    assert err["details"]["field"] == "concurrency.group"
    clock = await clock_now(store)
    await scheduler.fire_due(store, clock.ms)
    assert await next_tick(api, store, clock) == 0
    assert await scheduler.fire_due(store, clock.ms + 1) == 0
    said = [r.getMessage() for r in caplog.records if "its ticks start nothing" in r.getMessage()]
    assert len(said) == 1 and "renders to 307 characters" in said[0], said
    assert await cron_runs(api, "wide") == []
    assert (await started(api, "wide", inputs={"env": "prod"}))["concurrency_group"] == "deploy-prod"


# ---- a continuation (Strait's `continue`) ------------------------------------------------------


async def test_a_continuation_meets_its_workflows_group_and_pause_as_a_start_does(api):
    await put(api, "deploy", GROUPED)
    first = (await started(api, "deploy"))["run_id"]
    held = await claim(api)
    cont = await api.post(f"/api/jobs/{held['lease']['lease_id']}/continue", json={})
    assert cont.status_code == 201, cont.text
    assert cont.json()["continuation_of"] == first and cont.json()["waiting_for_group"] == "prod"
    await finish(api, held)
    assert await drain(api) == [(cont.json()["run_id"], "a")]

    again = (await started(api, "deploy"))["run_id"]
    lease = await claim(api)
    await pause(api, "workflows/deploy", new_runs="skip")
    assert_error(await api.post(f"/api/jobs/{lease['lease']['lease_id']}/continue", json={}), 409,
                 "workflow_paused")
    await finish(api, lease)
    assert (await run_of(api, again))["status"] == "success"


# ---- a matrix (the workflow language's max-parallel) ---------------------------------------------


async def test_a_paused_runs_matrix_keeps_its_max_parallel_when_resumed(api):
    """max-parallel and run control hold combinations in one state, told
    apart: a combination run control held still takes its matrix's place."""
    await put(api, "mx", "jobs:\n  build:\n    strategy: {max-parallel: 1, matrix: {n: [1, 2, 3]}}\n"
                         "    run: ./build\n")
    run = (await started(api, "mx"))["run_id"]
    await pause(api, f"runs/{run}")
    assert await claim(api) is None
    blocked = (await api.get(f"/api/runs/{run}/jobs/build-1")).json()["blocked_by"]
    assert blocked["run_held"] == "paused"
    assert (await api.get(f"/api/runs/{run}/jobs/build-2")).json()["blocked_by"]["max_parallel"] == 1
    await resume(api, f"runs/{run}")
    first = await claim(api)
    assert first["job"]["job_id"] == "build-1"
    assert await claim(api) is None, "max-parallel: 1 still"
    await finish(api, first)
    assert [j for _, j in await drain(api)] == ["build-2", "build-3"]
    assert (await run_of(api, run))["status"] == "success"
