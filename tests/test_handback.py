"""A job handed back by its worker (a graceful stop past its drain timeout):
it runs again first in its queue, its attempt recorded `handed_back`, no
retry spent; a re-sent hand-back is a replay; past MAX_HANDBACKS it counts
as a failed attempt. On both stores, and over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from server import limits
from server.errors import Conflict, LeaseLost
from tests.conftest import ADMIN_TOKEN
from tests.helpers import claim, job, run_of, submit
from tests.test_api import assert_error

REASON = "worker shut down before the job finished"


async def job_of(store, run: str, job_id: str):
    """The job with its attempts."""
    return (await store.run_job(run, job_id))[1]


async def test_a_handed_back_job_runs_again_with_its_retry_budget_whole(store):
    wf = await submit(store, job("deploy", retries=1))
    first = await claim(store, "w1")
    assert await store.hand_back(first.lease.lease_id, REASON) == ("handed_back", False)
    run = await run_of(store, wf)
    state = await job_of(store, run, "deploy")
    assert (state.status, state.attempt, state.error) == ("queued", 1, None)
    [attempt] = state.attempts
    assert (attempt.number, attempt.status, attempt.worker_id) == (0, "handed_back", "w1")
    assert attempt.error == f"handed back by worker w1: {REASON}"
    event = (await store.events(run))[-1]
    assert (event.job_id, event.status, event.detail) == ("deploy", "queued", f"handed back by worker w1: {REASON}")
    # The next attempt still has its one retry.
    second = await claim(store, "w2")
    assert (second.job.job_id, second.job.attempt) == ("deploy", 1)
    assert await store.fail(second.lease.lease_id, "boom", True) == ("retrying", False)
    third = await claim(store, "w2")
    assert await store.fail(third.lease.lease_id, "boom again", True) == ("failure", False)


async def test_a_handed_back_job_goes_to_the_head_of_its_queue(store):
    await submit(store, job("first"), job("second"))
    taken = await claim(store)
    assert taken.job.job_id == "first"
    await store.hand_back(taken.lease.lease_id, REASON)
    assert (await claim(store)).job.job_id == "first"


async def test_a_handed_back_job_drops_what_its_attempt_reported(store):
    wf = await submit(store, job("a"))
    c = await claim(store)
    await store.set_outputs(c.lease.lease_id, "*", {"half": "done"}, 1 << 20)
    await store.hand_back(c.lease.lease_id, REASON)
    again = await claim(store)
    await store.complete(again.lease.lease_id, {"all": "done"})
    assert (await store.job_state(await run_of(store, wf), "a")).outputs == {"all": "done"}


async def test_a_resent_hand_back_is_a_replay_and_changes_nothing(store):
    wf = await submit(store, job("a"))
    c = await claim(store)
    lid = c.lease.lease_id
    assert await store.hand_back(lid, REASON) == ("handed_back", False)
    assert await store.hand_back(lid, REASON) == ("handed_back", True)
    assert len((await job_of(store, await run_of(store, wf), "a")).attempts) == 1
    assert await store.redis.zcard(store.prefix + "ready:") == 1
    # another result for the settled lease: the hand-back stands
    with pytest.raises(Conflict) as refused:
        await store.fail(lid, "late", True)
    assert refused.value.code == "lease_settled"


async def test_concurrent_hand_backs_and_results_settle_a_lease_once(store):
    wf = await submit(store, job("a"))
    c = await claim(store)
    lid = c.lease.lease_id
    calls = [store.hand_back(lid, REASON) for _ in range(8)] + [store.complete(lid, {}) for _ in range(4)]
    answers = await asyncio.gather(*calls, return_exceptions=True)
    fresh = [a for a in answers if isinstance(a, tuple) and not a[1]]
    assert len(fresh) == 1, answers
    state = await store.job_state(await run_of(store, wf), "a")
    if fresh[0][0] == "handed_back":
        assert state.status == "queued" and await store.redis.zcard(store.prefix + "ready:") == 1
    else:
        assert state.status == "success" and await store.redis.zcard(store.prefix + "ready:") == 0


async def test_a_lost_or_cancelled_lease_is_refused_and_changes_nothing(store):
    with pytest.raises(LeaseLost):
        await store.hand_back("no-such-lease", REASON)
    wf = await submit(store, job("a"))
    c = await claim(store)
    run = await run_of(store, wf)
    await store.cancel_job(run, "a")
    with pytest.raises(Conflict) as refused:
        await store.hand_back(c.lease.lease_id, REASON)
    assert refused.value.code == "job_cancelled"
    assert (await store.job_state(run, "a")).status == "cancelled"


async def test_past_max_handbacks_a_hand_back_counts_as_a_failed_attempt(store, monkeypatch):
    monkeypatch.setattr(limits, "MAX_HANDBACKS", 2)
    wf = await submit(store, job("poison", retries=1))
    run = await run_of(store, wf)
    for _ in range(2):
        assert (await store.hand_back((await claim(store)).lease.lease_id, REASON))[0] == "handed_back"
    # the third spends the one retry, the fourth fails the job for good
    assert (await store.hand_back((await claim(store)).lease.lease_id, REASON))[0] == "retrying"
    assert (await store.hand_back((await claim(store)).lease.lease_id, REASON))[0] == "failure"
    state = await job_of(store, run, "poison")
    assert state.status == "failure"
    assert "handed back 4 times, more than 2: this one counts as a failed attempt" in state.error
    assert [a.status for a in state.attempts] == ["handed_back", "handed_back", "failure", "failure"]
    # A retry by hand starts the count again.
    await store.retry_job(run, "poison")
    assert (await store.hand_back((await claim(store)).lease.lease_id, REASON))[0] == "handed_back"


# ---- over HTTP ------------------------------------------------------------------


async def _lease(api, headers=None) -> dict:
    await api.post("/api/workflows?run=true", json={"name": "x", "jobs": [{"id": "a", "command": "true"}]},
                   headers=headers)
    resp = await api.post("/api/jobs/claim", json={"worker_id": "w"}, headers=headers)
    return resp.json()["lease"]


async def test_release_route_hands_the_job_back(api):
    lease = await _lease(api)
    lid = lease["lease_id"]
    resp = await api.post(f"/api/jobs/{lid}/release", json={"reason": "draining"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"ok": True, "lease_id": lid, "outcome": "handed_back", "replayed": False}
    again = await api.post(f"/api/jobs/{lid}/release", json={"reason": "draining"})
    assert again.json()["replayed"] is True
    job = (await api.get(f"/api/runs/{lease['run_id']}/jobs/a")).json()
    assert (job["status"], job["attempt"]) == ("queued", 1)
    assert [a["status"] for a in job["attempts"]] == ["handed_back"]
    assert_error(await api.post("/api/jobs/nolease/release", json={}), 409, "lease_lost")


async def test_release_refuses_a_bad_reason_naming_the_field(api):
    lease = await _lease(api)
    too_long = "x" * (limits.MAX_HANDBACK_REASON_CHARS + 1)
    err = assert_error(await api.post(f"/api/jobs/{lease['lease_id']}/release", json={"reason": too_long}), 422)
    assert "reason" in err["message"] + str(err["details"])
    err = assert_error(await api.post(f"/api/jobs/{lease['lease_id']}/release", json={"reason": 3}), 422)
    assert "reason" in err["message"] + str(err["details"])
    job = (await api.get(f"/api/workflows/{lease['workflow_id']}")).json()["jobs"][0]
    assert job["status"] == "running"


async def test_a_job_cannot_hand_itself_back_with_its_run_token(auth_api):
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = await auth_api.post("/api/tokens", json={"name": "w", "scopes": ["worker"]}, headers=admin)
    worker = {"Authorization": f"Bearer {created.json()['token']}"}
    await auth_api.post("/api/workflows?run=true", json={"name": "x", "jobs": [{"id": "a", "command": "true"}]},
                        headers=admin)
    lease = (await auth_api.post("/api/jobs/claim", json={"worker_id": "w"}, headers=worker)).json()["lease"]
    lid = lease["lease_id"]
    run_token = {"Authorization": f"Bearer {lease['run_token']}"}
    assert_error(await auth_api.post(f"/api/jobs/{lid}/release", json={}, headers=run_token), 403, "forbidden")
    # nor the admin, which did not claim it; the worker token that did may
    assert_error(await auth_api.post(f"/api/jobs/{lid}/release", json={}, headers=admin), 403, "forbidden")
    resp = await auth_api.post(f"/api/jobs/{lid}/release", json={}, headers=worker)
    assert resp.json()["outcome"] == "handed_back"


async def test_release_is_in_openapi(api):
    spec = (await api.get("/openapi.json")).json()
    op = spec["paths"]["/api/jobs/{lease_id}/release"]["post"]
    assert {"200", "409", "422"} <= set(op["responses"])
