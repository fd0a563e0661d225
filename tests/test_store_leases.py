"""Leases as fencing tokens, expiry, retries with backoff, failure cascade,
cancel and re-run semantics."""

from __future__ import annotations

import asyncio

import pytest

from server.models import RegisterRequest
from server.errors import Conflict, LeaseLost, NotFound, Unprocessable
from server.models import LogChunk
from server.reaper import reap_once
from tests.helpers import run_of, claim, expire, exponential, fixed, job, make_delayed_due, statuses, submit


def chunk(wf: str, job_id: str, seq: int, data: str = "x") -> LogChunk:
    return LogChunk(workflow_id=wf, job_id=job_id, sequence=seq, data=data, timestamp_ms=1)


async def assert_lease_dead(store, lid: str, wf: str, job_id: str) -> None:
    with pytest.raises(LeaseLost):
        await store.heartbeat(lid)
    with pytest.raises(LeaseLost):
        await store.complete(lid, {})
    with pytest.raises(LeaseLost):
        await store.fail(lid, "late", True)
    with pytest.raises(LeaseLost):
        await store.append_logs(lid, [chunk(wf, job_id, 99)])


async def test_heartbeat_renews_by_the_lease_ttl(store):
    await submit(store, job("a"))
    c = await claim(store, ttl=30)
    first = (await store.heartbeat(c.lease.lease_id)).answer
    assert first.cancelled is False
    assert first.expires_at_ms >= c.lease.granted_at_ms + 30_000
    score = await store.redis.zscore(store.prefix + "leases", c.lease.lease_id)
    assert int(score) == first.expires_at_ms


async def test_expired_lease_is_reclaimed_with_next_attempt_and_old_lease_fenced(store):
    wf = await submit(store, job("a", retries=2))
    old = await claim(store, "dead-worker")
    await expire(store, old.lease.lease_id)
    assert await reap_once(store) == (1, 0, 0)
    new = await claim(store, "live-worker")
    assert new.job.job_id == "a" and new.job.attempt == 1
    await assert_lease_dead(store, old.lease.lease_id, wf, "a")
    # The stale calls changed nothing: the new lease still owns the job.
    state = await store.job_state(await run_of(store, wf), "a")
    assert state.status == "running" and state.worker_id == "live-worker" and state.attempt == 1
    await store.complete(new.lease.lease_id, {"ok": "1"})
    assert (await store.get_workflow(wf)).status == "success"


async def test_expired_lease_is_refused_even_before_any_reaper_runs(store):
    wf = await submit(store, job("a", retries=1))
    c = await claim(store)
    await expire(store, c.lease.lease_id)
    with pytest.raises(LeaseLost):
        await store.complete(c.lease.lease_id, {})
    # Refusing it also counted the attempt, exactly as the reaper would have.
    again = await claim(store)
    assert again.job.attempt == 1
    assert (await store.job_state(await run_of(store, wf), "a")).error == "lease expired"
    assert await reap_once(store) == (0, 0, 0)


async def test_lease_expires_in_real_time(store):
    await submit(store, job("a", retries=1))
    c = await claim(store, ttl=1)
    await asyncio.sleep(1.1)
    expired, _, _ = await reap_once(store)
    assert expired == 1
    assert (await claim(store)).job.attempt == 1
    with pytest.raises(LeaseLost):
        await store.heartbeat(c.lease.lease_id)


async def test_many_reapers_at_once_requeue_a_dead_job_once(store):
    wf = await submit(store, job("a", retries=5))
    c = await claim(store)
    await expire(store, c.lease.lease_id)
    results = await asyncio.gather(*(reap_once(store) for _ in range(10)))
    assert sum(r[0] for r in results) == 1
    assert await store.redis.zcard(store.prefix + "ready:") == 1
    assert (await store.job_state(await run_of(store, wf), "a")).attempt == 1


async def test_lease_expiry_with_retries_used_up_fails_and_skips_downstream(store):
    wf = await submit(store, job("a"), job("b", needs=["a"]), job("c", needs=["b"]), job("side"))
    side = await claim(store)
    a = await claim(store)
    assert {side.job.job_id, a.job.job_id} == {"a", "side"}
    lease = a if a.job.job_id == "a" else side
    other = side if lease is a else a
    await expire(store, lease.lease.lease_id)
    await reap_once(store)
    state = await store.job_state(await run_of(store, wf), "a")
    assert state.status == "failure" and state.error == "lease expired" and state.output == "lease expired"
    assert (await statuses(store, wf))["b"] == "skipped"
    assert (await statuses(store, wf))["c"] == "skipped"
    assert (await store.get_workflow(wf)).status == "running", "side job still runs"
    await store.complete(other.lease.lease_id, {})
    assert (await store.get_workflow(wf)).status == "failure"


