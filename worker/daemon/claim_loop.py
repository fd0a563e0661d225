"""The daemon's life: it locks and sweeps its workdir, starts the job
supervisor, registers, then claims jobs with long-polls while it has a free
slot (one of `concurrency`), each claimed job run as a `JobRun` (job.py);
asked to stop, it claims no more, drains (shutdown.py) and deregisters.

It speaks rota's batch protocol: one claim asks for as many jobs as there
are free slots, a finished job's result carries the claim of the job that
takes its slot next (one request per job for a busy worker), and one
heartbeat keeps every lease (leases.py). Against a server without it, one
claim per job and one heartbeat per job, as before.

The daemon holds an exclusive lock on its workdir for its whole life (two
daemons must not share one), and at start removes the job directories a
killed predecessor left there (workdir.py).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
import uuid
from typing import Awaitable, Optional

import server
from server.models import BatchClaimRequest, ClaimRequest, ClaimResponse, NextClaim, RegisterRequest
from worker.client.api import Client
from worker.client.errors import ApiError, RotaError, is_transient
from worker.daemon import protocol
from worker.daemon.config import WorkerConfig
from worker.daemon.job import JobRun
from worker.daemon.leases import LeaseKeeper
from worker.daemon.logship import Backoff, Outage
from worker.daemon.run_as import RunAsError, open_workdir
from worker.daemon.shutdown import deregister, drain, hand_back
from worker.daemon.supervisor import Supervisor
from worker.daemon.jobdirs import JobDirs
from worker.daemon.workdir import Workdir, WorkdirError

log = logging.getLogger("rota.worker")

# The most jobs one claim asks for (the server's MAX_CLAIM_JOBS).
MAX_CLAIM_JOBS = 100


class SupervisorError(RotaError):
    """The process that kills a dead worker's jobs (worker/daemon/supervisor.py) cannot start."""


