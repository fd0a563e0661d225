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

The daemon holds an exclusive lock on its workdir for its whole life (two
daemons must not share one), and at start removes the job directories a
killed predecessor left there.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Optional
from urllib.parse import quote

import server
from server.models import (
    ClaimRequest,
    ClaimResponse,
    HandedBack,
    HeartbeatRequest,
    HeartbeatResponse,
    RegisterRequest,
    ResultAccepted,
)
from worker.client.api import ApiError, Client, RotaError, is_transient
from worker.daemon.logship import Backoff, LogShipper, Outage, job_name, send_until_answered
from worker.daemon.outputs import ExpressionError, OutputFileError, parse_output_file, resolve_env
from worker.daemon.reports import StepReporter, sample_resources
from worker.daemon.run_as import RunAs, RunAsError, hand_job_dir, open_workdir
from worker.daemon.runner import GroupWatch, Runner, RunResult, Script
from worker.daemon.supervisor import Supervisor

log = logging.getLogger("rota.worker")

# Why a job was stopped before it finished (Runner.stop reasons).
CANCELLED = "cancelled"
LEASE_LOST = "lease lost"
TIMEOUT = "timeout"
SHUTDOWN = "shutdown"
# The job asked to wait for an event: the server released its lease.
WAITING = "waiting for an event"

# Why a job still running at the drain deadline is handed back.
SHUTDOWN_REASON = "worker shut down before the job finished"

# At shutdown, how long past the drain timeout and cancel grace a result may
# take to reach the server. Past it the worker gives up: the lease expires and
# the server re-queues the job.
SHUTDOWN_REPORT_GRACE = 5.0

# The worker's credentials: never passed on to the jobs it runs. ROTA_RUN_TOKEN
# too, as the worker may itself run inside a job: a job gets its own or none.
WORKER_SECRETS = ("ROTA_TOKEN", "ROTA_TOKEN_FILE", "ROTA_ADMIN_TOKEN", "ROTA_ADMIN_TOKEN_FILE", "ROTA_RUN_TOKEN")

# While no job runs, one "idle" line at most this often.
IDLE_LOG_SECS = 300.0
# How long a clean stop waits for the server to take its deregistration.
DEREGISTER_TIMEOUT = 5.0
# A long-poll (claim, heartbeat) is answered after at most its wait: allow
# this much more before calling the server unreachable.
_LONG_POLL_SLACK_SECS = 10.0
# Heartbeats answered sooner than this (a server that does not long-poll)
# are paced to it, so they never spin.
_MIN_HEARTBEAT_SPACING = 1.0
# A job's first heartbeat waits this long (at most a third of the TTL): most
# jobs of a busy fleet end sooner and need none, which keeps a request and a
# parked long-poll per job off the server. A cancel in that time is seen
# when the first heartbeat goes out.
FIRST_HEARTBEAT_DELAY = 0.5
# How often a running job's CPU and memory are sampled and reported; jobs
# shorter than this send no sample.
RESOURCE_INTERVAL_SECS = 10.0

# In a job's private directory: its working directory, the $ROTA_OUTPUT file,
# the $ROTA_UPSTREAM_OUTPUTS file, and the $ROTA_CHECKPOINT and $ROTA_EVENT
# files of a resumed job. Nothing else is ever created there (the sweep of a
# killed worker's leftovers relies on it).
WORK_DIR, OUTPUT_FILE, UPSTREAM_FILE = "work", "output", "upstream-outputs.json"
CHECKPOINT_FILE, EVENT_FILE = "checkpoint.json", "event.json"
_JOB_DIR_ENTRIES = frozenset({WORK_DIR, OUTPUT_FILE, UPSTREAM_FILE, CHECKPOINT_FILE, EVENT_FILE})
# "<workflow>.<job>.<random>": two _safe_dirname()s and mkdtemp's 8 characters.
_JOB_DIR_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.[A-Za-z0-9_-][A-Za-z0-9_.-]*\.[a-z0-9_]{8}\Z")
LOCK_FILE = ".lock"


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
    # Take only jobs that ask for at least one of `labels` (never unlabelled ones).
    exclusive: bool = False
    # Start every job as this user (the worker runs as root): see worker/run_as.py.
    run_as: Optional[RunAs] = None


def _safe_dirname(text: str) -> str:
    # Bounded so that "<workflow>.<job>.<random>" stays within NAME_MAX (255).
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).lstrip(".")[:100] or "job"


class WorkdirError(RotaError):
    """The workdir cannot be used: another daemon holds it, or it cannot be made."""


