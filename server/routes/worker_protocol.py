"""The worker protocol of seed 002: register, claim, heartbeat, complete,
fail, logs, cancelled. Paths, bodies and status codes are the seed's."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Optional

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response

from ..auth import principal
from ..errors import Unprocessable
from ..http import MAX_QUERY_INT, JSON, decode_body, page_params, param, wait_unless_gone
from ..models import (
    ClaimRequest,
    ClaimResponse,
    CompleteNextRequest,
    CompleteRequest,
    FailNextRequest,
    FailRequest,
    HandBackRequest,
    HandedBack,
    HeartbeatRequest,
    HeartbeatResponse,
    LogsAccepted,
    LogsRequest,
    NextClaim,
    RegisterRequest,
    Registered,
    ResultAccepted,
    WorkerOut,
    WorkersPruned,
)
from ..routing import Endpoint, Param, lease_calls
from ..store.batch import Completed, Failed
from .claiming import lease_ids, next_claim, wait_for_claims, with_run_tokens
from .resolve import for_latest_run

NULL = b"null"
journal = logging.getLogger("rota.events")


async def register(request: Request) -> JSON:
    req = await decode_body(request, RegisterRequest)
    at = await request.app.state.store.register_worker(req, principal(request).token_id)
    journal.info("worker %s registered: labels %s%s, %s slot(s), %s on %s", req.worker_id,
                ",".join(sorted(set(req.labels))) or "-", " (exclusive)" if req.exclusive else "",
                req.concurrency or "?", req.version or "unknown version", req.host or "unknown host")
    return JSON(Registered(req.worker_id, sorted(set(req.labels)), at))


async def deregister(request: Request) -> Response:
    caller = principal(request)
    # An admin may remove any worker (and takes no worker id over: '').
    owner = "" if "admin" in caller.grants else caller.token_id
    await request.app.state.store.deregister_worker(request.path_params["worker_id"], owner)
    journal.info("worker %s stopped", request.path_params["worker_id"])
    return Response(status_code=204)


_UNSEEN_FOR = Param("unseen_for_secs", Annotated[int, Meta(ge=1, le=MAX_QUERY_INT)],
                    "remove the workers not seen for at least this many seconds instead")


async def prune(request: Request) -> JSON:
    unseen = param(request, _UNSEEN_FOR)
    removed, more = await request.app.state.store.prune_workers(unseen)
    if removed:
        journal.info("%d worker(s) removed (%s): %s", len(removed),
                     f"unseen for {unseen}s" if unseen else "offline or lost", ", ".join(removed))
    return JSON(WorkersPruned(removed=removed, more=more))


async def list_workers(request: Request) -> JSON:
    limit, offset = page_params(request)
    return JSON(await request.app.state.store.list_workers(limit, offset))


async def claim(request: Request) -> Response:
    req = await decode_body(request, ClaimRequest)
    store, caller = request.app.state.store, principal(request)

    async def attempt() -> list[ClaimResponse]:
        got = await store.claim(req.worker_id, req.labels, req.lease_ttl_secs, lease_ids(1)[0],
                                caller.token_id, req.claim_id or "", req.exclusive)
        return [] if got is None else [got]

    got = await wait_for_claims(request, req.labels, req.exclusive, req.wait_secs, attempt)
    return JSON(got[0]) if got else Response(NULL, media_type="application/json")


async def heartbeat(request: Request) -> JSON:
    # The seed worker posts an empty body: an immediate answer.
    req = await decode_body(request, HeartbeatRequest, empty_ok=True)
    state, lease_id = request.app.state, request.path_params["lease_id"]
    store, caller = state.store, principal(request).lease_caller
    # The seeds' executor paths may hold a lease longer (sdk_seeds.py).
    beat = await store.heartbeat(lease_id, caller, request.scope.get("rota.min_lease_secs", 0))
    if beat.answer.cancelled or req.wait_secs <= 0:
        return JSON(beat.answer)
    # Renewed; now wait for the job to change (a cancel reaches the worker
    # at once, whatever its lease TTL) or for the wait to end, whichever is
    # first, and answer as of then. The wait stays well inside the lease.
    ttl_left = (beat.answer.expires_at_ms - beat.now_ms) / 1000
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(req.wait_secs, state.settings.max_wait_secs, ttl_left / 2)
    run, job = beat.run_id, beat.job_id
    async with state.notifier.watch(store.job_channel(run, job), counted=False) as changed:
        look = True
        while True:
            changed.reset()
            if look:  # (first: anything before we watched)
                now_state = await store.lease_state(run, job, lease_id)
                if now_state == "gone":
                    # finished, retried, or waiting for an event: the
                    # heartbeat script answers which, as it would have
                    await store.heartbeat(lease_id, caller)
                    break
                if now_state == "cancelled":
                    beat.answer.cancelled = True
                    break
            remaining = deadline - loop.time()
            if remaining <= 0 or not await wait_unless_gone(request, changed.event, remaining):
                break
            # Shutting down: answer now (the wake-all fires every watch, and
            # looking again would only park again until uvicorn cut it off).
            if not changed.event.is_set() or state.notifier.draining:
                break
            # A log line or a progress report changes nothing a worker must act on.
            look = not changed.status_unchanged
    return JSON(beat.answer)


def result_bounded(limit: int, prefix: str = "", **fields: object) -> None:
    """What a result carries besides outputs (Restep's `result_data`,
    Strait's `result`, a failure's texts) is kept with the job: each is
    bounded like outputs, by MAX_OUTPUT_BYTES, before anything is recorded.
    `prefix`: where the fields are in a batch's body (`$.results[2].`)."""
    for name, value in fields.items():
        if value is None:
            continue
        size = len(value.encode()) if isinstance(value, str) else len(msgspec.json.encode(value))
        if size > limit:
            raise Unprocessable("result_too_large", f"{prefix}{name} is {size} bytes, more than MAX_OUTPUT_BYTES"
                                f" ({limit}); nothing was recorded",
                                {"field": prefix + name, "limit": limit, "size": size})


