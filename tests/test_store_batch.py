"""rota's batch protocol in the store, on both stores: several claims in one
script, results with the next claim, one heartbeat for many leases. Each
form keeps what the single forms promise: a job leased once, fencing,
claim ids that recover a lost reply without spending an attempt, replayed
results."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from server.errors import Conflict, LeaseLost
from server.store.batch import ClaimArgs, Completed, Failed
from tests.helpers import expire, job, run_of, statuses, submit


def args(worker: str = "w", n: int = 1, claim_id: str = "", labels=(), ttl: int = 30, owner: str = "") -> ClaimArgs:
    return ClaimArgs(worker, list(labels), ttl, [str(uuid.uuid4()) for _ in range(n)], owner, claim_id)


async def test_a_batch_claim_leases_up_to_max_jobs_best_first_each_once(store):
    wf = await submit(store, *(job(f"j{i}") for i in range(5)), job("urgent", priority=5))
    got = await store.claim_many(args(n=4))
    assert [c.job.job_id for c in got] == ["urgent", "j0", "j1", "j2"]
    assert len({c.lease.lease_id for c in got}) == 4
    assert all(c.lease.worker_id == "w" and c.job.attempt == 0 for c in got)
    rest = await store.claim_many(args(n=4))
    assert [c.job.job_id for c in rest] == ["j3", "j4"], "fewer when fewer are queued"
    assert await store.claim_many(args(n=4)) == []
    assert set((await statuses(store, wf)).values()) == {"running"}
    for c in got + rest:
        await store.complete(c.lease.lease_id, {})
    assert (await store.get_workflow(wf)).status == "success"


async def test_a_batch_claim_takes_only_jobs_the_worker_can_run(store):
    await submit(store, job("gpu", labels=["gpu"]), job("plain"), job("linux", labels=["linux"]))
    got = await store.claim_many(args(n=10, labels=["linux"]))
    assert sorted(c.job.job_id for c in got) == ["linux", "plain"]


async def test_many_workers_claiming_batches_of_one_queue_lease_each_job_once(store):
    wf = await submit(store, *(job(f"j{i}") for i in range(300)))
    leased: list[str] = []

    async def loop(worker: str) -> None:
        while got := await store.claim_many(args(worker, n=7)):
            leased.extend(c.job.job_id for c in got)
            # results and the next batch in one script, as a busy worker sends them
            settled, nxt = await store.results([Completed(c.lease.lease_id, {}) for c in got], "*",
                                               args(worker, n=3))
            assert [s.outcome for s in settled] == ["success"] * len(got)
            leased.extend(c.job.job_id for c in nxt)
            for c in nxt:
                await store.complete(c.lease.lease_id, {})

    await asyncio.gather(*(loop(f"w{i}") for i in range(10)))
    assert len(leased) == 300 and len(set(leased)) == 300
    out = await store.get_workflow(wf)
    assert out.status == "success" and all(j.attempt == 0 for j in out.jobs)


async def test_a_lost_batch_claim_reply_is_recovered_by_its_claim_id_without_spending_attempts(store):
    wf = await submit(store, *(job(f"j{i}") for i in range(6)))
    first = await store.claim_many(args(n=3, claim_id="batch-1"))
    # The reply was lost: the worker sends the same claim again. The server
    # makes new lease ids for it, as it does for any request.
    again = await store.claim_many(args(n=3, claim_id="batch-1"))
    assert [(c.job.job_id, c.lease.lease_id) for c in again] == [(c.job.job_id, c.lease.lease_id) for c in first]
    assert sorted((await statuses(store, wf)).values()).count("running") == 3
    assert all(c.job.attempt == 0 for c in again)
    # a new claim id is a new claim
    other = await store.claim_many(args(n=3, claim_id="batch-2"))
    assert {c.job.job_id for c in other}.isdisjoint(c.job.job_id for c in first)


async def test_a_re_sent_batch_claim_keeps_what_it_got_and_may_take_what_came_since(store):
    wf = await submit(store, job("a"), job("b"))
    first = await store.claim_many(args(n=4, claim_id="c1"))
    assert [c.job.job_id for c in first] == ["a", "b"]
    wf2 = await submit(store, job("x"), job("y"), job("z"))
    again = await store.claim_many(args(n=4, claim_id="c1"))
    assert [c.lease.lease_id for c in again[:2]] == [c.lease.lease_id for c in first]
    assert [c.job.job_id for c in again[2:]] == ["x", "y"]
    assert set((await statuses(store, wf)).values()) == {"running"}
    assert sorted((await statuses(store, wf2)).values()) == ["queued", "running", "running"]


async def test_a_single_claim_and_a_batch_of_one_share_the_claim_id(store):
    await submit(store, job("a"), job("b"))
    single = await store.claim("w", [], 30, str(uuid.uuid4()), claim_id="same")
    batch = await store.claim_many(args(n=1, claim_id="same"))
    assert [c.lease.lease_id for c in batch] == [single.lease.lease_id]


async def test_a_plain_claim_re_sent_after_a_batch_with_its_claim_id_gets_the_batchs_first_lease(store):
    await submit(store, job("a"), job("b"), job("c"))
    batch = await store.claim_many(args(n=2, claim_id="both"))
    single = await store.claim("w", [], 30, str(uuid.uuid4()), claim_id="both")
    assert single.lease.lease_id == batch[0].lease.lease_id


async def test_a_re_sent_batch_whose_first_lease_ended_gets_the_others_back_and_a_new_job(store):
    wf = await submit(store, *(job(f"j{i}") for i in range(4)))
    first = await store.claim_many(args(n=3, claim_id="c2"))
    await store.complete(first[0].lease.lease_id, {})
    again = await store.claim_many(args(n=3, claim_id="c2"))
    assert [c.lease.lease_id for c in again[1:]] == [c.lease.lease_id for c in first[1:]]
    assert again[0].job.job_id == "j3" and again[0].lease.lease_id not in {c.lease.lease_id for c in first}
    # sent a third time, the record names what the second try holds
    third = await store.claim_many(args(n=3, claim_id="c2"))
    assert [c.lease.lease_id for c in third] == [c.lease.lease_id for c in again]
    assert sorted((await statuses(store, wf)).values()) == ["running", "running", "running", "success"]


async def test_a_run_finishes_in_the_call_that_settles_its_last_jobs_and_counts_them_all(store):
    wf = await submit(store, *(job(f"j{i}") for i in range(6)), job("after", needs=["j0"]))
    run = await run_of(store, wf)
    got = await store.claim_many(args(n=6))
    # one call: six results, and its claim takes the job they released
    settled, more = await store.results([Completed(c.lease.lease_id, {}) for c in got], claim=args(n=6))
    assert [s.outcome for s in settled] == ["success"] * 6 and [c.job.job_id for c in more] == ["after"]
    head = await store.redis.hgetall(store.key("run", run))
    assert (head["state"], int(head["n:success"]), int(head["n:running"]), int(head["n:ready"])) == (
        "active", 6, 1, 0)
    settled, _ = await store.results([Failed(more[0].lease.lease_id, "no", retryable=False)], claim=args(n=6))
    assert settled[0].outcome == "failure"
    head = await store.redis.hgetall(store.key("run", run))
    assert (head["state"], int(head["n:success"]), int(head["n:failure"]), int(head["n:running"])) == (
        "done", 6, 1, 0)
    assert (await store.get_workflow(wf)).status == "failure"


async def test_a_re_sent_batch_gets_its_live_leases_back_when_an_earlier_one_ended_and_nothing_is_queued(store):
    await submit(store, job("a"), job("b"), job("c"))
    first = await store.claim_many(args(n=3, claim_id="c3"))
    await store.complete(first[0].lease.lease_id, {})
    again = await store.claim_many(args(n=3, claim_id="c3"))
    assert [c.lease.lease_id for c in again] == [c.lease.lease_id for c in first[1:]]
    third = await store.claim_many(args(n=3, claim_id="c3"))
    assert [c.lease.lease_id for c in third] == [c.lease.lease_id for c in first[1:]]


async def test_a_plain_claim_with_a_batchs_claim_id_after_its_first_lease_ended_keeps_the_others(store):
    await submit(store, *(job(x) for x in "abcde"))
    first = await store.claim_many(args(n=3, claim_id="cP"))
    await store.complete(first[0].lease.lease_id, {})
    single = await store.claim("w", [], 30, str(uuid.uuid4()), claim_id="cP")
    assert single.job.job_id == "d"
    again = await store.claim_many(args(n=3, claim_id="cP"))
    assert [c.lease.lease_id for c in again] == [single.lease.lease_id] + [c.lease.lease_id for c in first[1:]]


async def test_a_batch_re_sent_for_fewer_jobs_keeps_the_rest_for_a_later_send(store):
    await submit(store, *(job(x) for x in "abcd"))
    first = await store.claim_many(args(n=3, claim_id="cF"))
    fewer = await store.claim_many(args(n=1, claim_id="cF"))
    assert [c.lease.lease_id for c in fewer] == [first[0].lease.lease_id]
    again = await store.claim_many(args(n=3, claim_id="cF"))
    assert [c.lease.lease_id for c in again] == [c.lease.lease_id for c in first]


async def test_complete_and_claim_next_walks_a_chain_one_call_per_job(store):
    wf = await submit(store, job("j0"), *(job(f"j{i}", needs=[f"j{i - 1}"]) for i in range(1, 5)))
    (c,) = await store.claim_many(args(n=1))
    order = [c.job.job_id]
    while True:
        settled, nxt = await store.results([Completed(c.lease.lease_id, {"n": c.job.job_id})], "*", args(n=1),
                                           strict=True)
        assert settled[0].outcome == "success" and settled[0].replayed is False
        if not nxt:
            break
        (c,) = nxt
        order.append(c.job.job_id)
        assert c.job.upstream_outputs == {order[-2]: {"n": order[-2]}}
    assert order == ["j0", "j1", "j2", "j3", "j4"]
    assert (await store.get_workflow(wf)).status == "success"


async def test_a_lost_complete_and_claim_next_reply_is_replayed_with_the_same_next_lease(store):
    wf = await submit(store, job("a"), job("b"), job("c"))
    (a,) = await store.claim_many(args(n=1))
    first, first_next = await store.results([Completed(a.lease.lease_id, {"k": "v"})], "*",
                                            args(n=1, claim_id="n1"), strict=True)
    again, again_next = await store.results([Completed(a.lease.lease_id, {"k": "v"})], "*",
                                            args(n=1, claim_id="n1"), strict=True)
    assert (first[0].outcome, first[0].replayed) == ("success", False)
    assert (again[0].outcome, again[0].replayed) == ("success", True)
    assert [c.lease.lease_id for c in again_next] == [c.lease.lease_id for c in first_next]
    assert again_next[0].job.attempt == 0
    assert sorted((await statuses(store, wf)).values()) == ["queued", "running", "success"]


async def test_each_result_of_a_batch_is_answered_as_its_single_call_would_be(store):
    wf = await submit(store, job("ok"), job("retry", retries=1), job("lost", retries=1), job("gone"),
                      job("later", labels=["x"]))
    got = {c.job.job_id: c for c in await store.claim_many(args(n=4))}
    await expire(store, got["lost"].lease.lease_id)
    await store.cancel_job(await run_of(store, wf), "gone")
    items = [Completed(got["ok"].lease.lease_id, {"a": "1"}), Failed(got["retry"].lease.lease_id, "boom", True),
             Completed(got["lost"].lease.lease_id, {}), Completed(got["gone"].lease.lease_id, {}),
             Completed("no-such-lease", {})]
    settled, nxt = await store.results(items, "*", args(n=2, labels=["x"]))
    assert [(s.outcome, s.replayed) for s in settled[:2]] == [("success", False), ("retrying", False)]
    assert isinstance(settled[2].error, LeaseLost) and isinstance(settled[4].error, LeaseLost)
    assert isinstance(settled[3].error, Conflict) and settled[3].error.code == "job_cancelled"
    # the claim goes ahead whatever became of the results: the worker's slots are free
    assert sorted(c.job.job_id for c in nxt) == ["later", "retry"]
    # the batch again: the taken ones replay, the refused ones are refused again
    again, _ = await store.results(items[:2], "*")
    assert [(s.outcome, s.replayed) for s in again] == [("success", True), ("retrying", True)]


async def test_a_refused_result_with_next_claims_nothing(store):
    wf = await submit(store, job("a"), job("b"))
    (a,) = await store.claim_many(args(n=1))
    await expire(store, a.lease.lease_id)
    settled, nxt = await store.results([Completed(a.lease.lease_id, {})], "*", args(n=1), strict=True)
    assert isinstance(settled[0].error, LeaseLost) and nxt == []
    assert (await statuses(store, wf))["b"] == "queued"


async def test_a_result_for_another_tokens_lease_is_forbidden_and_changes_nothing(store):
    wf = await submit(store, job("a"))
    (a,) = await store.claim_many(args(n=1, owner="tok-1"))
    settled, _ = await store.results([Completed(a.lease.lease_id, {})], "tok-2")
    assert settled[0].error.status == 403
    assert (await statuses(store, wf)) == {"a": "running"}
    assert (await store.heartbeat_many([a.lease.lease_id], "tok-2"))[0].status == "forbidden"


async def test_one_heartbeat_renews_every_lease_and_carries_cancellations(store):
    wf = await submit(store, job("a"), job("b"), job("c"))
    got = {c.job.job_id: c for c in await store.claim_many(args(n=3, ttl=30))}
    await store.cancel_job(await run_of(store, wf), "b")
    ids = [got[j].lease.lease_id for j in "abc"] + ["unknown"]
    beats = await store.heartbeat_many(ids)
    assert [b.status for b in beats] == ["live", "cancelled", "live", "lost"]
    for b in beats[:3]:
        assert b.expires_at_ms >= got["a"].lease.granted_at_ms + 30_000
        score = await store.redis.zscore(store.prefix + "leases", b.lease_id)
        assert int(score) == b.expires_at_ms


async def test_a_batch_heartbeat_fences_a_superseded_lease(store):
    wf = await submit(store, job("a", retries=2), job("b"))
    old = {c.job.job_id: c for c in await store.claim_many(args("dead", n=2))}
    await expire(store, old["a"].lease.lease_id)
    # the expired lease is failed by whatever touches it first: here the heartbeat
    beats = await store.heartbeat_many([old["a"].lease.lease_id, old["b"].lease.lease_id])
    assert [b.status for b in beats] == ["lost", "live"]
    (new,) = await store.claim_many(args("live", n=1))
    assert (new.job.job_id, new.job.attempt) == ("a", 1)
    # the old holder, still heartbeating, is fenced off; the new one is not
    beats = await store.heartbeat_many([old["a"].lease.lease_id, new.lease.lease_id])
    assert [b.status for b in beats] == ["lost", "live"]
    settled, _ = await store.results([Completed(old["a"].lease.lease_id, {"stale": "1"})])
    assert isinstance(settled[0].error, LeaseLost)
    await store.complete(new.lease.lease_id, {"fresh": "1"})
    await store.complete(old["b"].lease.lease_id, {})
    out = await store.get_workflow(wf)
    assert out.status == "success"
    assert {j.id: j.outputs for j in out.jobs}["a"] == {"fresh": "1"}


async def test_concurrent_batch_heartbeats_and_expiry_leave_one_holder(store):
    await submit(store, *(job(f"j{i}", retries=3) for i in range(20)))
    old = await store.claim_many(args("old", n=20))
    for c in old:
        await expire(store, c.lease.lease_id)
    ids = [c.lease.lease_id for c in old]
    # heartbeats of the dead holder race with claims of live workers
    results = await asyncio.gather(*(store.heartbeat_many(ids) for _ in range(5)),
                                   *(store.claim_many(args(f"new{i}", n=5)) for i in range(6)))
    assert all(b.status == "lost" for beats in results[:5] for b in beats)
    new = [c for got in results[5:] for c in got]
    assert sorted(c.job.job_id for c in new) == sorted(f"j{i}" for i in range(20))
    assert all(c.job.attempt == 1 for c in new)
    assert all(b.status == "live" for b in await store.heartbeat_many([c.lease.lease_id for c in new]))


async def test_a_batch_heartbeat_says_when_a_job_went_to_wait_for_an_event(store):
    await submit(store, job("a"))
    (a,) = await store.claim_many(args(n=1))
    await store.wait_for_event(a.lease.lease_id, "*", "go", 60)
    assert [b.status for b in await store.heartbeat_many([a.lease.lease_id])] == ["waiting"]


async def test_a_batch_claim_refuses_another_tokens_worker_id_and_leases_nothing(store):
    wf = await submit(store, job("a"), job("b"))
    await store.claim_many(args("owned", n=1, owner="admin"))  # the bootstrap admin token's worker id
    with pytest.raises(Conflict) as err:
        await store.claim_many(args("owned", n=3, owner="tok-2"))
    assert err.value.code == "worker_id_taken"
    assert await statuses(store, wf) == {"a": "running", "b": "queued"}