class SupervisorError(RotaError):
    """The process that kills a dead worker's jobs (worker/supervisor.py) cannot start."""


def _remove_tree(path: str) -> bool:
    """Remove a job's directory; False if some of it would not go."""
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path):
        return True
    # Jobs leave read-only directories behind (Go's module cache does), which
    # rmtree cannot empty: make every directory writable, then try again.
    def writable(name: str) -> None:
        # Through a descriptor opened without following links: a job's
        # leftover process may swap a directory for a link between a check
        # and a chmod, and a worker running as root (--run-as) must not
        # chmod what it points at.
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except PermissionError:
            # A directory of our own with no read bit (root never gets here):
            # by name, as any swap could only be by this same user.
            if not os.path.islink(name):
                try:
                    os.chmod(name, 0o700)
                except OSError:
                    pass
            return
        except OSError:
            return
        try:
            os.fchmod(fd, 0o700)
        except OSError:
            pass
        finally:
            os.close(fd)

    writable(path)
    for top, dirs, _ in os.walk(path):  # top-down: each directory is made writable before it is read
        for d in dirs:
            writable(os.path.join(top, d))
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


class Workdir:
    """The daemon's --workdir, locked (flock on `.lock`) for as long as it runs.

    The lock is what tells a live daemon's job directories from those a
    killed one left: holding it, every job directory there is stale. The
    lock file's descriptor is close-on-exec, so an orphaned job of a killed
    daemon does not keep the lock alive.
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        lock = os.path.join(self.path, LOCK_FILE)
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise WorkdirError(f"cannot use workdir {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise WorkdirError(f"cannot lock workdir {self.path}: {exc.strerror or exc}") from None
            raise WorkdirError(
                f"another rota worker (pid {holder}) is using workdir {self.path};"
                " give each worker its own --workdir (env ROTA_WORKDIR)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def sweep(self) -> int:
        """Remove the job directories of earlier daemons; how many went.

        Only directories named like a job's and holding nothing but what a
        job's directory holds: anything else under the workdir is left alone.
        """
        removed = 0
        with os.scandir(self.path) as entries:
            stale = [e.path for e in entries if _JOB_DIR_NAME.match(e.name) and e.is_dir(follow_symlinks=False)]
        for path in stale:
            try:
                if not set(os.listdir(path)) <= _JOB_DIR_ENTRIES:
                    continue
            except OSError:
                continue
            if _remove_tree(path):
                removed += 1
            else:
                log.warning("could not remove the stale job directory %s", path)
        return removed

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


# ---- protocol calls ------------------------------------------------------------
# worker/client.py's register(), claim() and heartbeat() predate the fields
# the daemon now sends (the worker's description, `exclusive`, a heartbeat's
# long-poll wait) and it has no deregister; these use the same Client
# plumbing, so encoding, errors and the token are the same as for every call.


async def _register(client: Client, request: RegisterRequest) -> None:
    await client._send("POST", "/api/workers/register", request)


async def _claim(client: Client, request: ClaimRequest) -> Optional[ClaimResponse]:
    response = await client._send(
        "POST", "/api/jobs/claim", request, timeout=request.wait_secs + _LONG_POLL_SLACK_SECS)
    return client._decode(response.content, Optional[ClaimResponse])


async def _heartbeat(client: Client, lease_id: str, wait_secs: float) -> HeartbeatResponse:
    response = await client._send(
        "POST", f"/api/jobs/{quote(lease_id, safe='')}/heartbeat", HeartbeatRequest(wait_secs),
        timeout=wait_secs + _LONG_POLL_SLACK_SECS)
    return client._decode(response.content, HeartbeatResponse)


async def _deregister(client: Client, worker_id: str) -> None:
    await client._send("DELETE", f"/api/workers/{quote(worker_id, safe='')}")


# Where this worker's own `rota` is (the venv's bin, beside its python).
ROTA_BIN = os.path.dirname(os.path.abspath(sys.executable))


def path_with_rota(path: str) -> str:
    """`path`, with this worker's `rota` found last when none is on it, so a
    job can run `rota progress ...` under a worker started as
    `.venv/bin/rota worker`. Appended, not prepended: the venv's python
    must not shadow the one the job expects."""
    if shutil.which("rota", path=path) or not os.access(os.path.join(ROTA_BIN, "rota"), os.X_OK):
        return path
    return f"{path}{os.pathsep}{ROTA_BIN}" if path else ROTA_BIN


def outputs_size(outputs: dict[str, str]) -> int:
    """As the server counts toward MAX_OUTPUT_BYTES: keys and values in UTF-8."""
    return sum(len(key.encode()) + len(value.encode()) for key, value in outputs.items())


@dataclass
class SetupFailure:
    """The job could not be started: reported as its failure."""

    error: str
    retryable: bool


class JobRun:
    """One claimed job, from its lease to its reported result."""

    def __init__(self, config: WorkerConfig, client: Client, claim: ClaimResponse, outage: Outage | None = None,
                 supervisor: GroupWatch | None = None):
        self._config = config
        self._client = client
        self._outage = outage or Outage()
        self._supervisor = supervisor
        self.job = claim.job
        self.lease = claim.lease
        self.name = job_name(claim.lease)
        self._runner: Runner | None = None
        self._root: str | None = None  # the job's private directory, once made
        self._handed: dict[str, str] = {}  # ROTA_CHECKPOINT / ROTA_EVENT -> the file, when the claim had one
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
            shipper = LogShipper(self._client, lease, on_lease_lost=lambda: self.stop(LEASE_LOST),
                                 outage=self._outage)
            try:
                outcome = await self._run(shipper)
            finally:
                await shipper.close()  # the logs reach the server before the result does
            await self._report(outcome)
        finally:
            heartbeat.cancel()
            if self._root is not None and not _remove_tree(self._root):
                log.warning("could not remove all of %s's directory %s", self.name, self._root)

    @property
    def _output_file(self) -> str:
        assert self._root is not None
        return os.path.join(self._root, OUTPUT_FILE)

    @property
    def _upstream_file(self) -> str:
        assert self._root is not None
        return os.path.join(self._root, UPSTREAM_FILE)

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
            cwd = os.path.join(self._root, WORK_DIR)
            os.mkdir(cwd)
            open(self._output_file, "w").close()
            # A file, not a variable: one environment string holds at most
            # 128 KiB on Linux, and outputs may be far larger.
            with open(self._upstream_file, "w", encoding="utf-8") as f:
                json.dump(job.upstream_outputs, f, ensure_ascii=False)
            # What a resumed attempt starts from: files for the same reason
            # (a checkpoint may be 1 MiB), and only when there is one, so
            # `[ -n "$ROTA_CHECKPOINT" ]` tells a first attempt from a resumed one.
            for variable, filename, value in (("ROTA_CHECKPOINT", CHECKPOINT_FILE, job.checkpoint),
                                              ("ROTA_EVENT", EVENT_FILE, job.event)):
                if value is not None:
                    path = os.path.join(self._root, filename)
                    with open(path, "w", encoding="utf-8") as f:
                        json.dump(value, f, ensure_ascii=False)
                    self._handed[variable] = path
            run_as = self._config.run_as
            if run_as is not None:
                hand_job_dir(run_as, self._root, cwd,
                             [self._output_file, self._upstream_file, *self._handed.values()])
        except OSError as exc:
            return SetupFailure(f"cannot prepare the job directory: {exc}", retryable=True)
        self._runner_env = self._job_env(env)
        steps = StepReporter(self._client, self.lease.lease_id, self.name) if job.steps else None
        self._runner = runner = Runner(
            cwd=cwd,
            env=self._runner_env,
            sink=shipper,
            cancel_grace=self._config.cancel_grace,
            observer=steps,
            supervisor=self._supervisor,
            spawn_as=self._config.run_as.popen_kwargs() if self._config.run_as else None,
        )
        if self._stop_reason is not None:  # cancelled or shut down before the runner existed
            self._runner.stop(self._stop_reason)
        timer = None
        if job.timeout_secs:
            timer = asyncio.get_running_loop().call_later(job.timeout_secs, self.stop, TIMEOUT)
        sampler = asyncio.create_task(sample_resources(
            self._client, self.lease.lease_id, self.name, lambda: runner.pgid, RESOURCE_INTERVAL_SECS))
        try:
            return await runner.run(self._scripts())
        except OSError as exc:  # the shell could not be started
            if exc.errno == errno.E2BIG:
                # Each variable was checked; together they (and the script) are too much.
                size = sum(len(k.encode()) + len(v.encode()) + 2 for k, v in self._runner_env.items())
                return SetupFailure(
                    f"cannot start the job: its environment ({size} bytes) and script are more than the"
                    " system lets a process start with; read large outputs from the JSON file that"
                    " $ROTA_UPSTREAM_OUTPUTS names instead of through env:",
                    retryable=False,
                )
            return SetupFailure(f"cannot start the job: {exc}", retryable=True)
        finally:
            if timer is not None:
                timer.cancel()
            sampler.cancel()
            if steps is not None:
                # Before the result: it ends the lease, and with it the step reports.
                await steps.close()

    def _scripts(self) -> list[Script]:
        if self.job.steps:
            return [Script(step.run, step.name) for step in self.job.steps]
        return [Script(self.job.command)]

    def _job_env(self, env: dict[str, str]) -> dict[str, str]:
        job, lease = self.job, self.lease
        inherited = {name: value for name, value in os.environ.items() if name not in WORKER_SECRETS}
        if self._config.run_as is not None:  # the job user's HOME, USER, LOGNAME (its env: may still set them)
            inherited.update(self._config.run_as.env())
        job_env = {
            **inherited,
            # The run's inputs, then the job's own env: (which may use them).
            **{f"ROTA_INPUT_{name.upper()}": value for name, value in job.inputs.items()},
            **env,
            # Set last so a job's `env:` cannot impersonate another lease.
            "ROTA_WORKFLOW_ID": job.workflow_id,
            "ROTA_RUN_ID": job.run_id or "",
            "ROTA_JOB_ID": job.job_id,
            "ROTA_ATTEMPT": str(job.attempt),
            "ROTA_LEASE_ID": lease.lease_id,
            "ROTA_SERVER": self._config.server,
            "ROTA_OUTPUT": self._output_file,
            "ROTA_UPSTREAM_OUTPUTS": self._upstream_file,
        }
        job_env.pop("ROTA_RUN_TOKEN", None)  # the lease's own, or none (not one from `env:`)
        for variable in ("ROTA_CHECKPOINT", "ROTA_EVENT"):  # this attempt's own, or none
            job_env.pop(variable, None)
        job_env.update(self._handed)
        if lease.run_token:
            job_env["ROTA_RUN_TOKEN"] = lease.run_token
        job_env["PATH"] = path_with_rota(job_env.get("PATH", os.defpath))
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
        elif outcome.stop_reason == WAITING or self._stop_reason == WAITING:
            # (also when the job ended by itself before the heartbeat heard of the wait)
            self._log_waiting()
        elif outcome.stop_reason == TIMEOUT:
            await self._report_failure(f"timed out after {self.job.timeout_secs}s", retryable=True)
        elif outcome.stop_reason == SHUTDOWN:
            await self._hand_back(SHUTDOWN_REASON)
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
                await self._report_failure(_refusal(refused, outputs), retryable=False)

    async def _hand_back(self, reason: str) -> None:
        """Give the job back unfinished: the server queues it again, first in
        line, without spending a retry (a rolling restart fails nothing)."""
        answers: list[HandedBack] = []

        async def send() -> HandedBack:
            answers.append(await self._client.release(self.lease.lease_id, reason))
            return answers[-1]

        refused = await self._deliver("hand-back", send)
        if refused is None:
            outcome = answers[-1].outcome
            if outcome == "handed_back":
                log.info("handed %s back after %.2fs: it runs again, no retry spent", self.name, self._elapsed())
            else:  # handed back too often: the server counted this one as a failed attempt
                log.warning("handed %s back after %.2fs, more often than the server allows: counted as a"
                            " failed attempt (%s)", self.name, self._elapsed(), outcome)
        elif refused.status in (404, 405):
            # A server older than the hand-back call: fail the attempt, as
            # workers did before it.
            await self._report_failure(reason, retryable=True)
        elif refused.status != 409:
            log.error("the server refused the hand-back of %s: %s", self.name, refused)

    async def _report_failure(self, error: str, *, retryable: bool) -> None:
        refused = await self._deliver("fail", lambda: self._client.fail(self.lease.lease_id, error, retryable))
        if refused is None:
            log.info("finished %s: failure in %.2fs: %s", self.name, self._elapsed(), error)
        elif refused.status != 409:
            log.error("the server refused the failure report of %s: %s", self.name, refused)

    async def _deliver(self, what: str,
                       send: Callable[[], Awaitable[ResultAccepted | HandedBack]]) -> ApiError | None:
        """Send a result until the server takes it (None) or refuses it (its answer).

        Retries for as long as the server is unreachable or failing, so a blip
        never loses a result; only a shutdown's drain deadline cuts this short.
        A result re-sent after a lost reply is answered `replayed`: the server
        had taken the first one, which is success, not a lost lease.
        """
        answers: list[ResultAccepted | HandedBack] = []

        async def send_once() -> None:
            answers.append(await send())

        refused = await send_until_answered(send_once, f"the {what} of {self.name}")
        if refused is not None and refused.code == "job_waiting":
            # The job exited right after asking to wait, before a heartbeat
            # heard of it: its lease is released, there is nothing to report.
            self._log_waiting()
        elif refused is not None and refused.status == 409:
            log.info("lost lease %s: the server refused its %s: %s", self.name, what, refused)
        elif answers and answers[-1].replayed:
            log.info("the server had already taken the %s of %s (its first answer was lost)", what, self.name)
        return refused

    def _log_waiting(self) -> None:
        log.info("%s waits for event: lease released after %.2fs, no result reported", self.name, self._elapsed())

    async def _heartbeat(self) -> None:
        """Keep the lease, and stop the job the moment it is cancelled.

        Each heartbeat long-polls: the server renews the lease at once, then
        answers when the job is cancelled or after `wait` (a third of the
        lease TTL; the server caps it), and the next one goes out as soon as
        one answers. So the lease is renewed every third of its TTL and a
        cancel reaches the job within a round trip (within
        FIRST_HEARTBEAT_DELAY of its start at first), whatever the TTL.
        """
        loop = asyncio.get_running_loop()
        wait = self.lease.ttl_secs / 3
        spacing = min(wait, _MIN_HEARTBEAT_SPACING)
        backoff = Backoff(first=spacing, cap=wait)
        failing = False
        await asyncio.sleep(min(FIRST_HEARTBEAT_DELAY, wait))
        while True:
            sent = loop.time()
            try:
                beat = await _heartbeat(self._client, self.lease.lease_id, wait)
            except ApiError as exc:
                self._outage.saw(exc)
                if exc.code == "job_waiting":
                    # The job asked to wait for an event: the server released
                    # its lease and re-runs it when the event comes.
                    log.debug("%s gave up lease %s to wait for an event", self.name, self.lease.lease_id)
                    self.stop(WAITING)
                    return
                if exc.status in (401, 403, 409):
                    # 401/403: this worker's token was revoked (or never held
                    # the lease); no result of it will be accepted either.
                    log.warning("lost lease %s: %s", self.name, exc)
                    self.stop(LEASE_LOST)
                    return
                error: RotaError = exc
            except RotaError as exc:
                self._outage.saw(exc)
                error = exc
            else:
                self._outage.answered()
                failing = False
                backoff.reset()
                if beat.cancelled:
                    log.info("cancel requested for %s", self.name)
                    self.stop(CANCELLED)
                    return
                early = spacing - (loop.time() - sent)
                if early > 0:  # answered at once: a server that does not long-poll
                    await asyncio.sleep(early)
                continue
            if not failing:  # one line per outage, not one per beat
                log.warning("heartbeat of %s failed: %s", self.name, error)
            failing = True
            await asyncio.sleep(backoff.next())


def _refusal(refused: ApiError, outputs: dict[str, str]) -> str:
    """The error a job fails with when the server will not take its result."""
    details = refused.details if isinstance(refused.details, dict) else {}
    if refused.code == "outputs_too_large":
        size, limit = details.get("size", outputs_size(outputs)), details.get("limit", "?")
        return (f"outputs are {size} bytes, over the server's MAX_OUTPUT_BYTES ({limit} bytes);"
                " keep large results in files or an artifact store and output where they are")
    if refused.status == 413:
        return (f"outputs are {outputs_size(outputs)} bytes, more than the server takes in one request:"
                f" {refused}")
    return f"server refused the result: {refused}"


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
                    await self._drain(config.drain_timeout)
            await self._deregister()  # a clean stop: asked to, and drained
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
                claim = await _claim(self._client, request)
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
        """Every IDLE_LOG_SECS without a job, one line: the worker is alive and waiting."""
        while True:
            await asyncio.sleep(IDLE_LOG_SECS)
            idle_for = time.monotonic() - self._busy_at
            if not self._jobs and idle_for >= IDLE_LOG_SECS and not self._outage.ongoing:
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
                await _register(self._client, request)
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

    async def _deregister(self) -> None:
        """Tell the server this worker stopped on purpose: it shows `stopped`, not offline."""
        try:
            await asyncio.wait_for(_deregister(self._client, self._config.worker_id), DEREGISTER_TIMEOUT)
        except ApiError as exc:
            if exc.status != 404:  # 404: never registered, or already forgotten
                log.warning("could not tell the server this worker stopped: %s", exc)
        except (RotaError, asyncio.TimeoutError) as exc:
            log.warning("could not tell the server this worker stopped: %s", exc or "no answer in time")

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