class Daemon:
    def __init__(self, config: WorkerConfig, client: Client):
        if config.exclusive and not config.labels:
            raise ValueError("an exclusive worker needs labels: without any it could take no job")
        self._config = config
        self._client = client
        self._slots = asyncio.Semaphore(config.concurrency)
        self._jobs: dict[asyncio.Task[None], JobRun] = {}
        self._stop_requested = asyncio.Event()
        self._outage = Outage()
        self._workdir = Workdir(config.workdir)
        # Job directories made ahead (two per slot) and removed after.
        self._dirs = JobDirs(self._workdir.path, 2 * config.concurrency, config.run_as)
        self._supervisor = Supervisor()
        self._keeper = LeaseKeeper(client, self._outage, config.timings.first_heartbeat_delay)
        self._batch = True  # the server speaks the batch protocol (until it answers 404)
        self._busy_at = time.monotonic()  # when a job last started or ended

    def request_stop(self) -> None:
        """Stop claiming, drain running jobs, then return from run()."""
        self._stop_requested.set()

    def kill_jobs(self) -> None:
        """For an immediate exit: SIGKILL every job's process group."""
        for job in self._jobs.values():
            job.kill_now()

    async def run(self) -> None:
        config = self._config
        self._workdir.acquire()  # before anything else: two daemons must not share a workdir
        try:
            removed = self._workdir.sweep()
            if removed:
                log.info("removed %d stale job director%s from %s (left by a worker that did not stop cleanly)",
                         removed, "y" if removed == 1 else "ies", self._workdir.path)
            if config.run_as is not None:
                try:
                    open_workdir(config.run_as, self._workdir.path)
                except (OSError, RunAsError) as exc:
                    raise WorkdirError(str(exc)) from None
            try:
                self._supervisor.start()
            except OSError as exc:
                raise SupervisorError(f"cannot start the job supervisor ({sys.executable}): {exc}") from None
            self._dirs.start()
            claiming = asyncio.create_task(self._claim_loop())
            stop = asyncio.create_task(self._stop_requested.wait())
            idle = asyncio.create_task(self._log_idle())
            beating = asyncio.create_task(self._keeper.run())
            beating.add_done_callback(_say_if_failed)
            try:
                await asyncio.wait({claiming, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                idle.cancel()
                claiming.cancel()  # aborts an in-flight long-poll at once
                try:
                    await claiming  # a fatal claim error (e.g. labels the server refuses) surfaces here
                except asyncio.CancelledError:
                    pass
                finally:
                    await drain(self._jobs, config.drain_timeout, config.cancel_grace,
                                config.timings.shutdown_report_grace)
                    beating.cancel()
            await deregister(self._client, config.worker_id)  # a clean stop: asked to, and drained
        finally:
            self._supervisor.close()
            # The last jobs' directories, for a while; what is left then goes at the next start (sweep).
            if not await asyncio.to_thread(self._dirs.close, config.timings.shutdown_report_grace):
                log.warning("job directories still being removed at the stop: the next start removes them")
            self._workdir.release()
        log.info("worker %s stopped", config.worker_id)

    async def _claim_loop(self) -> None:
        await self._register()
        backoff = Backoff(cap=10.0)
        # Kept until a claim is answered: re-sent after a transport error, it
        # gets back the jobs the server may have leased for the lost reply.
        claim_id = uuid.uuid4().hex
        while True:
            await self._slots.acquire()
            free = 1
            while self._batch and free < MAX_CLAIM_JOBS and not self._slots.locked():
                await self._slots.acquire()  # (free: at once)
                free += 1
            try:
                claims = await self._claim(claim_id, free)
            except RotaError as exc:
                for _ in range(free):
                    self._slots.release()
                self._outage.saw(exc)
                if not is_transient(exc):
                    raise
                delay = backoff.next()
                log.warning("claim failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                continue
            except BaseException:
                for _ in range(free):
                    self._slots.release()
                raise
            self._outage.answered()
            backoff.reset()
            claim_id = uuid.uuid4().hex
            for _ in range(free - len(claims)):
                self._slots.release()
            for claim in claims:
                self._start(claim)

    async def _claim(self, claim_id: str, jobs: int) -> list[ClaimResponse]:
        config = self._config
        if self._batch:
            try:
                return await protocol.claim_many(self._client, BatchClaimRequest(
                    worker_id=config.worker_id, labels=config.labels, lease_ttl_secs=config.lease_ttl,
                    claim_id=claim_id, exclusive=config.exclusive, max_jobs=jobs, wait_secs=config.claim_wait))
            except ApiError as exc:
                if exc.status not in (404, 405):
                    raise
                log.info("the server has no batch claim (POST /api/jobs/claims): one claim per job")
                self._batch = False
                # the slots beyond the first go back to the caller's count
        request = ClaimRequest(config.worker_id, config.labels, config.lease_ttl, config.claim_wait, claim_id,
                               config.exclusive)
        claim = await protocol.claim(self._client, request)
        return [] if claim is None else [claim]

    def _start(self, claim: ClaimResponse) -> None:
        """Runs a leased job in a slot already taken for it."""
        run = JobRun(self._config, self._client, claim, self._outage, self._supervisor, keeper=self._keeper,
                     next_claim=self._next_claim, adopt=self._adopt, dirs=self._dirs)
        task = asyncio.create_task(run.execute())
        self._jobs[task] = run
        self._busy_at = time.monotonic()
        task.add_done_callback(self._job_done)

    def _next_claim(self) -> Optional[NextClaim]:
        """The claim a finished job's result carries: the job that takes its slot."""
        if not self._batch or self._stop_requested.is_set():
            return None
        config = self._config
        return NextClaim(worker_id=config.worker_id, labels=config.labels, lease_ttl_secs=config.lease_ttl,
                         claim_id=uuid.uuid4().hex, exclusive=config.exclusive, max_jobs=1)

    def _adopt(self, done: JobRun, claims: list[ClaimResponse]) -> Optional[Awaitable[None]]:
        """The jobs a finished job's result leased: the first takes its slot
        (which it then does not give back); any more are handed back, as are
        all of them once the worker is stopping."""
        if self._stop_requested.is_set():
            return hand_back(self._client, claims)
        first, *rest = claims
        done.slot_passed = True
        self._start(first)
        return hand_back(self._client, rest) if rest else None

    def _job_done(self, task: asyncio.Task[None]) -> None:
        run = self._jobs.pop(task)
        self._busy_at = time.monotonic()
        if not run.slot_passed:
            self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("job %s crashed in the worker", run.name, exc_info=task.exception())

    async def _log_idle(self) -> None:
        """Every Timings.idle_log_secs without a job, one line: the worker is alive and waiting."""
        every = self._config.timings.idle_log_secs
        while True:
            await asyncio.sleep(every)
            idle_for = time.monotonic() - self._busy_at
            if not self._jobs and idle_for >= every and not self._outage.ongoing:
                free = self._config.concurrency - len(self._jobs)
                log.info("idle, %d of %d slots free", free, self._config.concurrency)

    async def _register(self) -> None:
        config = self._config
        request = RegisterRequest(
            worker_id=config.worker_id,
            labels=config.labels,
            exclusive=config.exclusive,
            concurrency=config.concurrency,
            version=server.__version__,
            host=socket.gethostname()[:255],
            claim_wait_secs=config.claim_wait,
            lease_ttl_secs=config.lease_ttl,
        )
        backoff = Backoff(cap=10.0)
        while True:
            try:
                await protocol.register(self._client, request)
                break
            except RotaError as exc:
                self._outage.saw(exc)
                if not is_transient(exc):
                    raise
                delay = backoff.next()
                log.warning("register failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
        self._outage.answered()
        log.info(
            "worker %s registered at %s, labels [%s]%s, concurrency %d",
            config.worker_id,
            config.server,
            ",".join(config.labels),
            " (exclusive)" if config.exclusive else "",
            config.concurrency,
        )


def _say_if_failed(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the heartbeat stopped: leases will lapse and their jobs run again elsewhere",
                  exc_info=task.exception())
