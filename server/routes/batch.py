"""rota's batch protocol, beside seed 002's (which stays as it is): claim
several jobs at once, send several results with the next claim, and renew
all of a worker's leases with one heartbeat. A result's `next` claim on
the single complete and fail calls is worker_protocol.py's."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from ..auth import principal
from ..http import JSON, decode_body, wait_unless_gone
from ..models import (BatchClaimRequest, Claims, ClaimResponse, ErrorDetail, Heartbeats, HeartbeatsRequest, LeaseBeat,
                      ResultOut, ResultsAccepted, ResultsRequest)
from ..routing import Endpoint
from ..store.batch import ClaimArgs, Completed, Failed, Renewal
from .claiming import lease_ids, next_claim, wait_for_claims, with_run_tokens
from .worker_protocol import outputs_bounded, result_bounded

TAG = "batch protocol"


async def claims(request: Request) -> JSON:
    req = await decode_body(request, BatchClaimRequest)
    store, owner = request.app.state.store, principal(request).token_id

    async def attempt() -> list[ClaimResponse]:
        return await store.claim_many(ClaimArgs(req.worker_id, req.labels, req.lease_ttl_secs,
                                                lease_ids(req.max_jobs), owner, req.claim_id or "", req.exclusive))

    return JSON(Claims(await wait_for_claims(request, req.labels, req.exclusive, req.wait_secs, attempt)))


async def results(request: Request) -> JSON:
    req = await decode_body(request, ResultsRequest)
    state = request.app.state
    limit = state.settings.max_output_bytes
    items: list[Completed | Failed] = []
    # Every result is checked before any is recorded: a bad one is a 422
    # naming it, and nothing changes.
    for i, r in enumerate(req.results):
        at = f"$.results[{i}]."
        if r.kind == "complete":
            outputs_bounded(limit, r.outputs, at + "outputs")
            result_bounded(limit, at, result_data=r.result_data)
            items.append(Completed(r.lease_id, r.outputs, r.result_data))
        else:
            result_bounded(limit, at, error=r.error, error_type=r.error_type, error_stack=r.error_stack)
            items.append(Failed(r.lease_id, r.error, r.retryable, r.error_type or "", r.error_stack or ""))
    claim = next_claim(request, req.next) if req.next is not None else None
    settled, claimed = await state.store.results(items, principal(request).lease_caller, claim,
                                                 max_output_bytes=limit)
    out = [ResultOut(lease_id=s.lease_id, outcome=s.outcome, replayed=s.replayed) if s.error is None
           else ResultOut(lease_id=s.lease_id, error=ErrorDetail(s.error.code, s.error.message, s.error.details))
           for s in settled]
    return JSON(ResultsAccepted(out, with_run_tokens(request, claimed)))


def _answer(beats: list[Renewal]) -> JSON:
    return JSON(Heartbeats([LeaseBeat(lease_id=b.lease_id, status=b.status, expires_at_ms=b.expires_at_ms)
                            for b in beats]))  # type: ignore[arg-type]


async def heartbeats(request: Request) -> JSON:
    req = await decode_body(request, HeartbeatsRequest)
    state = request.app.state
    store, caller = state.store, principal(request).lease_caller
    beats = await store.heartbeat_many(req.lease_ids, caller)
    if req.wait_secs <= 0 or not beats or any(b.status != "live" for b in beats):
        return _answer(beats)
    # Renewed; now wait for one of the jobs to change (a cancel reaches the
    # worker at once, whatever its leases' TTL) or for the wait to end, and
    # answer as of then. The wait stays well inside the shortest lease.
    ttl_left = min(b.expires_at_ms - b.now_ms for b in beats if b.expires_at_ms is not None) / 1000
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(req.wait_secs, state.settings.max_wait_secs, ttl_left / 2)
    async with state.notifier.watch_many([store.job_channel(b.run_id, b.job_id) for b in beats]) as changed:
        look = True
        while True:
            changed.reset()
            if look:  # (first: anything before we watched)
                # The heartbeat script again: it renews once more, and
                # answers for each lease as the first did.
                beats = await store.heartbeat_many(req.lease_ids, caller)
                if any(b.status != "live" for b in beats):
                    break
            remaining = deadline - loop.time()
            if remaining <= 0 or not await wait_unless_gone(request, changed.event, remaining):
                break
            if not changed.event.is_set():
                break
            # A log line or a progress report changes nothing a worker must act on.
            look = not changed.status_unchanged
    return _answer(beats)


endpoints = [
    Endpoint("POST", "/api/jobs/claims", claims, "worker",
             "Claim up to max_jobs jobs in one call, each under its own lease (an empty list when none);"
             " long-polls up to wait_secs for the first", body=BatchClaimRequest, body_required=True,
             response=Claims, errors=(400, 409, 422, 429, 503), tag=TAG),
    Endpoint("POST", "/api/jobs/results", results, "worker",
             "Report several leases' results (each answered as its complete or fail would be), then lease the"
             " worker's next jobs (`next`), all in one script", body=ResultsRequest, body_required=True,
             response=ResultsAccepted, errors=(400, 409, 422, 429), tag=TAG),
    Endpoint("POST", "/api/jobs/heartbeats", heartbeats, "worker",
             "Renew all of a worker's leases in one call; each answers live, cancelled, lost, waiting or forbidden."
             " With wait_secs, a long-poll that answers the moment one of the jobs is cancelled",
             body=HeartbeatsRequest, body_required=True, response=Heartbeats, errors=(400, 422), tag=TAG),
]
