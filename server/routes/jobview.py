"""One job of a run as `GET /api/runs/{run}/jobs/{job}` shows it: the job
with its attempts and reports, and why it is not running yet. A log tail's
`end` event carries the very same object."""

from __future__ import annotations

from typing import Optional

from ..models import BlockedBy, JobOut, NeedStatus, RunJobOut
from ..store import WIRE_STATUS, Store


async def job_view(store: Store, run: str, job_id: str) -> RunJobOut:
    _, job = await store.run_job(run, job_id)
    return RunJobOut(run_id=run, blocked_by=await _blocked_by(store, run, job),
                     **{f: getattr(job, f) for f in job.__struct_fields__})


async def _blocked_by(store: Store, run: str, job: JobOut) -> Optional[BlockedBy]:
    """Why a queued job is not running: needs not settled, a backoff, its
    decision, max-parallel, its run held (paused, or waiting for its
    workflow or its concurrency group), its own concurrency group full, a
    label of it paused, or no live worker offering its labels."""
    if job.status != "queued":
        return None
    if job.retry_at is not None:
        return BlockedBy(retry_at=job.retry_at)
    # What the job waits for as the run has it: its depends_on, and what a
    # spawn added (the spawned jobs its spawner's dependents wait for, a
    # gate a spawned job waits for).
    (row,) = await store.job_rows(run, [job.id])
    if row.get("st") == "deciding":
        return BlockedBy(deciding=True)
    if row.get("st") == "held" and row.get("hold") == "group":
        return BlockedBy(concurrency_group=job.waiting_for_group)
    if row.get("st") == "held" and row.get("hold") == "run":
        paused, wait = await store.redis.hmget(store.key("run", run), ["paused", "wait"])
        held = "paused" if paused == "1" else "workflow_paused" if wait == "workflow" else "concurrency_group"
        return BlockedBy(run_held=held)  # type: ignore[arg-type]
    if row.get("st") == "held":
        (matrix,) = await store.job_rows(run, [row.get("agg", "")])
        return BlockedBy(max_parallel=int(matrix.get("mp") or 1))
    depends_on = [n for n in row.get("needs", "").split(",") if n]
    needs = [NeedStatus(job=n, status=WIRE_STATUS.get(r.get("st", ""), "queued"))
             for n, r in zip(depends_on, await store.job_rows(run, depends_on))]
    unmet = [n for n in needs if n.status not in ("success", "failure", "skipped", "cancelled")]
    if unmet:
        return BlockedBy(needs=unmet)
    wanted = set(job.required_labels)
    paused = wanted & set(await store.paused_labels())
    if paused:
        return BlockedBy(paused_labels=sorted(paused))
    for worker in await store.list_workers(1000, 0):
        if worker.status in ("idle", "busy") and wanted <= set(worker.labels) \
                and not (worker.exclusive and not wanted):
            return BlockedBy()  # a worker can take it: it is next in line
    return BlockedBy(no_worker_with=sorted(wanted))
