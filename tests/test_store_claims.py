"""Claiming: atomicity under concurrency, label routing, priority, cascade."""

from __future__ import annotations

import asyncio

from server.models import WorkflowSpec
from tests.helpers import claim, job, lease_id, statuses, submit


async def test_fifty_concurrent_claimers_one_job_exactly_one_wins(store):
    wf = await submit(store, job("only"))
    results = await asyncio.gather(*(store.claim(f"w{i}", [], 30, lease_id()) for i in range(50)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert winners[0].job.job_id == "only" and winners[0].job.workflow_id == wf
    assert (await statuses(store, wf)) == {"only": "running"}


async def test_500_jobs_drained_by_8_loops_each_completed_once(store):
    wf = await submit(store, *(job(f"j{i}") for i in range(500)))
    done: list[str] = []

    async def loop(worker: str) -> None:
        while (c := await claim(store, worker)) is not None:
            await store.complete(c.lease.lease_id, {"by": worker})
            done.append(c.job.job_id)

    await asyncio.gather(*(loop(f"w{i}") for i in range(8)))
    assert len(done) == 500 and len(set(done)) == 500
    out = await store.get_workflow(wf)
    assert out.status == "success"
    assert all(j.status == "success" and j.attempt == 0 for j in out.jobs)


async def test_job_nobody_can_run_does_not_block_one_that_can(store):
    # The GPU job is older (first in line), but a plain worker must still get
    # the plain job behind it: no head-of-line blocking across label sets.
    await submit(store, job("gpu-job", labels=["gpu"]))
    await submit(store, job("plain-job"))
    got = await claim(store, "cpu-worker", labels=["linux"])
    assert got is not None and got.job.job_id == "plain-job"
    assert await claim(store, "cpu-worker", labels=["linux"]) is None
    gpu = await claim(store, "gpu-worker", labels=["gpu", "linux"])
    assert gpu is not None and gpu.job.job_id == "gpu-job"


async def test_worker_needs_every_required_label(store):
    await submit(store, job("build", labels=["docker", "linux"]))
    assert await claim(store, "w", labels=["linux"]) is None
    assert await claim(store, "w", labels=["docker"]) is None
    got = await claim(store, "w", labels=["docker", "linux", "x86"])
    assert got is not None and got.job.required_labels == ["docker", "linux"]


async def test_oldest_matching_job_first_across_label_sets(store):
    await submit(store, job("first", labels=["a"]))
    await submit(store, job("second"))
    await submit(store, job("third", labels=["a"]))
    order = [(await claim(store, "w", labels=["a"])).job.job_id for _ in range(3)]
    assert order == ["first", "second", "third"]


async def test_higher_priority_first(store):
    await submit(store, job("low", priority=-5))
    await submit(store, job("normal"))
    await submit(store, job("urgent", priority=10))
    order = [(await claim(store)).job.job_id for _ in range(3)]
    assert order == ["urgent", "normal", "low"]


async def test_cascade_enqueues_dependents_with_their_labels_policy_and_outputs(store):
    from tests.helpers import exponential

    wf = await submit(
        store,
        job("test"),
        job("lint"),
        job("build", needs=["test", "lint"], labels=["linux"], retries=3, backoff=exponential(2, 60)),
    )
    assert (await statuses(store, wf))["build"] == "queued"
    first = await claim(store)
    await store.complete(first.lease.lease_id, {"coverage": "94%"})
    # One need left: build is still waiting, and a plain worker gets the other root.
    second = await claim(store)
    assert {first.job.job_id, second.job.job_id} == {"test", "lint"}
    assert await claim(store) is None
    await store.complete(second.lease.lease_id, {})
    assert await claim(store, "plain") is None, "build keeps its linux label after the cascade"
    build = await claim(store, "linux-box", labels=["linux"])
    assert build is not None and build.job.job_id == "build"
    assert build.job.retry_policy.max_retries == 3
    assert build.job.retry_policy.backoff.Exponential.base_secs == 2
    assert build.job.upstream_outputs == {first.job.job_id: {"coverage": "94%"}, second.job.job_id: {}}


async def test_nothing_is_claimable_before_run(store):
    wf = await submit(store, job("a"), run=False)
    assert await claim(store) is None
    out = await store.get_workflow(wf)
    assert out.status == "idle" and out.jobs[0].status == "queued"  # never started: idle; its jobs keep the seed's queued
    await store.run_workflow(wf)
    assert (await claim(store)).job.job_id == "a"
    assert (await store.get_workflow(wf)).status == "running"


async def test_workflow_status_follows_its_jobs(store):
    wf = await submit(store, job("a"), job("b", needs=["a"]))
    assert (await store.get_workflow(wf)).status == "queued"
    a = await claim(store)
    assert (await store.get_workflow(wf)).status == "running"
    await store.complete(a.lease.lease_id, {})
    b = await claim(store)
    await store.complete(b.lease.lease_id, {})
    out = await store.get_workflow(wf)
    assert out.status == "success" and out.finished_at_ms is not None


async def test_create_is_idempotent_by_key(store):
    spec = WorkflowSpec(name="ci", jobs=[job("a")])
    first = await store.create_workflow(spec, "wf-one", run=True, idempotency_key="k1")
    again = await store.create_workflow(spec, "wf-two", run=True, idempotency_key="k1")
    assert first == ("created", "wf-one") and again == ("replayed", "wf-one")
    assert [w.id for w in await store.list_workflows()] == ["wf-one"]
    assert await claim(store) is not None and await claim(store) is None


async def test_list_is_newest_first_with_paging_and_status_filter(store):
    ids = [await submit(store, job("a"), run=False) for _ in range(5)]
    assert [w.id for w in await store.list_workflows()] == ids[::-1]
    assert [w.id for w in await store.list_workflows(limit=2, offset=1)] == ids[::-1][1:3]
    await store.run_workflow(ids[1])
    await claim(store)
    assert [w.id for w in await store.list_workflows(status="running")] == [ids[1]]
    await store.run_workflow(ids[2])
    # the seed's meaning: a job of the latest run in that status; a workflow
    # that never ran shows its jobs queued, so it is listed as queued too
    assert [w.id for w in await store.list_workflows(status="queued")] == [ids[4], ids[3], ids[2], ids[0]]
    assert await store.list_workflows(status="failure") == []


async def test_a_retried_claim_returns_the_same_lease_and_job(store):
    # redis-py re-sends a script after a dropped reply with the same lease
    # id: that must hand back the first claim, not lease a second job.
    wf = await submit(store, job("a"), job("b"))
    first = await store.claim("w", [], 30, "same-lease")
    again = await store.claim("w", [], 30, "same-lease")
    assert again == first
    assert sorted((await statuses(store, wf)).values()) == ["queued", "running"]
    await store.complete("same-lease", {})
    assert sorted((await statuses(store, wf)).values()) == ["queued", "success"]
