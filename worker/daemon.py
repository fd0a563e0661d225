"""The worker daemon: register, long-poll claim, run, heartbeat, ship logs, report.

One `Daemon` holds up to `concurrency` jobs. Each claimed job is a `JobRun`:
its scripts run under a `Runner` (worker/runner.py), its output goes to the
server through a `LogShipper`, a heartbeat task keeps its lease and carries
cancellation, and its result is retried until the server takes it or says
the lease is gone (409), so a server blip never loses a result.

A job never sees the worker's own token: its environment drops the token
variables and carries the lease's run token instead (ROTA_RUN_TOKEN), which
is good only for that lease's calls while the lease lives. Lease ids are
logged only at DEBUG and kept out of directory names.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from server.models import ClaimResponse, ResultAccepted
from worker.client import ApiError, Client, RotaError, is_transient
from worker.logship import Backoff, LogShipper, job_name, send_until_answered
from worker.outputs import ExpressionError, OutputFileError, parse_output_file, resolve_env
from worker.runner import Runner, RunResult, Script

log = logging.getLogger("rota.worker")

# Why a job was stopped before it finished (Runner.stop reasons).
CANCELLED = "cancelled"
LEASE_LOST = "lease lost"
TIMEOUT = "timeout"
SHUTDOWN = "shutdown"

# At shutdown, how long past the drain timeout and cancel grace a result may
# take to reach the server. Past it the worker gives up: the lease expires and
# the server re-queues the job.
SHUTDOWN_REPORT_GRACE = 5.0

# The worker's credentials: never passed on to the jobs it runs. ROTA_RUN_TOKEN
# too, as the worker may itself run inside a job: a job gets its own or none.
WORKER_SECRETS = ("ROTA_TOKEN", "ROTA_TOKEN_FILE", "ROTA_ADMIN_TOKEN", "ROTA_ADMIN_TOKEN_FILE", "ROTA_RUN_TOKEN")


def default_worker_id() -> str:
    # The random part: a worker id belongs to the first token that uses it,
    # so a guessable default would let another fleet's token squat it.
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class WorkerConfig:
    server: str
    labels: list[str] = field(default_factory=list)
    concurrency: int = 1
    lease_ttl: int = 30
    worker_id: str = field(default_factory=default_worker_id)
    workdir: str = ".rota-work"
    cancel_grace: float = 10.0
    # Fits drain plus cancel grace inside the 30 s most supervisors (systemd
    # with a short TimeoutStopSec, Kubernetes' default grace) allow before SIGKILL.
    drain_timeout: float = 20.0
    # Each claim waits this long for a job before asking again (server cap: 60 s).
    claim_wait: float = 30.0


def _safe_dirname(text: str) -> str:
    # Bounded so that "<workflow>.<job>.<random>" stays within NAME_MAX (255).
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).lstrip(".")[:100] or "job"


@dataclass
class SetupFailure:
    """The job could not be started: reported as its failure."""

    error: str
    retryable: bool


class JobRun:
    """One claimed job, from its lease to its reported result."""

    def __init__(self, config: WorkerConfig, client: Client, claim: ClaimResponse):
        self._config = config
        self._client = client
        self.job = claim.job
        self.lease = claim.lease
        self.name = job_name(claim.lease)
        self._runner: Runner | None = None
        self._root: str | None = None  # the job's private directory, once made
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
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            shipper = LogShipper(self._client, lease, on_lease_lost=lambda: self.stop(LEASE_LOST))
            try:
                outcome = await self._run(shipper)
            finally:
                await shipper.close()  # the logs reach the server before the result does
            await self._report(outcome)
        finally:
            heartbeat.cancel()
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)

    @property
    def _output_file(self) -> str:
        assert self._root is not None
        return os.path.join(self._root, "output")

    def _make_root(self) -> str:
        """A fresh directory only this user can enter, under the workdir.

        Named after the job, not the lease: lease ids stay out of what is
        widely seen (paths show up in `ps`, shell prompts, error messages).
        """
        workdir = os.path.abspath(self._config.workdir)
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        prefix = f"{_safe_dirname(self.job.workflow_id)}.{_safe_dirname(self.job.job_id)}."
        return tempfile.mkdtemp(prefix=prefix, dir=workdir)  # mode 0700

    async def _run(self, shipper: LogShipper) -> RunResult | SetupFailure:
        job = self.job
        try:
            env = resolve_env(job.env, job.upstream_outputs)
        except ExpressionError as exc:
            return SetupFailure(str(exc), retryable=False)
        try:
            self._root = self._make_root()
            cwd = os.path.join(self._root, "work")
            os.mkdir(cwd)
            open(self._output_file, "w").close()
        except OSError as exc:
            return SetupFailure(f"cannot prepare the job directory: {exc}", retryable=True)
        self._runner = Runner(
            cwd=cwd,
            env=self._job_env(env),
            sink=shipper,
            cancel_grace=self._config.cancel_grace,
        )
        if self._stop_reason is not None:  # cancelled or shut down before the runner existed
            self._runner.stop(self._stop_reason)
        timer = None
        if job.timeout_secs:
            timer = asyncio.get_running_loop().call_later(job.timeout_secs, self.stop, TIMEOUT)
        try:
            return await self._runner.run(self._scripts())
        except OSError as exc:  # the shell could not be started
            return SetupFailure(f"cannot start the job: {exc}", retryable=True)
        finally:
            if timer is not None:
                timer.cancel()

    def _scripts(self) -> list[Script]:
        if self.job.steps:
            return [Script(step.run, step.name) for step in self.job.steps]
        return [Script(self.job.command)]

    def _job_env(self, env: dict[str, str]) -> dict[str, str]:
        job, lease = self.job, self.lease
        inherited = {name: value for name, value in os.environ.items() if name not in WORKER_SECRETS}
        job_env = {
            **inherited,
            **env,
            # Set last so a job's `env:` cannot impersonate another lease.
            "ROTA_WORKFLOW_ID": job.workflow_id,
            "ROTA_JOB_ID": job.job_id,
            "ROTA_ATTEMPT": str(job.attempt),
            "ROTA_LEASE_ID": lease.lease_id,
            "ROTA_SERVER": self._config.server,
            "ROTA_OUTPUT": self._output_file,
            "ROTA_UPSTREAM_OUTPUTS": json.dumps(job.upstream_outputs),
        }
        job_env.pop("ROTA_RUN_TOKEN", None)  # the lease's own, or none (not one from `env:`)
        if lease.run_token:
            job_env["ROTA_RUN_TOKEN"] = lease.run_token
        return job_env

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    async def _report(self, outcome: RunResult | SetupFailure) -> None:
        if isinstance(outcome, SetupFailure):
            await self._report_failure(outcome.error, retryable=outcome.retryable)
        elif outcome.stop_reason == CANCELLED:
            # The server settled the job already and answers 409, but the
            # report releases the lease now rather than at its expiry, so
            # this worker stops showing as busy with the job.
            try:
                await self._client.fail(self.lease.lease_id, "cancelled", False)
            except RotaError:
                pass
            log.info("cancelled %s after %.2fs", self.name, self._elapsed())
        elif outcome.stop_reason == LEASE_LOST:
            log.info("lease lost for %s after %.2fs, no result reported", self.name, self._elapsed())
        elif outcome.stop_reason == TIMEOUT:
            await self._report_failure(f"timed out after {self.job.timeout_secs}s", retryable=True)
        elif outcome.stop_reason == SHUTDOWN:
            await self._report_failure("worker shut down before the job finished", retryable=True)
        elif not outcome.succeeded:
            await self._report_failure(outcome.describe_failure(), retryable=True)
        else:
            try:
                with open(self._output_file, encoding="utf-8", errors="replace") as f:
                    outputs = parse_output_file(f.read())
            except (OSError, OutputFileError) as exc:
                await self._report_failure(f"bad $ROTA_OUTPUT: {exc}", retryable=False)
                return
            refused = await self._deliver("complete", lambda: self._client.complete(self.lease.lease_id, outputs))
            if refused is None:
                log.info("finished %s: success in %.2fs", self.name, self._elapsed())
            elif refused.status != 409:
                # Re-running the job would produce the same result (too large,
                # invalid), so fail it for good rather than let the lease expire.
                log.error("the server refused the result of %s: %s", self.name, refused)
                await self._report_failure(f"server refused the result: {refused}", retryable=False)

    async def _report_failure(self, error: str, *, retryable: bool) -> None:
        refused = await self._deliver("fail", lambda: self._client.fail(self.lease.lease_id, error, retryable))
        if refused is None:
            log.info("finished %s: failure in %.2fs: %s", self.name, self._elapsed(), error)
        elif refused.status != 409:
            log.error("the server refused the failure report of %s: %s", self.name, refused)

    async def _deliver(self, what: str, send: Callable[[], Awaitable[ResultAccepted]]) -> ApiError | None:
        """Send a result until the server takes it (None) or refuses it (its answer).

        Retries for as long as the server is unreachable or failing, so a blip
        never loses a result; only a shutdown's drain deadline cuts this short.
        A result re-sent after a lost reply is answered `replayed`: the server
        had taken the first one, which is success, not a lost lease.
        """
        answers: list[ResultAccepted] = []

        async def send_once() -> None:
            answers.append(await send())

        refused = await send_until_answered(send_once, f"the {what} of {self.name}")
        if refused is not None and refused.status == 409:
            log.info("lost lease %s: the server refused its %s: %s", self.name, what, refused)
        elif answers and answers[-1].replayed:
            log.info("the server had already taken the %s of %s (its first answer was lost)", what, self.name)
        return refused

    async def _heartbeat(self) -> None:
        interval = self.lease.ttl_secs / 3
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                beat = await self._client.heartbeat(self.lease.lease_id)
            except ApiError as exc:
                if exc.status in (401, 403, 409):
                    # 401/403: this worker's token was revoked (or never held
                    # the lease); no result of it will be accepted either.
                    log.warning("lost lease %s: %s", self.name, exc)
                    self.stop(LEASE_LOST)
                    return
                error: RotaError = exc
            except RotaError as exc:
                error = exc
            else:
                failing = False
                if beat.cancelled:
                    log.info("cancel requested for %s", self.name)
                    self.stop(CANCELLED)
                    return
                continue
            if not failing:  # one line per outage, not one per beat
                log.warning("heartbeat of %s failed: %s", self.name, error)
            failing = True


class Daemon:
    def __init__(self, config: WorkerConfig, client: Client):
        self._config = config
        self._client = client
        self._slots = asyncio.Semaphore(config.concurrency)
        self._jobs: dict[asyncio.Task[None], JobRun] = {}
        self._stop_requested = asyncio.Event()

    def request_stop(self) -> None:
        """Stop claiming, drain running jobs, then return from run()."""
        self._stop_requested.set()

    def kill_jobs(self) -> None:
        """For an immediate exit: SIGKILL every job's process group."""
        for job in self._jobs.values():
            job.kill_now()

    async def run(self) -> None:
        config = self._config
        claiming = asyncio.create_task(self._claim_loop())
        stop = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait({claiming, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            claiming.cancel()  # aborts an in-flight long-poll at once
            try:
                await claiming  # a fatal claim error (e.g. labels the server refuses) surfaces here
            except asyncio.CancelledError:
                pass
            finally:
                await self._drain(config.drain_timeout)
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
            try:
                claim = await self._client.claim(config.worker_id, config.labels, config.lease_ttl, config.claim_wait,
                                                 claim_id=claim_id)
            except RotaError as exc:
                self._slots.release()
                if not is_transient(exc):
                    raise
                delay = backoff.next()
                log.warning("claim failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                continue
            except BaseException:
                self._slots.release()
                raise
            backoff.reset()
            claim_id = uuid.uuid4().hex
            if claim is None:
                self._slots.release()
                continue
            run = JobRun(config, self._client, claim)
            task = asyncio.create_task(run.execute())
            self._jobs[task] = run
            task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        run = self._jobs.pop(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("job %s crashed in the worker", run.name, exc_info=task.exception())

    async def _register(self) -> None:
        config = self._config
        backoff = Backoff(cap=10.0)
        while True:
            try:
                await self._client.register(config.worker_id, config.labels)
                break
            except RotaError as exc:
                if not is_transient(exc):
                    raise
                delay = backoff.next()
                log.warning("register failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
        log.info(
            "worker %s registered at %s, labels [%s], concurrency %d",
            config.worker_id,
            config.server,
            ",".join(config.labels),
            config.concurrency,
        )

    async def _drain(self, timeout: float) -> None:
        if not self._jobs:
            return
        log.info("draining %d running job(s), up to %.0fs", len(self._jobs), timeout)
        _, running = await asyncio.wait(set(self._jobs), timeout=timeout)
        if not running:
            return
        for task in running:
            self._jobs[task].stop(SHUTDOWN)
        # Stopped jobs die within the cancel grace; then their results (and those
        # of jobs that finished while the server was away) get a few seconds.
        _, stuck = await asyncio.wait(running, timeout=self._config.cancel_grace + SHUTDOWN_REPORT_GRACE)
        for task in stuck:
            log.warning(
                "gave up on %s: its result did not reach the server before shutdown;"
                " the job re-runs when its lease expires",
                self._jobs[task].name,
            )
            task.cancel()  # a job still running is killed as the runner unwinds
        if stuck:
            await asyncio.wait(stuck)
