"""What every form of claim shares: the long-poll for a job, the leases'
run tokens, and the `next` claim a worker sends with its results."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Awaitable, Callable

from starlette.requests import Request

from ..auth import principal
from ..errors import Forbidden, Overloaded
from ..http import wait_unless_gone
from ..models import ClaimResponse, NextClaim
from ..store import label_key
from ..store.batch import ClaimArgs

log = logging.getLogger("rota.claims")


_VARIANT = "89ab"


def lease_ids(count: int) -> list[str]:
    """`count` version-4 UUIDs as text, from one read of the OS's random
    source: uuid4() per id cost a batch claim of 32 about 3 us a job."""
    raw = os.urandom(16 * count).hex()
    out = []
    for i in range(0, 32 * count, 32):
        h = raw[i:i + 32]
        # the version nibble 4, the variant bits 10 (RFC 4122), as uuid4() sets them
        out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}")
    return out


def with_run_tokens(request: Request, claims: list[ClaimResponse]) -> list[ClaimResponse]:
    auth = request.app.state.auth
    for got in claims:
        got.lease.run_token = auth.run_token(got.lease.lease_id)
    return claims


def next_claim(request: Request, req: NextClaim) -> ClaimArgs:
    """A result's `next` claim, refused before anything is done when the
    caller may not claim: a run token is one job's, and a job that could
    lease more jobs would hold its worker's place in every queue."""
    caller = principal(request)
    if caller.run_lease is not None:
        raise Forbidden("a run token cannot claim jobs: send `next` with the worker's token",
                        {"field": "next", "required_scope": "worker"})
    return ClaimArgs(req.worker_id, req.labels, req.lease_ttl_secs, lease_ids(req.max_jobs), caller.token_id,
                     req.claim_id or "", req.exclusive)


Attempt = Callable[[], Awaitable[list[ClaimResponse]]]


async def wait_for_claims(request: Request, labels: list[str], exclusive: bool, wait_secs: float,
                          attempt: Attempt) -> list[ClaimResponse]:
    """`attempt()` at once, and while it leases nothing, again each time a
    job this worker can run is enqueued, for up to `wait_secs` (clamped to
    MAX_WAIT_SECS). What it leased, with run tokens; [] when nothing came."""
    state = request.app.state
    store, auth, notifier = state.store, state.auth, state.notifier
    wait = min(wait_secs, state.settings.max_wait_secs)
    if wait <= 0:
        return with_run_tokens(request, await attempt())
    if notifier.waiting_claims >= state.settings.max_waiting_claims:
        raise Overloaded(f"this server already holds {state.settings.max_waiting_claims} waiting claims"
                         " (MAX_WAITING_CLAIMS); retry shortly")
    caller = principal(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    # Registered before the first attempt, so a job enqueued between a
    # fruitless attempt and the wait still wakes this claim.
    with notifier.claim_waiter(labels, exclusive) as waiter:
        waited = False
        while True:
            token = waiter.take_token()
            got = await attempt()
            if got:
                if token is not None and all(token != label_key(c.job.required_labels) for c in got):
                    # Woken for a job of another queue, it took this one: the
                    # wake-up goes on to the next claim as this one leaves.
                    waiter.token = token
                # A claim answered at once has a client that just spoke; one
                # that waited may have lost it meanwhile.
                if waited and await request.is_disconnected():
                    # Gone before the answer: the jobs go back unrun, their
                    # attempts not spent, instead of waiting out leases
                    # nobody holds.
                    for c in got:
                        await store.release(c.lease.lease_id)
                        log.debug("claim by %s: client gone; %s/%s handed back", c.lease.worker_id,
                                  c.job.workflow_id, c.job.job_id)
                    return []
                return with_run_tokens(request, got)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            if not await wait_unless_gone(request, waiter.event, remaining):
                return []  # nobody to answer; its wake-up, if any, goes on
            waited = True
            # A job leased to a client that hung up (or to one we are about
            # to cut off by shutting down) would only be handed back: don't.
            if notifier.draining or await request.is_disconnected():
                return []
            # A token revoked while its claim waited must not be handed a job.
            await auth.check_alive(caller)
