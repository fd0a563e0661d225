"""The worker side of the API that daily fleets rely on, on both stores:
exclusive workers, liveness that operators can trust, the cancel that
reaches a job at once, and bounded outputs."""

from __future__ import annotations

import asyncio

from tests.test_api import assert_error

WORKFLOW = {"name": "ci", "jobs": [{"id": "a", "command": "true"}]}


async def _set_last_seen(store, worker: str, ms_ago: int) -> None:
    now_s, now_us = await store.redis.time()
    await store.redis.hset(f"{store.prefix}worker:{worker}", "last_seen", now_s * 1000 + now_us // 1000 - ms_ago)


async def test_an_exclusive_worker_takes_only_jobs_that_ask_for_its_labels(api):
    doc = {"name": "x", "jobs": [{"id": "anywhere", "command": "true"},
                                 {"id": "deploy", "command": "true", "required_labels": ["deploy"]}]}
    await api.post("/api/workflows?run=true", json=doc)
    box = {"worker_id": "deploy-box", "labels": ["deploy", "linux"], "exclusive": True}
    first = (await api.post("/api/jobs/claim", json=box)).json()
    assert first["job"]["job_id"] == "deploy"
    assert (await api.post("/api/jobs/claim", json=box)).json() is None  # never the unlabelled job
    assert (await api.post("/api/jobs/claim", json={"worker_id": "any"})).json()["job"]["job_id"] == "anywhere"


async def test_workers_show_what_they_registered(api):
    body = {"worker_id": "box-1", "labels": ["linux"], "exclusive": True, "concurrency": 3, "version": "0.1.0",
            "host": "box-1.example", "claim_wait_secs": 30, "lease_ttl_secs": 30}
    assert (await api.post("/api/workers/register", json=body)).status_code == 200
    await api.post("/api/workflows?run=true", json={"name": "x", "jobs": [
        {"id": "a", "command": "true", "required_labels": ["linux"]}]})
    await api.post("/api/jobs/claim", json={"worker_id": "box-1", "labels": ["linux"], "exclusive": True})
    (worker,) = (await api.get("/api/workers")).json()
    assert (worker["concurrency"], worker["free_slots"], worker["version"], worker["host"], worker["exclusive"]) == (
        3, 2, "0.1.0", "box-1.example", True)
    assert worker["status"] == "busy"


async def test_a_worker_unseen_past_its_grace_is_offline_or_lost(app, api):
    store = app.state.store
    # claims every 30 s, heartbeats every 10: its grace is 2 x 30 + 5 s
    for name in ("idle-one", "busy-one"):
        await api.post("/api/workers/register", json={"worker_id": name, "claim_wait_secs": 30,
                                                      "lease_ttl_secs": 30})
    await api.post("/api/workflows?run=true", json=WORKFLOW)
    await api.post("/api/jobs/claim", json={"worker_id": "busy-one"})
    for name in ("idle-one", "busy-one"):
        await _set_last_seen(store, name, 60_000)
    assert {w["worker_id"]: w["status"] for w in (await api.get("/api/workers")).json()} == {
        "idle-one": "idle", "busy-one": "busy"}
    for name in ("idle-one", "busy-one"):
        await _set_last_seen(store, name, 70_000)
    assert {w["worker_id"]: w["status"] for w in (await api.get("/api/workers")).json()} == {
        "idle-one": "offline", "busy-one": "lost"}


async def test_a_worker_whose_lease_expired_is_lost_until_it_is_seen_again(app, api):
    from server.reaper import reap_once

    store = app.state.store
    await api.post("/api/workers/register", json={"worker_id": "killed", "claim_wait_secs": 30,
                                                  "lease_ttl_secs": 30})
    await api.post("/api/workflows?run=true", json=WORKFLOW)
    claimed = (await api.post("/api/jobs/claim", json={"worker_id": "killed"})).json()
    await _set_last_seen(store, "killed", 31_000)  # kill -9: nothing renewed its lease
    await store.redis.zadd(store.prefix + "leases", {claimed["lease"]["lease_id"]: 0})
    await reap_once(store)
    (worker,) = (await api.get("/api/workers")).json()
    # holding nothing now, and within its grace, yet no live worker lets a lease run out
    assert (worker["status"], worker["current_jobs"]) == ("lost", [])
    await api.post("/api/jobs/claim", json={"worker_id": "killed"})  # it is back (the job failed for good)
    assert (await api.get("/api/workers")).json()[0]["status"] == "idle"


async def test_a_worker_that_stops_cleanly_shows_stopped_then_is_gone(app, api):
    from server.reaper import reap_once

    store = app.state.store
    await api.post("/api/workers/register", json={"worker_id": "leaving"})
    assert (await api.delete("/api/workers/leaving")).status_code == 204
    assert (await api.get("/api/workers")).json()[0]["status"] == "stopped"
    await reap_once(store)
    assert len((await api.get("/api/workers")).json()) == 1  # kept a while
    await store.redis.zadd(store.prefix + "stopped", {"leaving": 0})  # ten minutes later
    await reap_once(store)
    assert (await api.get("/api/workers")).json() == []
    assert_error(await api.delete("/api/workers/leaving"), 404, "worker_not_found")
    # registering again brings it back to life
    await api.post("/api/workers/register", json={"worker_id": "leaving"})
    assert (await api.get("/api/workers")).json()[0]["status"] == "idle"


async def test_a_waiting_heartbeat_answers_the_moment_its_job_is_cancelled(api):
    wf = (await api.post("/api/workflows?run=true", json=WORKFLOW)).json()["id"]
    lease = (await api.post("/api/jobs/claim", json={"worker_id": "w", "lease_ttl_secs": 300})).json()["lease"]
    beat = asyncio.create_task(api.post(f"/api/jobs/{lease['lease_id']}/heartbeat", json={"wait_secs": 60}))
    await asyncio.sleep(0.2)
    assert not beat.done()  # waiting: nothing happened to the job
    await api.post(f"/api/workflows/{wf}/cancel")
    answer = (await asyncio.wait_for(beat, 10)).json()
    assert answer["cancelled"] is True


async def test_a_waiting_heartbeat_without_news_answers_when_its_wait_ends(api):
    await api.post("/api/workflows?run=true", json=WORKFLOW)
    lease = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]
    answer = (await api.post(f"/api/jobs/{lease['lease_id']}/heartbeat", json={"wait_secs": 0.2})).json()
    assert answer["cancelled"] is False and answer["lease_id"] == lease["lease_id"]
    # the seed worker's bare heartbeat still answers at once
    assert (await api.post(f"/api/jobs/{lease['lease_id']}/heartbeat")).json()["cancelled"] is False


async def test_outputs_over_the_limit_are_422_and_nothing_is_recorded(app, api):
    wf = (await api.post("/api/workflows?run=true", json=WORKFLOW)).json()["id"]
    lid = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]["lease_id"]
    limit = app.state.settings.max_output_bytes
    err = assert_error(await api.post(f"/api/jobs/{lid}/complete", json={"outputs": {"report": "x" * limit}}),
                       422, "outputs_too_large")
    assert err["details"]["field"] == "outputs" and err["details"]["limit"] == limit
    assert (await api.get(f"/api/workflows/{wf}")).json()["jobs"][0]["status"] == "running"
    ok = await api.post(f"/api/jobs/{lid}/complete", json={"outputs": {"report": "x" * (limit - 6)}})
    assert ok.status_code == 200
