"""One job's lifecycle in the daemon, from its lease to its reported result:
its directory and environment made (job_setup.py), its steps run as the
workflow language says (steps.py) under a `Runner` (runner.py), its output
shipped through a `LogShipper` (logship.py), its lease kept by a heartbeat
(heartbeat.py) that also carries a cancel, its step states and resources
reported (reports.py), and its outcome delivered (results.py). Lease ids are logged only at DEBUG and kept
out of directory names."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Optional

from server.models import ClaimResponse, NextClaim
from worker.client.api import Client
from worker.daemon.config import WorkerConfig
from worker.daemon.heartbeat import keep_lease
from worker.daemon.job_setup import JobFiles, fill_job_dir, job_environment
from worker.daemon.language import JobLanguage
from worker.daemon.leases import LeaseKeeper
from worker.daemon.logship import LogShipper, Outage, job_name
from worker.daemon.outputs import ExpressionError, check_env_size, resolve_env
from worker.daemon.reports import StepReporter, sample_resources
from worker.daemon.results import JobResults
from worker.daemon.runner import GroupWatch, Runner, RunResult
from worker.daemon.steps import JobSteps
from worker.daemon.stops import LEASE_LOST, TIMEOUT, SetupFailure
from worker.daemon.jobdirs import JobDirs
from worker.daemon.workdir import make_job_dir, remove_job_dir

log = logging.getLogger("rota.worker")


# What the daemon does with the jobs a result's `next` claim leased: starts
# them (None), or, when it is stopping, hands them back (what to await).
Adopt = Callable[["JobRun", list[ClaimResponse]], Optional[Awaitable[None]]]


class JobRun:
    """One claimed job, from its lease to its reported result. `keeper`: the
    worker's one heartbeat for all its leases (else the job keeps its own);
    `next_claim` and `adopt`: the claim its result carries, and what becomes
    of the jobs it leases; `dirs`: the daemon's job directories, made ahead
    and removed after execute() returns (without it, the job makes its own
    and removes it before)."""

    def __init__(self, config: WorkerConfig, client: Client, claim: ClaimResponse, outage: Outage | None = None,
                 supervisor: GroupWatch | None = None, *, keeper: LeaseKeeper | None = None,
                 next_claim: Callable[[], Optional[NextClaim]] = lambda: None, adopt: Adopt | None = None,
                 dirs: JobDirs | None = None):
        self._config = config
        self._dirs = dirs
        # Set when a job its result leased took over its slot (claim_loop.py).
        self.slot_passed = False
        self._keeper = keeper
        self._next_claim = next_claim
        self._adopt = adopt
        self._client = client
        self._outage = outage or Outage()
        self._supervisor = supervisor
        self.job = claim.job
        self.lease = claim.lease
        self.name = job_name(claim.lease)
        self._runner: Runner | None = None
        self._root: str | None = None  # the job's private directory, once made
        self._files: JobFiles | None = None  # what is in it, once written
        self._stop_reason: str | None = None
        self._started = time.monotonic()

    def stop(self, reason: str) -> None:
        self._stop_reason = self._stop_reason or reason
        if self._runner is not None:
            self._runner.stop(reason)

    def kill_now(self) -> None:
        if self._runner is not None:
            self._runner.kill_now()

    async def execute(self) -> None:
        job, lease = self.job, self.lease
        log.info("claimed %s attempt %d", self.name, job.attempt)
        log.debug("%s holds lease %s", self.name, lease.lease_id)
        self._started = time.monotonic()
        heartbeat = None
        if self._keeper is not None:
            self._keeper.add(lease, self.name, self.stop)
        else:
            heartbeat = asyncio.create_task(keep_lease(self._client, lease, self.name, self._outage, self.stop,
                                                       self._config.timings.first_heartbeat_delay))
        try:
            shipper = LogShipper(self._client, lease, on_lease_lost=lambda: self.stop(LEASE_LOST),
                                 outage=self._outage)
            try:
                outcome = await self._run(shipper)
            finally:
                await shipper.close()  # the logs reach the server before the result does
            if self._keeper is not None:
                self._keeper.reporting(lease.lease_id)
            results = JobResults(self._client, lease.lease_id, self.name, self._elapsed,
                                 self._next_claim if self._adopt is not None else lambda: None)
            await results.report(outcome, stop_reason=self._stop_reason, timeout_secs=job.timeout_secs)
            if results.next and self._adopt is not None:
                handing_back = self._adopt(self, results.next)
                if handing_back is not None:
                    await handing_back
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            if self._keeper is not None:
                self._keeper.remove(lease.lease_id)
            # In a thread: removing a directory is the slowest step of a short
            # job on a disk mounted with `discard` (milliseconds an unlink),
            # and it must not hold the event loop, and with it every other job.
            # The daemon's JobDirs does it after this returns; without them, before.
            if self._root is not None:
                files = self._files
                known = [files.output, files.upstream, *files.handed.values()] if files is not None else []
                if self._dirs is not None:
                    self._dirs.remove(self._root, known, self.name)
                elif not await asyncio.get_running_loop().run_in_executor(None, remove_job_dir, self._root, known):
                    log.warning("could not remove all of %s's directory %s", self.name, self._root)

    async def _run(self, shipper: LogShipper) -> RunResult | SetupFailure:
        job = self.job
        try:
            if job.env_resolved:  # rendered by the server when it decided the job
                env = job.env
                for name, value in env.items():
                    check_env_size(name, value)
            else:
                env = resolve_env(job.env, job.upstream_outputs)
        except ExpressionError as exc:
            return SetupFailure(str(exc), retryable=False)
        run_as = self._config.run_as
        try:
            taken = self._dirs.take(job) if self._dirs is not None else None  # (made ahead: a rename)
            if taken is not None:
                self._root, self._files = taken
            else:
                # In a thread, as the removal is: on a slow disk this is a
                # millisecond the event loop (every other job's I/O) should not wait.
                self._files = await asyncio.get_running_loop().run_in_executor(None, self._make_dir)
            files = self._files
            root = self._root
            assert root is not None
        except OSError as exc:
            return SetupFailure(f"cannot prepare the job directory: {exc}", retryable=True)
        server = self._config.server

        made: list[tuple[dict[str, str], dict[str, str]]] = []

        def environment(step_env: dict[str, str]) -> dict[str, str]:
            # A step without env: of its own has the job's: made once (from
            # this process's whole environment), not again for each step.
            if made and made[0][0] == step_env:
                return made[0][1]
            process_env = job_environment(job, self.lease, server, run_as, files, step_env)
            made[:] = [(dict(step_env), process_env)]
            return process_env

        reporter = StepReporter(self._client, self.lease.lease_id, self.name) if job.steps else None
        self._runner = runner = Runner(
            cwd=files.cwd,
            env=environment(env),
            sink=shipper,
            cancel_grace=self._config.cancel_grace,
            supervisor=self._supervisor,
            spawn_as=run_as.popen_kwargs() if run_as else None,
        )
        if self._stop_reason is not None:  # cancelled or shut down before the runner existed
            self._runner.stop(self._stop_reason)
        timer = None
        if job.timeout_secs:
            timer = asyncio.get_running_loop().call_later(job.timeout_secs, self.stop, TIMEOUT)
        # Sampling starts with its first sample: most jobs end sooner, and
        # then no task was made for it.
        interval = self._config.timings.resource_interval_secs
        sampling: list[asyncio.Task[None]] = []

        def start_sampling() -> None:
            sampling.append(asyncio.create_task(sample_resources(
                self._client, self.lease.lease_id, self.name, lambda: runner.pgid, interval, first_delay=0.0)))

        sampler = asyncio.get_running_loop().call_later(interval, start_sampling)
        steps = JobSteps(job, runner, JobLanguage(job, env), files, root, shipper, environment, reporter, run_as)
        try:
            return await steps.run()
        finally:
            if timer is not None:
                timer.cancel()
            sampler.cancel()
            for task in sampling:
                task.cancel()
            if reporter is not None:
                # Before the result: it ends the lease, and with it the step reports.
                await reporter.close()

    def _make_dir(self) -> JobFiles:
        # (self._root is set at once: the directory goes with the job even
        # if the job is cancelled while this thread still runs)
        self._root = make_job_dir(self._config.workdir, self.job.workflow_id, self.job.job_id)
        return fill_job_dir(self._root, self.job, self._config.run_as)

    def _elapsed(self) -> float:
        return time.monotonic() - self._started
