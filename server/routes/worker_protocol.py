"""The worker protocol of seed 002: register, claim, heartbeat, complete,
fail, logs, cancelled. Paths, bodies and status codes are the seed's."""

from __future__ import annotations

import asyncio
import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..http import JSON, decode_body
from ..models import (
    ClaimRequest,
    CompleteRequest,
    FailRequest,
    LogsRequest,
    RegisterRequest,
)

# Even with nothing published, a waiting claim re-checks this often: covers
# wake-ups missed while the pub/sub connection was reconnecting.
RECHECK_SECS = 5.0
NULL = b"null"


async def register(request: Request) -> JSON:
    req = await decode_body(request, RegisterRequest)
    at = await request.app.state.store.register_worker(req.worker_id, req.labels)
    return JSON({"worker_id": req.worker_id, "labels": sorted(set(req.labels)), "registered_at_ms": at})


async def list_workers(request: Request) -> JSON:
    return JSON(await request.app.state.store.list_workers())


async def claim(request: Request) -> Response:
    req = await decode_body(request, ClaimRequest)
    state = request.app.state
    store = state.store
    wait = min(req.wait_secs, state.settings.max_wait_secs)

    async def attempt():
        return await store.claim(req.worker_id, req.labels, req.lease_ttl_secs, str(uuid.uuid4()))

    if wait <= 0:
        return _claimed((await attempt()).claim)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
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


def _claimed(claim) -> Response:
    if claim is None:
        return Response(NULL, media_type="application/json")
    return JSON(claim)


async def heartbeat(request: Request) -> JSON:
    # The seed worker posts an empty body: there is nothing to read.
    return JSON(await request.app.state.store.heartbeat(request.path_params["lease_id"]))


async def complete(request: Request) -> JSON:
    req = await decode_body(request, CompleteRequest, empty_ok=True)
    lease_id = request.path_params["lease_id"]
    await request.app.state.store.complete(lease_id, req.outputs)
    return JSON({"ok": True, "lease_id": lease_id})


async def fail(request: Request) -> JSON:
    req = await decode_body(request, FailRequest, empty_ok=True)
    lease_id = request.path_params["lease_id"]
    await request.app.state.store.fail(lease_id, req.error, req.retryable)
    return JSON({"ok": True, "lease_id": lease_id})


async def push_logs(request: Request) -> JSON:
    req = await decode_body(request, LogsRequest)
    return JSON(await request.app.state.store.append_logs(request.path_params["lease_id"], req.chunks))


async def cancelled(request: Request) -> JSON:
    p = request.path_params
    return JSON(await request.app.state.store.is_cancelled(p["wf"], p["job"]))


routes = [
    Route("/api/workers/register", register, methods=["POST"]),
    Route("/api/workers", list_workers, methods=["GET"]),
    Route("/api/jobs/claim", claim, methods=["POST"]),
    Route("/api/jobs/{lease_id}/heartbeat", heartbeat, methods=["POST"]),
    Route("/api/jobs/{lease_id}/complete", complete, methods=["POST"]),
    Route("/api/jobs/{lease_id}/fail", fail, methods=["POST"]),
    Route("/api/jobs/{lease_id}/logs", push_logs, methods=["POST"]),
    Route("/api/jobs/{wf}/{job}/cancelled", cancelled, methods=["GET"]),
]