def outputs_bounded(limit: int, outputs: dict[str, str], field: str = "outputs") -> None:
    size = sum(len(k.encode()) + len(v.encode()) for k, v in outputs.items())
    if size > limit:
        raise Unprocessable("outputs_too_large",
                            f"{field} are {size} bytes, more than MAX_OUTPUT_BYTES ({limit}); nothing was recorded",
                            {"field": field, "limit": limit, "size": size})


async def complete(request: Request) -> JSON:
    # The seeds' executor paths read their own fields only.
    seed = request.scope.get("rota.seed_path", False)
    req = await decode_body(request, CompleteRequest if seed else CompleteNextRequest, empty_ok=True)
    lease_id = request.path_params["lease_id"]
    limit = request.app.state.settings.max_output_bytes
    outputs_bounded(limit, req.outputs)
    result_bounded(limit, result_data=req.result_data, result=req.result)
    result = Completed(lease_id, req.outputs, req.result_data if req.result_data is not None else req.result)
    if not seed and req.next is not None:
        return await _with_next(request, result, req.next)
    outcome, replayed = await request.app.state.store.complete(
        lease_id, result.outputs, principal(request).lease_caller, result_data=result.result_data,
        max_output_bytes=limit)
    return JSON(ResultAccepted(lease_id=lease_id, outcome=outcome, replayed=replayed))


async def fail(request: Request) -> JSON:
    seed = request.scope.get("rota.seed_path", False)
    req = await decode_body(request, FailRequest if seed else FailNextRequest, empty_ok=True)
    lease_id = request.path_params["lease_id"]
    result_bounded(request.app.state.settings.max_output_bytes, error=req.error, error_message=req.error_message,
                    error_type=req.error_type, error_stack=req.error_stack)
    store, caller = request.app.state.store, principal(request).lease_caller
    # Restep's and Strait's executors expect a failure to retry while the
    # job's budget lasts; seed 002's worker says so itself (default: no).
    retryable = req.retryable if req.retryable is not None else request.scope.get("rota.retry_by_default", False)
    result = Failed(lease_id, req.error or req.error_message or "", retryable, req.error_type or "",
                    req.error_stack or "")
    if not seed and req.next is not None:
        return await _with_next(request, result, req.next)
    outcome, replayed = await store.fail(lease_id, result.error, retryable, caller, error_type=result.error_type,
                                         error_stack=result.error_stack)
    return JSON(ResultAccepted(lease_id=lease_id, outcome=outcome, replayed=replayed))


async def _with_next(request: Request, result: Completed | Failed, nxt: NextClaim) -> JSON:
    """A result and the worker's next claim in one script (rota's batch
    protocol). A refused result is answered with its error, as without
    `next`, and nothing is claimed."""
    claim = next_claim(request, nxt)
    state = request.app.state
    (settled,), claimed = await state.store.results([result], principal(request).lease_caller, claim, strict=True,
                                                    max_output_bytes=state.settings.max_output_bytes)
    if settled.error is not None:
        raise settled.error
    return JSON(ResultAccepted(lease_id=result.lease_id, outcome=settled.outcome, replayed=settled.replayed,
                               next=with_run_tokens(request, claimed)))


