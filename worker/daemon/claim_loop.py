"""The daemon's life: it locks and sweeps its workdir, starts the job
supervisor, registers, then claims jobs with long-polls while it has a free
slot (one of `concurrency`), each claimed job run as a `JobRun` (job.py);
asked to stop, it claims no more, drains (shutdown.py) and deregisters.

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

import server
from server.models import ClaimRequest, RegisterRequest
from worker.client.api import Client
from worker.client.errors import RotaError, is_transient
from worker.daemon import protocol
from worker.daemon.config import WorkerConfig
from worker.daemon.job import JobRun
from worker.daemon.logship import Backoff, Outage
from worker.daemon.run_as import RunAsError, open_workdir
from worker.daemon.shutdown import deregister, drain
from worker.daemon.supervisor import Supervisor
from worker.daemon.workdir import Workdir, WorkdirError

log = logging.getLogger("rota.worker")


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
        self._supervisor = Supervisor()
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
            claiming = asyncio.create_task(self._claim_loop())
            stop = asyncio.create_task(self._stop_requested.wait())
            idle = asyncio.create_task(self._log_idle())
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
            await deregister(self._client, config.worker_id)  # a clean stop: asked to, and drained
        finally:
            self._supervisor.close()
            self._workdir.release()
        log.info("worker %s stopped", config.worker_id)

    async def _claim_loop(self) -> None:
        config = self._config
        await self._register()
        backoff = Backoff(cap=10.0)
        # Kept until a claim is answered: re-sent after a transport error, it
        # gets back the job the server may have leased for the lost reply.
        claim_id = uuid.uuid4().hex
        while True:
            await self._slots.acquire()
            request = ClaimRequest(config.worker_id, config.labels, config.lease_ttl, config.claim_wait,
                                   claim_id, config.exclusive)
            try:
                claim = await protocol.claim(self._client, request)
            except RotaError as exc:
                self._slots.release()
                self._outage.saw(exc)
                if not is_transient(exc):
                    raise
                delay = backoff.next()
                log.warning("claim failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                continue
            except BaseException:
                self._slots.release()
                raise
            self._outage.answered()
            backoff.reset()
            claim_id = uuid.uuid4().hex
            if claim is None:
                self._slots.release()
                continue
            run = JobRun(config, self._client, claim, self._outage, self._supervisor)
            task = asyncio.create_task(run.execute())
            self._jobs[task] = run
            self._busy_at = time.monotonic()
            task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        run = self._jobs.pop(task)
        self._busy_at = time.monotonic()
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
