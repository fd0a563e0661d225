"""Approval gates: a YAML job that is only `wait: {event, timeout-minutes}`.
It never goes to a worker; an event or an approval releases it (its outputs
the payload's strings), or it fails when its wait times out. On both stores."""

from __future__ import annotations

import pytest

from server.reaper import reap_once
from tests.test_api import assert_error
from tests.test_runs import YAML, claim, finish, put, start

RELEASE = """
name: release
jobs:
  build:
    run: make dist
  approve:
    needs: build
    wait:
      event: release.approved
      timeout-minutes: 90
  deploy:
    needs: approve
    run: ./deploy
"""


async def job(api, run: str, job_id: str) -> dict:
    resp = await api.get(f"/api/runs/{run}/jobs/{job_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def at_the_gate(api) -> str:
    """A run of RELEASE whose build succeeded: its gate is waiting."""
    await put(api, "release", RELEASE)
    run = (await start(api, "release"))["run_id"]
    built = await claim(api)
    assert built["job"]["job_id"] == "build"
    await finish(api, built)
    return run


async def test_a_gate_waits_without_going_to_a_worker(api):
    run = await at_the_gate(api)
    gate = await job(api, run, "approve")
    assert (gate["status"], gate["waiting_for"]) == ("waiting", "release.approved")
    assert gate["waiting_until"] is not None and gate["worker_id"] is None
    assert await claim(api) is None  # nothing for any worker: the gate is nobody's job
    assert (await job(api, run, "deploy"))["status"] == "queued"


async def test_an_approval_releases_the_gate_and_its_payload_becomes_outputs(api):
    run = await at_the_gate(api)
    resp = await api.post(f"/api/runs/{run}/jobs/approve/approve", json={"payload": {"approved_by": "ann"}})
    assert resp.status_code == 202, resp.text
    gate = await job(api, run, "approve")
    assert (gate["status"], gate["outputs"]) == ("success", {"approved_by": "ann"})
    deploy = await claim(api)
    assert deploy["job"]["job_id"] == "deploy"
    assert deploy["job"]["upstream_outputs"] == {"approve": {"approved_by": "ann"}}
    gate_events = [(e["status"], e["detail"]) for e in
                   (await api.get(f"/api/runs/{run}/events", params={"job_id": "approve"})).json()]
    # in order: queued once build succeeded, then waiting, then approved
    assert gate_events == [("queued", "needs met"), ("waiting", "waiting for event release.approved"),
                           ("success", "approved by an operator (auth off)")]
    await finish(api, deploy)
    assert (await api.get(f"/api/runs/{run}")).json()["status"] == "success"


async def test_the_event_key_releases_every_gate_waiting_on_it(api):
    first = await at_the_gate(api)
    second = (await start(api, "release"))["run_id"]
    await finish(api, await claim(api))  # the second run's build
    fired = await api.post("/api/events/release.approved", json={"payload": "ok"})
    assert fired.json() == {"event_key": "release.approved", "released": 2}
    for run in (first, second):
        # a payload that is not a mapping of strings is kept whole
        assert (await job(api, run, "approve"))["outputs"] == {"payload": "ok"}


async def test_a_gate_nobody_approves_fails_when_its_wait_ends(api, store):
    run = await at_the_gate(api)
    await store.redis.zadd(store.key("evtimeouts"), {f"{run}:approve": 0})  # its 90 minutes are up
    await reap_once(store)
    gate = await job(api, run, "approve")
    assert (gate["status"], gate["error"]) == ("failure", "event timed out")
    assert (await job(api, run, "deploy"))["status"] == "skipped"
    assert (await api.get(f"/api/runs/{run}")).json()["status"] == "failure"


async def test_a_gate_with_no_needs_waits_from_the_start_and_can_be_cancelled(api):
    await put(api, "hold", "name: hold\njobs:\n  hold:\n    wait: {event: go}\n  after:\n    needs: hold\n    run: x\n")
    run = (await start(api, "hold"))["run_id"]
    gate = await job(api, run, "hold")
    assert gate["status"] == "waiting"
    assert gate["waiting_for"] == "go" and gate["waiting_until"] is not None
    assert (await api.post(f"/api/runs/{run}/cancel")).status_code == 202
    assert (await job(api, run, "hold"))["status"] == "cancelled"
    assert (await api.post("/api/events/go", json={})).json()["released"] == 0


@pytest.mark.parametrize("gate, field, words", [
    ("wait: {}", "jobs.approve.wait.event", "required"),
    ("wait: {event: 'bad key'}", "jobs.approve.wait.event", "letters, digits"),
    ("wait: {event: ok, timeout-minutes: 0}", "jobs.approve.wait.timeout-minutes", "above 0"),
    ("wait: {event: ok, timeout-minutes: 50000}", "jobs.approve.wait.timeout-minutes", "30 days"),
    ("wait: {evnt: ok}", "jobs.approve.wait.evnt", "did you mean 'event'"),
    ("wait: ok", "jobs.approve.wait", "must be a mapping"),
    ("wait: {event: ok}\n    run: echo", "jobs.approve.run", "runs nothing on a worker"),
    ("wait: {event: ok}\n    runs-on: gpu", "jobs.approve.runs-on", "runs nothing on a worker"),
])
async def test_a_bad_gate_is_422_naming_the_field_and_stores_nothing(api, gate, field, words):
    doc = f"name: bad\njobs:\n  approve:\n    {gate}\n"
    resp = await api.put("/api/workflows/bad", content=doc.encode(), headers=YAML)
    problems = assert_error(resp, 422)["details"]["problems"]
    assert any(p["field"] == field and words in p["message"] for p in problems), problems
    assert (await api.get("/api/workflows/bad")).status_code == 404


async def test_the_release_example_waits_for_its_approval(api, store):
    from pathlib import Path

    from server.workflow_files import load_directory

    await load_directory(store, Path(__file__).resolve().parent.parent / "workflows")
    run = (await start(api, "release"))["run_id"]
    await finish(api, await claim(api), outputs={"artifact": "rota.tar.gz"})
    assert await claim(api) is None
    approved = await api.post(f"/api/runs/{run}/jobs/approve/approve", json={"payload": {"approved_by": "ann"}})
    assert approved.status_code == 202, approved.text
    deploy = await claim(api)
    assert deploy["job"]["upstream_outputs"] == {"build": {"artifact": "rota.tar.gz"},
                                                 "approve": {"approved_by": "ann"}}
    assert deploy["job"]["env"]["APPROVER"] == "${{ needs.approve.outputs.approved_by }}"
