"""The worker protocol's calls the daemon makes: register, a long-poll
claim, a long-poll heartbeat, deregister.

worker/client/api.py's register(), claim() and heartbeat() predate the
fields the daemon now sends (the worker's description, `exclusive`, a
heartbeat's long-poll wait) and it has no deregister; these use the same
Client plumbing, so encoding, errors and the token are the same as for
every call."""

from __future__ import annotations

from typing import Optional
from urllib.parse import quote

from server.models import ClaimRequest, ClaimResponse, HeartbeatRequest, HeartbeatResponse, RegisterRequest
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


async def heartbeat(client: Client, lease_id: str, wait_secs: float) -> HeartbeatResponse:
    response = await client._send(
        "POST", f"/api/jobs/{quote(lease_id, safe='')}/heartbeat", HeartbeatRequest(wait_secs),
        timeout=wait_secs + _LONG_POLL_SLACK_SECS)
    return client._decode(response.content, HeartbeatResponse)


async def deregister(client: Client, worker_id: str) -> None:
    await client._send("DELETE", f"/api/workers/{quote(worker_id, safe='')}")