async def release(request: Request) -> JSON:
    req = await decode_body(request, HandBackRequest, empty_ok=True)
    lease_id = request.path_params["lease_id"]
    outcome, replayed = await request.app.state.store.hand_back(lease_id, req.reason,
                                                                principal(request).lease_caller)
    return JSON(HandedBack(lease_id=lease_id, outcome=outcome, replayed=replayed))


async def push_logs(request: Request) -> JSON:
    req = await decode_body(request, LogsRequest)
    store, lease_id = request.app.state.store, request.path_params["lease_id"]
    return JSON(await store.append_logs(lease_id, req.chunks, principal(request).lease_caller))


async def cancelled(request: Request) -> JSON:
    p = request.path_params
    return JSON(await request.app.state.store.is_cancelled(p["run_id"], p["job"]))


_LEASE_ERRORS = (401, 403, 409, 422)
# A lease's own calls (routes/sdk_seeds.py maps the seeds' executor paths
# onto these too).
LEASE_CALLS: dict[tuple[str, str], dict] = {
    ("POST", "/heartbeat"): dict(
        handler=heartbeat, summary="Renew a lease; the answer says whether the job was cancelled. With wait_secs,"
        " a long-poll that answers the moment the job is cancelled", body=HeartbeatRequest,
        response=HeartbeatResponse, errors=_LEASE_ERRORS),
    ("POST", "/complete"): dict(handler=complete, summary="Report success, with outputs. With `next` (a worker"
                                " token's), lease the worker's next job(s) in the same call", body=CompleteNextRequest,
                                response=ResultAccepted, errors=(400, 429) + _LEASE_ERRORS),
    ("POST", "/fail"): dict(handler=fail, summary="Report failure; retryable ones retry with backoff. With `next`,"
                            " lease the worker's next job(s) in the same call",
                            body=FailNextRequest, response=ResultAccepted, errors=(400, 429) + _LEASE_ERRORS),
    ("POST", "/logs"): dict(handler=push_logs, summary="Append log chunks (idempotent by sequence). The request that"
                            " fills the attempt's LOG_MAX_BYTES keeps what fits (`dropped` counts the rest);"
                            " a later one with new chunks is 413",
                            body=LogsRequest, body_required=True, response=LogsAccepted,
                            errors=(400, 413) + _LEASE_ERRORS),
}
endpoints = [
    Endpoint("POST", "/api/jobs/claim", claim, "worker",
             "Claim the best job this worker can run (null when none); long-polls up to wait_secs",
             body=ClaimRequest, body_required=True, response=Optional[ClaimResponse], errors=(400, 409, 422, 429, 503),
             tag="worker protocol"),
] + lease_calls("/api/jobs/{lease_id}", "worker protocol", LEASE_CALLS) + [
    # Worker scope, not lease: a run token is the job's, and a job that could
    # hand itself back would run again and again without spending an attempt.
    Endpoint("POST", "/api/jobs/{lease_id}/release", release, "worker",
             "Hand a running job back unfinished (the worker is stopping): it runs again first in its queue,"
             " its attempt recorded handed_back and no retry spent", body=HandBackRequest, response=HandedBack,
             errors=(400,) + _LEASE_ERRORS, tag="worker protocol"),
    Endpoint("POST", "/api/workers/register", register, "worker", "Register a worker and its labels",
             body=RegisterRequest, body_required=True, response=Registered, errors=(400, 409, 422, 429),
             tag="workers"),
    Endpoint("GET", "/api/workers", list_workers, "read", "List workers, most recently seen first",
             response=list[WorkerOut], params=page_params.params, errors=(422,), tag="workers"),
    Endpoint("DELETE", "/api/workers/{worker_id}", deregister, "worker",
             "A worker stopping cleanly, or an admin removing any worker: shown `stopped` (its last-seen time"
             " kept) until forgotten ten minutes on, or until seen again", status=204,
             errors=(404, 409), tag="workers"),
    Endpoint("DELETE", "/api/workers", prune, "admin",
             "Remove every worker that shows offline or lost, or with unseen_for_secs every one not seen for"
             " that long (at most 1,000 a call; `more` says to call again)", response=WorkersPruned,
             params=(_UNSEEN_FOR,), errors=(422,), tag="workers"),
    Endpoint("GET", "/api/jobs/{wf}/{job}/cancelled", for_latest_run(cancelled), "read|worker",
             "Whether a job of the workflow's latest run was cancelled", response=bool, errors=(404,),
             tag="worker protocol"),
]
