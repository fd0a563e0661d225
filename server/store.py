"""The Redis store. Every state change is exactly one Lua script call.

Python only prepares arguments, calls a script and decodes its answer; reads
(status, listings, logs) are plain pipelined commands. The key layout is
documented at the top of `lua/_lib.lua`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import msgspec
from redis.asyncio import Redis

from .errors import Conflict, Forbidden, LeaseLost, NotFound, Unprocessable
from .models import (
    ClaimResponse,
    HeartbeatResponse,
    JobOut,
    JobSpec,
    Lease,
    LogChunk,
    LogsAccepted,
    QueuedJob,
    RegisterRequest,
    RetryPolicy,
    WorkerOut,
    WorkflowOut,
    WorkflowSpec,
    backoff_fields,
)
from .scripts import Scripts
from .singleflight import SingleFlight
from .settings import Settings

# Internal job states, and the wire status each one shows as.
WIRE_STATUS = {
    "created": "queued", "waiting": "queued", "ready": "queued", "delayed": "queued",
    "running": "running", "success": "success", "failure": "failure",
    "skipped": "skipped", "cancelled": "cancelled",
}
INTERNAL_FOR = {
    wire: [st for st, w in WIRE_STATUS.items() if w == wire] for wire in set(WIRE_STATUS.values())
}
# Spelled the same internally and on the wire.
TERMINAL = {"success", "failure", "skipped", "cancelled"}
# How long a worker that did not say how often it calls may go unseen before
# it shows offline: long-poll claims refresh it at least every 60 s.
OFFLINE_AFTER_MS = 90_000

_spec_decoder = msgspec.json.Decoder(JobSpec)
_outputs_decoder = msgspec.json.Decoder(dict[str, str])
_encode = msgspec.json.encode


def label_key(labels: list[str]) -> str:
    return ",".join(sorted(set(labels)))


def definition_hash(spec: WorkflowSpec) -> str:
    return hashlib.sha1(_encode(spec)).hexdigest()


@dataclass(frozen=True)
class Beat:
    """A renewed lease: the answer, and what a long-poll heartbeat watches."""

    answer: HeartbeatResponse
    workflow_id: str
    job_id: str
    now_ms: int


class Store:
    def __init__(
        self,
        redis: Redis,
        namespace: str = "rota",
        retention_secs: int = 7 * 86_400,
        log_maxlen: int = 10_000,
        idempotency_ttl_secs: int = 86_400,
        result_replay_secs: int = 900,
    ):
        self.redis = redis
        self.result_replay_secs = result_replay_secs
        self.prefix = "{" + namespace + "}:"
        self.retention_secs = retention_secs
        self.log_maxlen = log_maxlen
        self.idempotency_ttl_secs = idempotency_ttl_secs
        self.scripts = Scripts(redis, self.prefix)
        self._reads = SingleFlight()

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> "Store":
        """The one place settings become a store, so a server and a standalone
        reaper on the same Redis always agree on namespace and retention."""
        return cls(redis, settings.namespace, settings.retention_secs, settings.log_max_chunks,
                   result_replay_secs=settings.result_replay_secs)

    @property
    def wake_channel(self) -> str:
        return self.prefix + "wake"

    def job_channel(self, wf: str, job: str) -> str:
        return f"{self.prefix}j:{wf}:{job}"

    async def _call(self, name: str, *args) -> list:
        return await self.scripts.call(name, *args)

    # ---- workflows -----------------------------------------------------------

    async def create_workflow(
        self,
        spec: WorkflowSpec,
        workflow_id: str,
        *,
        run: bool = False,
        idempotency_key: str = "",
        upsert: bool = False,
    ) -> tuple[str, str]:
        """Returns (outcome, workflow_id); outcome as create.lua names it.

        An idempotency key matches a retry only of the same request: the
        same definition, started or not alike."""
        dependents: dict[str, list[str]] = {j.id: [] for j in spec.jobs}
        for job in spec.jobs:
            for need in job.needs:
                dependents[need].append(job.id)
        defhash = definition_hash(spec)
        args: list = [
            workflow_id, spec.name, spec.trigger, idempotency_key, f"{defhash}:{int(run)}",
            self.idempotency_ttl_secs, int(run), self.retention_secs, defhash,
            "upsert" if upsert else "new", len(spec.jobs),
        ]
        for job in spec.jobs:
            kind, a, b = backoff_fields(job.backoff)
            args += [
                job.id, _encode(job), label_key(job.labels), job.priority, job.max_retries,
                kind, a, b, ",".join(job.needs), ",".join(dependents[job.id]), len(job.needs),
            ]
        outcome, wf = await self._call("create", *args)
        return outcome, wf

    async def run_workflow(self, wf: str) -> None:
        (outcome,) = await self._call("run", wf)
        if outcome == "not_found":
            raise NotFound("workflow_not_found", f"no workflow {wf!r}")
        if outcome == "active":
            raise Conflict("workflow_active", f"workflow {wf!r} still has jobs that can run")

    async def cancel_workflow(self, wf: str) -> bool:
        """True when something was cancelled; False for a finished workflow."""
        (outcome,) = await self._call("cancel", wf)
        if outcome == "not_found":
            raise NotFound("workflow_not_found", f"no workflow {wf!r}")
        return outcome == "ok"

    async def get_workflow(self, wf: str) -> WorkflowOut:
        found = await self._load_workflows([wf])
        if not found:
            raise NotFound("workflow_not_found", f"no workflow {wf!r}")
        return found[0]

    async def _load_workflows(self, ids: list[str], max_jobs: Optional[int] = None) -> list[WorkflowOut]:
        """Two pipelined round trips for any number of workflows; ids that no
        longer exist (purged meanwhile) are left out. With `max_jobs`, the
        list stops before the workflow that would pass that many jobs in all
        (but always holds the first)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for wf in ids:
                pipe.hgetall(f"{self.prefix}wf:{wf}")
            heads = [h for h in await pipe.execute() if h]
        if max_jobs is not None:
            total = 0
            for i, head in enumerate(heads):
                total += head["jobs"].count(",") + 1
                if total > max_jobs and i > 0:
                    heads = heads[:i]
                    break
        async with self.redis.pipeline(transaction=False) as pipe:
            for head in heads:
                for job in head["jobs"].split(","):
                    pipe.hgetall(f"{self.prefix}job:{head['id']}:{job}")
            rows = iter(await pipe.execute())
        out = []
        for head in heads:
            jobs = [next(rows) for _ in head["jobs"].split(",")]
            out.append(_workflow_out(head, [_job_out(row) for row in jobs if row]))
        return out

    async def list_workflows(
        self, limit: int = 100, offset: int = 0, status: Optional[str] = None, max_jobs: Optional[int] = None
    ) -> list[WorkflowOut]:
        if status is None:
            ids = await self.redis.zrevrange(f"{self.prefix}wfs", offset, offset + limit - 1)
        else:
            ids = await self._ids_with_job_status(status, limit, offset)
        return await self._load_workflows(ids, max_jobs)

    async def _ids_with_job_status(self, status: str, limit: int, offset: int) -> list[str]:
        fields = [f"n:{st}" for st in INTERNAL_FOR[status]]
        matched: list[str] = []
        start, page = 0, 500
        while len(matched) < offset + limit:
            ids = await self.redis.zrevrange(f"{self.prefix}wfs", start, start + page - 1)
            if not ids:
                break
            async with self.redis.pipeline(transaction=False) as pipe:
                for wf in ids:
                    pipe.hmget(f"{self.prefix}wf:{wf}", fields)
                counts = await pipe.execute()
            matched += [wf for wf, c in zip(ids, counts) if sum(int(x or 0) for x in c) > 0]
            start += page
        return matched[offset:offset + limit]

    async def job_state(self, wf: str, job: str) -> JobOut:
        key = f"{self.prefix}job:{wf}:{job}"
        row = await self._reads.do(("hgetall", key), lambda: self.redis.hgetall(key))
        if not row:
            raise NotFound("job_not_found", f"no job {job!r} in workflow {wf!r}")
        return _job_out(row)

    async def lease_held(self, wf: str, job: str) -> bool:
        """Whether a worker still holds the job's last lease (a cancelled job
        keeps it until its worker reports or the lease expires)."""
        lid = await self.redis.hget(f"{self.prefix}job:{wf}:{job}", "lease")
        return bool(lid) and bool(await self.redis.exists(f"{self.prefix}lease:{lid}"))

    async def is_cancelled(self, wf: str, job: str) -> bool:
        st = await self.redis.hget(f"{self.prefix}job:{wf}:{job}", "st")
        if st is None:
            raise NotFound("job_not_found", f"no job {job!r} in workflow {wf!r}")
        return st == "cancelled"

    async def workflow_events(self, wf: str, after: str = "0-0", count: int = 1000) -> list:
        return await self._xread(f"{self.prefix}events:{wf}", after, count)

    # ---- workers -------------------------------------------------------------

    async def register_worker(self, req: RegisterRequest, owner: str = "") -> int:
        """`owner`: the registering API token's id ('' with auth off)."""
        res = await self._call(
            "register", req.worker_id, label_key(req.labels), owner, int(req.exclusive),
            *("" if v is None else v for v in (req.concurrency, req.version, req.host,
                                               req.claim_wait_secs, req.lease_ttl_secs)))
        if res[0] == "taken":
            raise _worker_taken(req.worker_id)
        return int(res[1])

    async def deregister_worker(self, worker_id: str, owner: str = "") -> None:
        (outcome,) = await self._call("deregister", worker_id, owner)
        if outcome == "not_found":
            raise NotFound("worker_not_found", f"no worker {worker_id!r}")
        if outcome == "taken":
            raise _worker_taken(worker_id)

    async def list_workers(self, limit: int = 100, offset: int = 0) -> list[WorkerOut]:
        """Most recently seen first; three pipelined round trips a page."""
        ids = await self.redis.zrevrange(f"{self.prefix}workers", offset, offset + limit - 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            for w in ids:
                pipe.hgetall(f"{self.prefix}worker:{w}")
                pipe.smembers(f"{self.prefix}wleases:{w}")
            (now_s, now_us), *rows = await pipe.execute()
        now = now_s * 1000 + now_us // 1000
        lease_ids = sorted({lid for leases in rows[1::2] for lid in leases})
        jobs = dict(zip(lease_ids, await self._lease_jobs(lease_ids)))
        out = []
        for i, worker_id in enumerate(ids):
            info, leases = rows[2 * i], rows[2 * i + 1]
            if not info:
                continue
            current = [jobs[lid] for lid in sorted(leases) if jobs.get(lid)]
            last_seen = int(info.get("last_seen", 0))
            concurrency = _int_or_none(info.get("conc"))
            out.append(WorkerOut(
                worker_id=worker_id,
                labels=[x for x in info.get("labels", "").split(",") if x],
                registered_at_ms=int(info.get("registered", 0)),
                last_seen_ms=last_seen,
                status=_worker_status(info, bool(current), now - last_seen),
                current_jobs=current,
                last_heartbeat_ms=last_seen,
                current_job=current[0] if current else None,
                exclusive=info.get("excl") == "1",
                concurrency=concurrency,
                free_slots=None if concurrency is None else max(concurrency - len(current), 0),
                version=info.get("ver") or None,
                host=info.get("host") or None,
            ))
        return out

    async def _lease_jobs(self, lease_ids: list[str]) -> list[Optional[str]]:
        """`wf/job` of each lease, None for one gone meanwhile."""
        if not lease_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for lid in lease_ids:
                pipe.hmget(f"{self.prefix}lease:{lid}", ["wf", "job"])
            rows = await pipe.execute()
        return [f"{wf}/{job}" if wf else None for wf, job in rows]

    # ---- the worker protocol -------------------------------------------------

    async def claim(
        self, worker_id: str, labels: list[str], ttl_secs: int, lease_id: str, owner: str = "",
        claim_id: str = "", exclusive: bool = False,
    ) -> Optional[ClaimResponse]:
        """`lease_id` is the new lease's id, if a job is leased. `owner`: the
        claiming API token's id ('' with auth off); only it may then use the
        lease, besides the lease's own run token. `claim_id`: the client's
        id for this claim; sent again (its reply lost), it gets the same
        job and lease back while the lease lives."""
        offered = ("!" if exclusive else "") + label_key(labels)
        res = await self._call("claim", worker_id, offered, ttl_secs, lease_id, owner, claim_id)
        if res[0] == -1:
            raise _worker_taken(worker_id)
        if res[0] == 0:
            return None
        _, now, lease_id, ttl, wf, job_id, spec_json, att, enq, dly, *ups = res
        spec = _spec_decoder.decode(spec_json)
        upstream = {ups[i]: (_outputs_decoder.decode(ups[i + 1]) if ups[i + 1] else {})
                    for i in range(0, len(ups), 2)}
        job = QueuedJob(
            job_id=job_id,
            workflow_id=wf,
            command=spec.command,
            required_labels=spec.labels,
            retry_policy=RetryPolicy(max_retries=spec.max_retries, backoff=spec.backoff),
            attempt=int(att),
            upstream_outputs=upstream,
            enqueued_at_ms=int(enq),
            delayed_until_ms=int(dly or 0),
            name=spec.name,
            env=spec.env,
            steps=spec.steps,
            timeout_secs=spec.timeout_secs,
        )
        lease = Lease(lease_id=lease_id, job_id=job_id, workflow_id=wf, worker_id=worker_id,
                      ttl_secs=int(ttl), granted_at_ms=int(now))
        return ClaimResponse(job=job, lease=lease)

    async def release(self, lease_id: str) -> bool:
        """Hands a just-claimed job back, unrun and its attempt not counted
        (the client went away before the answer); False if the lease is gone."""
        (outcome,) = await self._call("unclaim", lease_id)
        return outcome == "ok"

    # `caller` below is Principal.lease_caller: '*' when already authorised
    # (auth off, or the lease's run token), else the calling token's id.

    async def heartbeat(self, lease_id: str, caller: str = "*") -> Beat:
        res = await self._call("heartbeat", lease_id, caller)
        if res[0] != "ok":
            _lease_outcome(res[0], lease_id)
        answer = HeartbeatResponse(cancelled=res[1] == 1, lease_id=lease_id, expires_at_ms=int(res[2]))
        return Beat(answer, res[3], res[4], int(res[5]))

    # A result's answer: (what became of the job, whether this repeats a
    # result already taken). The digest tells a re-sent result from another.

    async def complete(self, lease_id: str, outputs: dict[str, str], caller: str = "*") -> tuple[str, bool]:
        encoded = _encode(outputs)
        res = await self._call("complete", lease_id, caller, encoded, _digest(encoded),
                               self.result_replay_secs)
        return _result(res, lease_id)

    async def fail(self, lease_id: str, error: str, retryable: bool, caller: str = "*") -> tuple[str, bool]:
        res = await self._call("fail", lease_id, caller, error, int(retryable),
                               _digest(_encode([error, retryable])), self.result_replay_secs)
        return _result(res, lease_id)

    async def append_logs(self, lease_id: str, chunks: list[LogChunk], caller: str = "*") -> LogsAccepted:
        args: list = [lease_id, caller, self.log_maxlen]
        for c in sorted(chunks, key=lambda c: c.sequence):
            args += [c.workflow_id, c.job_id, c.sequence, _encode(c)]
        res = await self._call("logs", *args)
        if res[0] in ("lost", "forbidden"):
            _lease_outcome(res[0], lease_id)
        if res[0] == "mismatch":
            raise Unprocessable(
                "chunk_mismatch",
                "log chunks must name the lease's workflow_id and job_id",
                {"chunk": int(res[1])},
            )
        return LogsAccepted(accepted=int(res[1]), duplicates=int(res[2]))

    async def read_logs(self, wf: str, job: str, after: str = "0-0", count: Optional[int] = None) -> list:
        """[(stream_id, chunk_json)] after `after`, oldest first."""
        key = f"{self.prefix}logs:{wf}:{job}"
        return await self._reads.do(("xread", key, after, count), lambda: self._xread(key, after, count))

    async def _xread(self, key: str, after: str, count: Optional[int]) -> list:
        res = await self.redis.xread({key: after}, count=count)
        if not res:
            return []
        # redis-py gives a list of [key, entries] (RESP2) or a dict (RESP3)
        entries = res[0][1] if isinstance(res, list) else next(iter(res.values()))[0]
        return [(eid, next(iter(fields.values()))) for eid, fields in entries]

    # ---- maintenance ---------------------------------------------------------

    async def reap(self, limit: int = 500, purge_limit: int = 50) -> tuple[int, int, int]:
        expired, promoted, purged = await self._call("reap", limit, purge_limit, self.retention_secs * 1000)
        return int(expired), int(promoted), int(purged)


def _digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def _result(res: list, lease_id: str) -> tuple[str, bool]:
    if res[0] in ("ok", "replayed"):
        return res[1], res[0] == "replayed"
    if res[0] == "settled":
        raise Conflict("lease_settled",
                       "this lease already settled with a different result; the first one stands",
                       {"lease_id": lease_id, "outcome": res[1]})
    _lease_outcome(res[0], lease_id)
    raise AssertionError(res)


def _int_or_none(value: Optional[str]) -> Optional[int]:
    return int(value) if value else None


def _worker_status(info: dict, busy: bool, unseen_ms: int) -> str:
    """An idle worker is seen at every long-poll (each claim_wait_secs), a
    busy one at every heartbeat (a third of its lease TTL): twice the longer
    of those, plus slack, unseen, and it is gone, offline or (still holding
    leases that will expire) lost."""
    if info.get("stopped"):
        return "stopped"
    wait, ttl = info.get("wait"), info.get("ttl")
    if wait or ttl:
        grace_ms = 2000 * max(float(wait or 0), float(ttl or 0) / 3) + 5000
    else:
        grace_ms = OFFLINE_AFTER_MS
    if unseen_ms <= grace_ms:
        return "busy" if busy else "idle"
    return "lost" if busy else "offline"


def _worker_taken(worker_id: str) -> Conflict:
    return Conflict("worker_id_taken",
                    f"worker id {worker_id!r} belongs to another token; choose another worker id",
                    {"worker_id": worker_id})


def _lease_outcome(outcome: str, lease_id: str) -> None:
    if outcome == "ok":
        return
    if outcome == "forbidden":
        raise Forbidden("this lease is held by another worker's token; only that token or the"
                        " lease's run token may use it", {"lease_id": lease_id})
    if outcome == "cancelled":
        raise Conflict("job_cancelled", "the job was cancelled; its result is not recorded",
                       {"lease_id": lease_id})
    raise LeaseLost(lease_id)


def _ms(value: Optional[str]) -> Optional[int]:
    return int(value) if value not in (None, "") else None


def _job_out(row: dict) -> JobOut:
    spec = _spec_decoder.decode(row["spec"])
    st = row["st"]
    start, end = _ms(row.get("start")), _ms(row.get("end"))
    err = row.get("err") or None
    duration = (end - start) // 1000 if start is not None and end is not None and st in TERMINAL else None
    return JobOut(
        id=spec.id,
        name=spec.name,
        status=WIRE_STATUS[st],
        command=spec.command,
        depends_on=spec.needs,
        required_labels=spec.labels,
        max_retries=spec.max_retries,
        attempt=int(row.get("att") or 0),
        started_at=float(start) if start is not None else None,
        duration_secs=duration,
        output=err if st == "failure" else None,
        outputs=_outputs_decoder.decode(row["out"]) if row.get("out") else {},
        error=err,
        worker_id=row.get("worker") or None,
        finished_at=float(end) if end is not None and st in TERMINAL else None,
    )


def workflow_status(head: dict) -> str:
    state = head.get("state")
    if state == "active":
        return "running" if head.get("started") == "1" else "queued"
    if state != "done":
        return "queued"
    if head.get("cancelled") == "1":
        return "cancelled"
    return "failure" if int(head.get("n:failure") or 0) > 0 else "success"


def _workflow_out(head: dict, jobs: list[JobOut]) -> WorkflowOut:
    return WorkflowOut(
        id=head["id"],
        name=head["name"],
        trigger=head.get("trigger", ""),
        status=workflow_status(head),
        jobs=jobs,
        created_at_ms=int(head["created"]),
        runs=int(head.get("runs") or 0),
        started_at_ms=_ms(head.get("started_ms")),
        finished_at_ms=_ms(head.get("finished_ms")),
    )
