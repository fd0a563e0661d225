"""Shutdown: the drain of running jobs (finish, else be handed back), and
the deregistration that tells the server this worker stopped on purpose."""

from __future__ import annotations

import asyncio
import logging

from server.models import ClaimResponse
from worker.client.api import Client
from worker.client.errors import ApiError, RotaError
from worker.daemon import protocol
from worker.daemon.job import JobRun
from worker.daemon.logship import job_name
from worker.daemon.stops import SHUTDOWN, SHUTDOWN_REASON

log = logging.getLogger("rota.worker")

# How long a clean stop waits for the server to take its deregistration.
DEREGISTER_TIMEOUT = 5.0


async def drain(jobs: dict[asyncio.Task[None], JobRun], timeout: float, cancel_grace: float,
                report_grace: float) -> None:
    """Let the running `jobs` finish for up to `timeout` seconds; then stop
    those still running (each is handed back, to run again elsewhere), give
    them `cancel_grace` to die and `report_grace` more for their results to
    reach the server, and give up on the rest."""
    if not jobs:
        return
    log.info("draining %d running job(s), up to %.0fs", len(jobs), timeout)
    _, running = await asyncio.wait(set(jobs), timeout=timeout)
    if not running:
        return
    for task in running:
        jobs[task].stop(SHUTDOWN)
    # Stopped jobs die within the cancel grace; then their results (and those
    # of jobs that finished while the server was away) get a few seconds.
    _, stuck = await asyncio.wait(running, timeout=cancel_grace + report_grace)
    for task in stuck:
        log.warning(
            "gave up on %s: its result did not reach the server before shutdown;"
            " the job re-runs when its lease expires",
            jobs[task].name,
        )
        task.cancel()  # a job still running is killed as the runner unwinds
    if stuck:
        await asyncio.wait(stuck)


async def deregister(client: Client, worker_id: str) -> None:
    """Tell the server this worker stopped on purpose: it shows `stopped`, not offline."""
    try:
        await asyncio.wait_for(protocol.deregister(client, worker_id), DEREGISTER_TIMEOUT)
    except ApiError as exc:
        if exc.status != 404:  # 404: never registered, or already forgotten
            log.warning("could not tell the server this worker stopped: %s", exc)
    except (RotaError, asyncio.TimeoutError) as exc:
        log.warning("could not tell the server this worker stopped: %s", exc or "no answer in time")


async def hand_back(client: Client, claims: list[ClaimResponse]) -> None:
    """Jobs a result's claim leased after the worker began to stop: handed
    back at once, unrun (no retry spent), to run elsewhere."""
    for claim in claims:
        try:
            await client.release(claim.lease.lease_id, SHUTDOWN_REASON)
            log.info("handed %s back unrun: the worker is stopping", job_name(claim.lease))
        except RotaError as exc:
            log.warning("could not hand %s back (%s): it runs again when its lease expires",
                        job_name(claim.lease), exc)
