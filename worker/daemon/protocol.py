"""The worker protocol's calls the daemon makes: register, a long-poll
claim (of several jobs at once: rota's batch protocol), a result with the
next claim, a long-poll heartbeat (one for all the worker's leases),
deregister.

worker/client/api.py's register(), claim() and heartbeat() predate the
fields the daemon now sends (the worker's description, `exclusive`, a
heartbeat's long-poll wait) and it has no deregister; these use the same
Client plumbing, so encoding, errors and the token are the same as for
every call."""

from __future__ import annotations

from typing import Optional
from urllib.parse import quote

from server.models import (BatchClaimRequest, ClaimRequest, ClaimResponse, Claims, CompleteNextRequest,
                           FailNextRequest, HeartbeatRequest, HeartbeatResponse, Heartbeats, HeartbeatsRequest,
                           LeaseBeat, NextClaim, RegisterRequest, ResultAccepted)
from worker.client.api import Client

# A long-poll (claim, heartbeat) is answered after at most its wait: allow
# this much more before calling the server unreachable.
_LONG_POLL_SLACK_SECS = 10.0


async def register(client: Client, request: RegisterRequest) -> None:
    await client._send("POST", "/api/workers/register", request)


async def claim(client: Client, request: ClaimRequest) -> Optional[ClaimResponse]:
    response = await client._send(
        "POST", "/api/jobs/claim", request, timeout=request.wait_secs + _LONG_POLL_SLACK_SECS)
    return client._decode(response.content, Optional[ClaimResponse])


async def claim_many(client: Client, request: BatchClaimRequest) -> list[ClaimResponse]:
    response = await client._send(
        "POST", "/api/jobs/claims", request, timeout=request.wait_secs + _LONG_POLL_SLACK_SECS)
    return client._decode(response.content, Claims).claims


async def complete(client: Client, lease_id: str, outputs: dict[str, str],
                   next: Optional[NextClaim]) -> ResultAccepted:
    """With `next`, the answer's `next` holds the jobs it leased (a server
    without the batch protocol ignores it, and leases none)."""
    response = await client._send("POST", f"/api/jobs/{quote(lease_id, safe='')}/complete",
                                  CompleteNextRequest(outputs=outputs, next=next))
    return client._decode(response.content, ResultAccepted)


async def fail(client: Client, lease_id: str, error: str, retryable: bool, next: Optional[NextClaim],
               error_type: Optional[str] = None) -> ResultAccepted:
    """`error_type`: `timeout` for a job stopped at its timeout (its attempt
    then shows `timed_out`)."""
    response = await client._send("POST", f"/api/jobs/{quote(lease_id, safe='')}/fail",
                                  FailNextRequest(error=error, retryable=retryable, error_type=error_type, next=next))
    return client._decode(response.content, ResultAccepted)


async def heartbeats(client: Client, lease_ids: list[str], wait_secs: float) -> list[LeaseBeat]:
    response = await client._send("POST", "/api/jobs/heartbeats", HeartbeatsRequest(lease_ids=lease_ids,
                                  wait_secs=wait_secs), timeout=wait_secs + _LONG_POLL_SLACK_SECS)
    return client._decode(response.content, Heartbeats).leases


async def heartbeat(client: Client, lease_id: str, wait_secs: float) -> HeartbeatResponse:
    response = await client._send(
        "POST", f"/api/jobs/{quote(lease_id, safe='')}/heartbeat", HeartbeatRequest(wait_secs),
        timeout=wait_secs + _LONG_POLL_SLACK_SECS)
    return client._decode(response.content, HeartbeatResponse)


async def deregister(client: Client, worker_id: str) -> None:
    await client._send("DELETE", f"/api/workers/{quote(worker_id, safe='')}")

