"""Delayed and expiring runs: `scheduled_at` / `delay` at start keep a run
`delayed` (its jobs not handed out) until its time, when the scheduler
releases it; `reschedule` moves that time; `expires_at` / `expires_in`
end a run nobody started by then as `expired`. Over HTTP on both stores."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest

from tests.test_runs import PIPELINE, YAML, claim, put


async def start(api, wf: str = "pipe", **body):
    return await api.post(f"/api/workflows/{wf}/runs", json=body)


async def started(api, wf: str = "pipe", **body) -> dict:
    resp = await start(api, wf, **body)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def due_now(store, zset: str, run: str) -> None:
    """Makes a delayed run's time (or an expiry) due now, without a sleep."""
    await store.redis.zadd(store.key(zset), {run: 0})


@pytest.fixture
async def pipe(api):
    await put(api, "pipe", PIPELINE)


async def test_a_delayed_run_hands_out_nothing_until_its_time(app, api, pipe):
    run = await started(api, delay="1h")
    assert run["status"] == "delayed" and run["scheduled_at"] - run["created_at"] >= 3_600_000 - 5
    assert {j["status"] for j in (await api.get(f"/api/runs/{run['run_id']}")).json()["jobs"]} == {"queued"}
    assert await claim(api) is None
    assert (await api.get("/api/workflows/pipe")).json()["status"] == "delayed"
    listed = (await api.get("/api/runs", params={"status": "delayed"})).json()["runs"]
    assert [r["run_id"] for r in listed] == [run["run_id"]]
    events = (await api.get(f"/api/runs/{run['run_id']}/events")).json()
    assert [(e["type"], e["status"]) for e in events] == [("run", "delayed")]
    store = app.state.store
    await due_now(store, "delayedruns", run["run_id"])
    assert await store.due_runs() == (1, 0)
    assert (await claim(api))["job"]["job_id"] == "build"
    after = (await api.get(f"/api/runs/{run['run_id']}")).json()
    assert after["status"] == "running" and after["started_at"] >= after["created_at"]
    assert (await api.get(f"/api/runs/{run['run_id']}/events")).json()[1]["detail"] == "scheduled time reached"


async def test_a_run_starts_no_earlier_than_its_scheduled_time(api, pipe):
    """The app's own scheduler releases it (real time): the recorded start is not before it."""
    at = int(time.time() * 1000) + 1500
    run = await started(api, scheduled_at=datetime.fromtimestamp(at / 1000, timezone.utc).isoformat())
    assert run["status"] == "delayed" and abs(run["scheduled_at"] - at) <= 1
    deadline = time.monotonic() + 60
    got = None
    while got is None and time.monotonic() < deadline:
        got = await claim(api)
        if got is None:
            await asyncio.sleep(0.2)
    assert got is not None, "the delayed run never started"
    after = (await api.get(f"/api/runs/{run['run_id']}")).json()
    assert after["started_at"] >= after["scheduled_at"]
    released = [e for e in (await api.get(f"/api/runs/{run['run_id']}/events")).json() if e["status"] == "queued"]
    assert released[0]["at_ms"] >= after["scheduled_at"]


@pytest.mark.parametrize("when", [{"scheduled_at": 1_000}, {"scheduled_at": "2001-01-01T00:00:00Z"},
                                  {"delay": 0}, {"delay": "0s"}])
async def test_a_time_now_or_past_starts_at_once(api, pipe, when):
    run = await started(api, **when)
    assert run["status"] == "queued" and (await claim(api))["job"]["job_id"] == "build"


@pytest.mark.parametrize("body, field, says", [
    ({"delay": "soon"}, "$.delay", "90s, 30m, 2h or 1d"),
    ({"scheduled_at": "tomorrow"}, "$.scheduled_at", "RFC 3339"),
    ({"scheduled_at": "2030-01-01T00:00:00"}, "$.scheduled_at", "with its offset"),
    ({"scheduled_at": 1, "delay": 1}, "delay", "not both"),
    ({"delay": "400d"}, "scheduled_at", "at most 31622400 seconds ahead"),
    ({"delay": "1h", "expires_in": "30m"}, "expires_at", "after scheduled_at"),
    ({"expires_at": 1_000}, "expires_at", "in the future"),
    ({"delay": -1}, "$.delay", ">= 0"),
    ({"delay": 1e306}, "$.delay", "<= 253402300799.999"),
    ({"expires_in": "9" * 24 + "d"}, "$.expires_in", "90s, 30m, 2h or 1d"),
])
async def test_bad_times_are_refused_naming_the_field(api, pipe, body, field, says):
    resp = await start(api, **body)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["details"]["field"] == field and says in error["message"], error
    assert (await api.get("/api/runs")).json()["runs"] == []