async def test_retryable_failure_retries_then_fails_for_good(store):
    wf = await submit(store, job("flaky", retries=2), job("after", needs=["flaky"]))
    for attempt in range(3):
        c = await claim(store)
        assert c.job.job_id == "flaky" and c.job.attempt == attempt
        await store.fail(c.lease.lease_id, f"boom {attempt}", True)
    assert await claim(store) is None
    out = await store.get_workflow(wf)
    flaky = out.jobs[0]
    assert (flaky.status, flaky.attempt, flaky.error) == ("failure", 2, "boom 2")
    assert out.jobs[1].status == "skipped" and out.status == "failure"


async def test_non_retryable_failure_ignores_the_retry_budget(store):
    wf = await submit(store, job("a", retries=5))
    c = await claim(store)
    await store.fail(c.lease.lease_id, "bad config", False)
    assert (await statuses(store, wf)) == {"a": "failure"}


async def test_fixed_backoff_delays_the_retry(store):
    wf = await submit(store, job("a", retries=2, backoff=fixed(30)))
    c = await claim(store)
    await store.fail(c.lease.lease_id, "x", True)
    assert await claim(store) is None, "not claimable during its backoff"
    assert (await store.job_state(await run_of(store, wf), "a")).status == "queued"
    await make_delayed_due(store)
    again = await claim(store)
    assert again.job.attempt == 1
    assert again.job.delayed_until_ms - again.job.enqueued_at_ms == 30_000


async def test_exponential_backoff_doubles_and_caps(store):
    await submit(store, job("a", retries=4, backoff=exponential(2, 5)))
    delays = []
    c = await claim(store)
    for _ in range(4):
        await store.fail(c.lease.lease_id, "x", True)
        await make_delayed_due(store)
        c = await claim(store)
        delays.append(c.job.delayed_until_ms - c.job.enqueued_at_ms)
    assert delays == [2000, 4000, 5000, 5000]


