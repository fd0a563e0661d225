"""A running job's heartbeat: keeps its lease, and carries a cancel (or the
job's wish to wait for an event) back to it the moment the server has one."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from server.models import Lease
from worker.client.api import Client
from worker.client.errors import ApiError, RotaError
from worker.daemon import protocol
from worker.daemon.logship import Backoff, Outage
from worker.daemon.stops import CANCELLED, LEASE_LOST, WAITING

log = logging.getLogger("rota.worker")

# Heartbeats answered sooner than this (a server that does not long-poll)
# are paced to it, so they never spin.
_MIN_HEARTBEAT_SPACING = 1.0


async def keep_lease(client: Client, lease: Lease, name: str, outage: Outage, stop: Callable[[str], None],
                     first_delay: float) -> None:
    """Keep the lease, and stop the job (`stop`) the moment it is cancelled.

    Each heartbeat long-polls: the server renews the lease at once, then
    answers when the job is cancelled or after `wait` (a third of the
    lease TTL; the server caps it), and the next one goes out as soon as
    one answers. So the lease is renewed every third of its TTL and a
    cancel reaches the job within a round trip (within
    `first_delay` of its start at first), whatever the TTL.
    """
    loop = asyncio.get_running_loop()
    wait = lease.ttl_secs / 3
    spacing = min(wait, _MIN_HEARTBEAT_SPACING)
    backoff = Backoff(first=spacing, cap=wait)
    failing = False
    await asyncio.sleep(min(first_delay, wait))
    while True:
        sent = loop.time()
        try:
            beat = await protocol.heartbeat(client, lease.lease_id, wait)
        except ApiError as exc:
            outage.saw(exc)
            if exc.code == "job_waiting":
                # The job asked to wait for an event: the server released
                # its lease and re-runs it when the event comes.
                log.debug("%s gave up lease %s to wait for an event", name, lease.lease_id)
                stop(WAITING)
                return
            if exc.status in (401, 403, 409):
                # 401/403: this worker's token was revoked (or never held
                # the lease); no result of it will be accepted either.
                log.warning("lost lease %s: %s", name, exc)
                stop(LEASE_LOST)
                return
            error: RotaError = exc
        except RotaError as exc:
            outage.saw(exc)
            error = exc
        else:
            outage.answered()
            failing = False
            backoff.reset()
            if beat.cancelled:
                log.info("cancel requested for %s", name)
                stop(CANCELLED)
                return
            early = spacing - (loop.time() - sent)
            if early > 0:  # answered at once: a server that does not long-poll
                await asyncio.sleep(early)
            continue
        if not failing:  # one line per outage, not one per beat
            log.warning("heartbeat of %s failed: %s", name, error)
        failing = True
        await asyncio.sleep(backoff.next())