async def test_reschedule_moves_a_delayed_run_and_now_starts_it(app, api, pipe):
    run = (await started(api, delay="1h"))["run_id"]
    later = await api.post(f"/api/runs/{run}/reschedule", json={"delay": "2h"})
    assert later.status_code == 200 and later.json()["status"] == "delayed"
    assert later.json()["scheduled_at"] - later.json()["created_at"] >= 7_200_000 - 5
    assert await claim(api) is None
    now = await api.post(f"/api/runs/{run}/reschedule", json={"scheduled_at": 0})
    assert now.json()["status"] == "queued"
    assert (await claim(api))["job"]["job_id"] == "build"
    again = await api.post(f"/api/runs/{run}/reschedule", json={"delay": 60})
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_not_delayed"
    assert (await api.post("/api/runs/nope/reschedule", json={"delay": 1})).status_code == 404
    assert (await api.post(f"/api/runs/{run}/reschedule", json={})).status_code == 422
    assert await app.state.store.due_runs() == (0, 0)  # its old time is no longer due


async def test_a_run_nobody_starts_in_time_expires(app, api, pipe):
    run = (await started(api, expires_in="1h"))["run_id"]
    assert (await api.get(f"/api/runs/{run}")).json()["expires_at"] is not None
    await due_now(app.state.store, "expiring", run)
    assert await app.state.store.due_runs() == (0, 1)
    view = (await api.get(f"/api/runs/{run}")).json()
    assert view["status"] == "expired" and view["finished_at"] is not None
    assert {j["status"] for j in view["jobs"]} == {"cancelled"}
    assert {j["error"] for j in view["jobs"]} == {"the run expired before it started"}
    assert await claim(api) is None
    assert [r["run_id"] for r in (await api.get("/api/runs", params={"status": "expired"})).json()["runs"]] == [run]


async def test_a_delayed_run_past_its_expiry_expires_without_starting(app, api, pipe):
    run = (await started(api, delay="1h", expires_in="2h"))["run_id"]
    await due_now(app.state.store, "expiring", run)
    assert await app.state.store.due_runs() == (0, 1)
    await due_now(app.state.store, "delayedruns", run)
    assert await app.state.store.due_runs() == (0, 0)
    assert (await api.get(f"/api/runs/{run}")).json()["status"] == "expired"


async def test_a_started_run_does_not_expire(app, api, pipe):
    run = (await started(api, expires_in="1h"))["run_id"]
    assert (await claim(api))["job"]["job_id"] == "build"
    await due_now(app.state.store, "expiring", run)
    assert await app.state.store.due_runs() == (0, 0)
    assert (await api.get(f"/api/runs/{run}")).json()["status"] == "running"


async def test_a_delayed_run_can_be_cancelled_and_not_retried_while_delayed(app, api, pipe):
    run = (await started(api, delay="1h"))["run_id"]
    retry = await api.post(f"/api/runs/{run}/retry")
    assert retry.status_code == 409 and retry.json()["error"]["code"] == "run_active"
    cancelled = await api.post(f"/api/runs/{run}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    await due_now(app.state.store, "delayedruns", run)
    assert await app.state.store.due_runs() == (0, 0)
    assert await claim(api) is None
    # a finished run is purged whole: no delayed or expiring entry is left behind
    assert not await app.state.store.redis.zscore(app.state.store.key("delayedruns"), run)


async def test_an_expired_run_can_be_retried(app, api, pipe):
    run = (await started(api, expires_in="1h"))["run_id"]
    await due_now(app.state.store, "expiring", run)
    await app.state.store.due_runs()
    assert (await api.post(f"/api/runs/{run}/retry")).json()["status"] == "queued"
    assert (await claim(api))["job"]["job_id"] == "build"


async def test_seed_run_and_delete_treat_a_delayed_run_as_not_finished(api, pipe):
    await started(api, delay="1h")
    resp = await api.delete("/api/workflows/pipe")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "workflow_active"


async def test_a_delayed_one_off_put_and_dispatched_later(api):
    """The YAML shape's own doc: a delayed run of a workflow with typed inputs."""
    doc = ("on: {workflow_dispatch: {inputs: {n: {type: number, default: 1}}}}\n"
           "jobs: {a: {run: echo}}\n")
    assert (await api.put("/api/workflows/later", content=doc, headers=YAML)).status_code == 201
    run = await started(api, "later", delay=90, inputs={"n": "4"})
    assert run["status"] == "delayed" and run["inputs"] == {"n": 4}