async def test_backoff_job_becomes_claimable_on_time(store):
    await submit(store, job("a", retries=1, backoff=fixed(1)))
    c = await claim(store)
    await store.fail(c.lease.lease_id, "x", True)
    assert await store.claim("w", [], 30, "probe") is None
    ((_, due),) = await store.redis.zrange(store.prefix + "delayed", 0, 0, withscores=True)
    now_s, now_us = await store.redis.time()
    await asyncio.sleep((due - (now_s * 1000 + now_us // 1000)) / 1000 + 0.05)
    assert (await claim(store)).job.attempt == 1


async def test_cancel_queued_and_running_jobs(store):
    wf = await submit(store, job("run1"), job("queued1", labels=["none-has-this"]), job("later", needs=["run1"]))
    running = await claim(store)
    assert running.job.job_id == "run1"
    assert await store.cancel_workflow(wf) is True
    assert await statuses(store, wf) == {"run1": "cancelled", "queued1": "cancelled", "later": "cancelled"}
    assert (await store.get_workflow(wf)).status == "cancelled"
    lid = running.lease.lease_id
    hb = (await store.heartbeat(lid)).answer
    assert hb.cancelled is True
    assert await store.is_cancelled(await run_of(store, wf), "run1") is True
    assert (await store.append_logs(lid, [chunk(wf, "run1", 0, "bye")])).accepted == 1
    with pytest.raises(Conflict) as err:
        await store.complete(lid, {})
    assert err.value.code == "job_cancelled"
    assert [w.current_jobs for w in await store.list_workers()] == [[]], "reported: the lease is gone"
    with pytest.raises(Conflict):
        await store.fail(lid, "x", True)
    assert await claim(store, labels=["none-has-this"]) is None
    assert await store.cancel_workflow(wf) is False, "cancel of a finished workflow is a no-op"


async def test_cancelled_lease_that_expires_is_dropped_not_retried(store):
    wf = await submit(store, job("a", retries=3))
    c = await claim(store)
    await store.cancel_workflow(wf)
    await expire(store, c.lease.lease_id)
    assert (await reap_once(store))[0] == 0
    assert await claim(store) is None
    assert await statuses(store, wf) == {"a": "cancelled"}


async def test_a_new_run_leaves_the_old_run_and_its_leases_alone(store):
    wf = await submit(store, job("a"), job("b", needs=["a"]))
    with pytest.raises(Conflict):
        await store.run_workflow(wf)  # seed 002: not while the latest run is going
    a = await claim(store)
    first = await run_of(store, wf)
    await store.cancel_workflow(wf)
    second = await store.run_workflow(wf)
    out = await store.get_workflow(wf)
    assert out.status == "queued" and out.runs == 2 and out.latest_run_id == second != first
    assert [j.status for j in out.jobs] == ["queued", "queued"]
    # run 1's lease is run 1's: its job was cancelled, which its heartbeat says
    assert (await store.heartbeat(a.lease.lease_id)).answer.cancelled is True
    a2 = await claim(store)
    assert (a2.job.job_id, a2.job.attempt, a2.job.run_id) == ("a", 0, second)


async def test_unknown_workflow_and_job(store):
    with pytest.raises(NotFound):
        await store.run_workflow("nope")
    with pytest.raises(NotFound):
        await store.cancel_workflow("nope")
    with pytest.raises(NotFound):
        await store.get_workflow("nope")
    wf = await submit(store, job("a"))
    with pytest.raises(NotFound):
        await store.is_cancelled(await run_of(store, wf), "zzz")
    with pytest.raises(LeaseLost):
        await store.heartbeat("no-such-lease")


async def test_logs_are_idempotent_by_sequence(store):
    wf = await submit(store, job("a"))
    lid = (await claim(store)).lease.lease_id
    first = await store.append_logs(lid, [chunk(wf, "a", 0, "one\n"), chunk(wf, "a", 1, "two\n")])
    resend = await store.append_logs(lid, [chunk(wf, "a", 1, "two\n"), chunk(wf, "a", 2, "three\n")])
    assert (first.accepted, first.duplicates) == (2, 0)
    assert (resend.accepted, resend.duplicates) == (1, 1)
    import msgspec

    chunks = [msgspec.json.decode(c) for _, c in (await store.read_logs(await run_of(store, wf), "a")).entries]
    assert [c["data"] for c in chunks] == ["one\n", "two\n", "three\n"]
    assert {c["attempt"] for c in chunks} == {0}


async def test_log_chunks_must_name_the_lease_job_and_nothing_is_written_otherwise(store):
    wf = await submit(store, job("a"), job("b"))
    lid = (await claim(store)).lease.lease_id
    owner = (await store.redis.hget(store.prefix + "lease:" + lid, "job"))
    other = "b" if owner == "a" else "a"
    with pytest.raises(Unprocessable):
        await store.append_logs(lid, [chunk(wf, owner, 0), chunk(wf, other, 1)])
    assert (await store.read_logs(await run_of(store, wf), owner)).entries == []


async def test_a_finished_one_off_workflow_is_purged_with_its_run_after_retention(store):
    wf = await submit(store, job("a"))
    run = await run_of(store, wf)
    c = await claim(store)
    await store.append_logs(c.lease.lease_id, [chunk(wf, "a", 0)])
    await store.complete(c.lease.lease_id, {})
    due = await store.redis.zscore(store.prefix + "finished", run)
    assert due >= (await store.get_workflow(wf)).finished_at_ms + 7 * 86_400_000 - 1
    assert (await reap_once(store))[2] == 0, "not purged before its retention ends"
    await store.redis.zadd(store.prefix + "finished", {run: 0})
    assert (await reap_once(store))[2] == 1
    with pytest.raises(NotFound):
        await store.get_workflow(wf)
    assert await store.redis.keys(store.prefix + f"*{wf}*") == []
    assert await store.redis.keys(store.prefix + f"*{run}*") == []


async def test_a_run_that_finishes_and_is_purged_in_one_reap_leaves_no_key(store):
    store.retention_secs = 0  # purged by the very reap that finishes it
    wf = await submit(store, job("a"))
    run = await run_of(store, wf)
    c = await claim(store)
    await expire(store, c.lease.lease_id)
    assert await reap_once(store) == (1, 0, 1)
    assert await store.redis.keys(store.prefix + f"*{run}*") == []


async def test_a_fruitless_claim_still_shows_the_worker_alive(store):
    assert await claim(store, "poller", labels=["arm64"]) is None
    (w,) = await store.list_workers()
    assert (w.worker_id, w.status, w.labels) == ("poller", "idle", ["arm64"])


async def test_workers_show_busy_and_idle(store):
    await store.register_worker(RegisterRequest(worker_id="w1", labels=["linux", "docker"]))
    assert [(w.worker_id, w.status, w.labels) for w in await store.list_workers()] == [
        ("w1", "idle", ["docker", "linux"])]
    wf = await submit(store, job("a"))
    c = await claim(store, "w1")
    (w,) = await store.list_workers()
    assert w.status == "busy" and w.current_jobs == [f"{wf}/a"] and w.current_job == f"{wf}/a"
    await store.complete(c.lease.lease_id, {})
    (w,) = await store.list_workers()
    assert w.status == "idle" and w.current_jobs == []


async def test_workers_unseen_for_the_retention_period_are_forgotten(store):
    await store.register_worker(RegisterRequest(worker_id="gone", labels=["linux"]))
    await store.register_worker(RegisterRequest(worker_id="busy-but-quiet"))
    await submit(store, job("a"))
    await claim(store, "busy-but-quiet")
    await store.register_worker(RegisterRequest(worker_id="fresh"))
    await store.redis.zadd(store.prefix + "workers", {"gone": 0, "busy-but-quiet": 0})
    await reap_once(store)
    assert sorted(w.worker_id for w in await store.list_workers()) == ["busy-but-quiet", "fresh"]
    assert not await store.redis.exists(store.prefix + "worker:gone")
