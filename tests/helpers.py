"""Small builders shared by the store and API tests."""

from __future__ import annotations

import uuid

from server.models import BackoffObject, ExponentialParams, FixedParams, JobSpec, WorkflowSpec
from server.store import Store


def job(id: str, needs=(), labels=(), retries=0, backoff="None", priority=0, command="true") -> JobSpec:
    return JobSpec(id=id, name=id, command=command, needs=list(needs), labels=list(labels),
                   max_retries=retries, backoff=backoff, priority=priority)


def fixed(secs: int) -> BackoffObject:
    return BackoffObject(Fixed=FixedParams(delay_secs=secs))


def exponential(base: int, cap: int) -> BackoffObject:
    return BackoffObject(Exponential=ExponentialParams(base_secs=base, max_secs=cap))


async def submit(store: Store, *jobs: JobSpec, run: bool = True, name: str = "wf") -> str:
    wf = "wf-" + uuid.uuid4().hex[:12]
    outcome, _ = await store.create_workflow(WorkflowSpec(name=name, jobs=list(jobs)), wf, run=run)
    assert outcome == "created"
    return wf


def lease_id() -> str:
    return str(uuid.uuid4())


async def claim(store: Store, worker: str = "w1", labels=(), ttl: int = 30):
    """The ClaimResponse, or None."""
    return await store.claim(worker, list(labels), ttl, lease_id())


async def expire(store: Store, lid: str) -> None:
    """Moves a lease's expiry into the past: the same state a dead worker
    leaves behind, without the test sleeping through a TTL."""
    await store.redis.zadd(store.prefix + "leases", {lid: 0})


async def make_delayed_due(store: Store) -> None:
    key = store.prefix + "delayed"
    members = await store.redis.zrange(key, 0, -1)
    if members:
        await store.redis.zadd(key, {m: 0 for m in members})


async def run_of(store: Store, wf: str) -> str:
    """The workflow's latest run."""
    run = await store.latest_run(wf)
    assert run is not None, f"{wf} never ran"
    return run


async def statuses(store: Store, wf: str) -> dict[str, str]:
    return {j.id: j.status for j in (await store.get_workflow(wf)).jobs}
