"""The worker protocol of seed 002: register, claim, heartbeat, complete,
fail, logs, cancelled. Paths, bodies and status codes are the seed's."""

from __future__ import annotations

import asyncio
import uuid

from typing import Optional

from starlette.requests import Request
from starlette.responses import Response

from ..auth import principal
from ..errors import Overloaded
from ..http import JSON, decode_body, page_params
from ..models import (
    ClaimRequest,
    ClaimResponse,
    CompleteRequest,
    FailRequest,
    HeartbeatResponse,
    LogsAccepted,
    LogsRequest,
    RegisterRequest,
    Registered,
    ResultAccepted,
    WorkerOut,
)
from ..routing import Endpoint

# Even with nothing published, a waiting claim re-checks this often: covers
# wake-ups missed while the pub/sub connection was reconnecting.
RECHECK_SECS = 5.0
NULL = b"null"


async def register(request: Request) -> JSON:
    req = await decode_body(request, RegisterRequest)
    at = await request.app.state.store.register_worker(req.worker_id, req.labels, principal(request).token_id)
    return JSON(Registered(req.worker_id, sorted(set(req.labels)), at))


async def list_workers(request: Request) -> JSON:
    limit, offset = page_params(request)
    return JSON(await request.app.state.store.list_workers(limit, offset))


async def claim(request: Request) -> Response:
    req = await decode_body(request, ClaimRequest)
    state = request.app.state
    store, auth = state.store, state.auth
    owner = principal(request).token_id
    wait = min(req.wait_secs, state.settings.max_wait_secs)

    async def attempt():
        lease_id = str(uuid.uuid4())
        res = await store.claim(req.worker_id, req.labels, req.lease_ttl_secs, lease_id, owner)
        if res.claim is not None:
            res.claim.lease.run_token = auth.run_token(res.claim.lease.lease_id)
        return res

    if wait <= 0:
        return _claimed((await attempt()).claim)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    if state.notifier.waiting_claims >= state.settings.max_waiting_claims:
        raise Overloaded(f"this server already holds {state.settings.max_waiting_claims} waiting claims"
                         " (MAX_WAITING_CLAIMS); retry shortly")
    with state.notifier.claim_waiter(req.labels) as waiter:
        while True:
            waiter.event.clear()
            res = await attempt()
            if res.claim is not None:
                return _claimed(res.claim)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return _claimed(None)
            timeout = min(remaining, RECHECK_SECS)
            if res.next_due_ms >= 0:
                timeout = min(timeout, max(0.0, (res.next_due_ms - res.now_ms) / 1000) + 0.002)
            try:
                await asyncio.wait_for(waiter.event.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            # A job leased to a client that hung up (or to one we are about
            # to cut off by shutting down) would sit until its lease expires
            # and cost an attempt: don't claim for it.
            if state.notifier.draining or await request.is_disconnected():
                return _claimed(None)
            # A token revoked while its claim waited must not be handed a job.
            await auth.check_alive(principal(request))


def _claimed(claim) -> Response:
    if claim is None:
        return Response(NULL, media_type="application/json")
    return JSON(claim)


async def heartbeat(request: Request) -> JSON:
    # The seed worker posts an empty body: there is nothing to read.
    caller = principal(request).lease_caller
    return JSON(await request.app.state.store.heartbeat(request.path_params["lease_id"], caller))


async def complete(request: Request) -> JSON:
    req = await decode_body(request, CompleteRequest, empty_ok=True)
    lease_id = request.path_params["lease_id"]
    await request.app.state.store.complete(lease_id, req.outputs, principal(request).lease_caller)
    return JSON(ResultAccepted(lease_id=lease_id))


async def fail(request: Request) -> JSON:
    req = await decode_body(request, FailRequest, empty_ok=True)
    lease_id = request.path_params["lease_id"]
    await request.app.state.store.fail(lease_id, req.error, req.retryable, principal(request).lease_caller)
    return JSON(ResultAccepted(lease_id=lease_id))


async def push_logs(request: Request) -> JSON:
    req = await decode_body(request, LogsRequest)
    store, lease_id = request.app.state.store, request.path_params["lease_id"]
    return JSON(await store.append_logs(lease_id, req.chunks, principal(request).lease_caller))


async def cancelled(request: Request) -> JSON:
    p = request.path_params
    return JSON(await request.app.state.store.is_cancelled(p["wf"], p["job"]))


_LEASE_ERRORS = (401, 403, 409, 422)
endpoints = [
    Endpoint("POST", "/api/workers/register", register, "worker", "Register a worker and its labels",
             body=RegisterRequest, body_required=True, response=Registered, errors=(400, 409, 422), tag="workers"),
    Endpoint("GET", "/api/workers", list_workers, "read", "List workers, most recently seen first",
             response=list[WorkerOut], params=page_params.params, errors=(422,), tag="workers"),
    Endpoint("POST", "/api/jobs/claim", claim, "worker",
             "Claim the best job this worker can run (null when none); long-polls up to wait_secs",
             body=ClaimRequest, body_required=True, response=Optional[ClaimResponse], errors=(400, 409, 422, 503),
             tag="worker protocol"),
    Endpoint("POST", "/api/jobs/{lease_id}/heartbeat", heartbeat, "lease",
             "Renew a lease; the answer says whether the job was cancelled",
             response=HeartbeatResponse, errors=_LEASE_ERRORS, tag="worker protocol"),
    Endpoint("POST", "/api/jobs/{lease_id}/complete", complete, "lease", "Report success, with outputs",
             body=CompleteRequest, response=ResultAccepted, errors=(400,) + _LEASE_ERRORS, tag="worker protocol"),
    Endpoint("POST", "/api/jobs/{lease_id}/fail", fail, "lease", "Report failure; retryable ones retry with backoff",
             body=FailRequest, response=ResultAccepted, errors=(400,) + _LEASE_ERRORS, tag="worker protocol"),
    Endpoint("POST", "/api/jobs/{lease_id}/logs", push_logs, "lease",
             "Append log chunks (idempotent by sequence)", body=LogsRequest, body_required=True,
             response=LogsAccepted, errors=(400,) + _LEASE_ERRORS, tag="worker protocol"),
    Endpoint("GET", "/api/jobs/{wf}/{job}/cancelled", cancelled, "read|worker", "Whether a job was cancelled",
             response=bool, errors=(404,), tag="worker protocol"),
]
