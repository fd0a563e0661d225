"""Run a job's shell script(s) as a process group and stream their output.

Each step is `bash -e -o pipefail -c <run>` (or `sh -e -c` where there is no
bash), or the command its `shell:` makes (worker/daemon/shells.py), in a new
session, so the whole tree the job spawns can be signalled at once: SIGTERM
on stop or at a step's timeout, SIGKILL after the grace period, and SIGKILL
for any process a step leaves behind when it exits (as GitHub Actions cleans
up orphans), so nothing outlives its job. Which steps run, and with what,
is worker/daemon/steps.py's to say.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

from worker.daemon.shells import which
from worker.daemon.spawn import Process, Starter, start_process

# Text of a marker chunk written to stdout before each step of a `steps:` job.
STEP_MARKER = "::step:: {name}\n"
STDERR_TAIL_LINES = 10
_STDERR_TAIL_CHARS = 8192
# A step whose leftovers escaped its process group (setsid) may still hold our
# pipes; after this long we stop waiting for their end of file.
_PIPE_CLOSE_TIMEOUT = 2.0


def shell_argv(script: str) -> list[str]:
    bash = which("bash")
    if bash:
        return [bash, "-e", "-o", "pipefail", "-c", script]
    return [which("sh") or "/bin/sh", "-e", "-c", script]


class OutputSink(Protocol):
    """Where the runner sends output; `congested` makes it stop reading pipes."""

    congested: bool

    def write(self, stream: str, text: str) -> None: ...

    async def drained(self) -> None: ...


@dataclass(frozen=True)
class Script:
    run: str
    name: str | None = None  # None for a plain `run:` job: no step marker
    # What the step says besides (steps.py): the command to start (its
    # shell, with the script's file); else `bash -e -o pipefail -c <run>`.
    argv: Sequence[str] | None = None
    cwd: str | None = None  # else the runner's
    env: Mapping[str, str] | None = None  # else the runner's
    timeout_secs: float | None = None  # the step's own timeout-minutes


@dataclass(frozen=True)
class StepRun:
    """How one step's process ended."""

    exit_code: int  # negative: killed by that signal
    stderr_tail: str  # its last lines of stderr when it failed, else ""
    timed_out: bool = False  # stopped at its own timeout


def describe_exit(exit_code: int) -> str:
    """`exit code N`, or `killed by SIGNAME` for a negative code."""
    if exit_code < 0:
        return f"killed by {signal.Signals(-exit_code).name}"
    return f"exit code {exit_code}"


@dataclass
class RunResult:
    exit_code: int | None = None  # of the step that failed, else 0; negative: killed by that signal
    failed_step: str | None = None
    stop_reason: str | None = None  # why stop() was called, if it was
    stderr_tail: str = ""
    # Set by steps.py: why the failed step failed when no exit code says it
    # (its timeout, a field it could not evaluate), whether running the job
    # again could end otherwise, and a successful job's outputs.
    reason: str | None = None
    retryable: bool = True
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.stop_reason is None and self.exit_code == 0

    def describe_failure(self) -> str:
        """`exit code N: <last lines of stderr>`, the `error` a failed job reports."""
        if self.reason is not None:
            what = self.reason
        else:
            what = describe_exit(self.exit_code) if self.exit_code is not None else "exit code None"
        if self.failed_step:
            what += f" in step {self.failed_step!r}"
        return f"{what}: {self.stderr_tail}" if self.stderr_tail else what


class _Output:
    """A step's output on its way to the sink: the stderr tail kept, and the
    pipes no longer read while the sink is congested."""

    def __init__(self, sink: OutputSink):
        self._sink = sink
        self.process: Process | None = None
        self._resuming = False
        self.stderr = ""

    def emit(self, fd: int, text: str) -> None:
        if fd == 2:
            self.stderr = (self.stderr + text)[-_STDERR_TAIL_CHARS:]
        self._sink.write("stdout" if fd == 1 else "stderr", text)
        if self._sink.congested and not self._resuming and self.process is not None:
            self.process.pause_reading()
            self._resuming = True
            asyncio.get_running_loop().create_task(self._resume_when_drained())

    async def _resume_when_drained(self) -> None:
        await self._sink.drained()
        self._resuming = False
        if self.process is not None:
            self.process.resume_reading()


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


class GroupWatch(Protocol):
    """Told each step's process group as it starts and ends (worker/supervisor.py)."""

    def watch(self, pgid: int) -> None: ...

    def unwatch(self, pgid: int) -> None: ...


class Runner:
    """Runs one job's steps, each in its own process group; `run` runs them
    in order, stopping at the first failure (steps.py decides for itself)."""

    def __init__(self, *, cwd: str, env: dict[str, str], sink: OutputSink, cancel_grace: float,
                 supervisor: GroupWatch | None = None, spawn_as: Mapping[str, Any] | None = None,
                 starter: Starter = start_process, pidfds: bool = True):
        """`spawn_as`: subprocess's user/group/extra_groups, to start each step
        as another user; `starter` and `pidfds`: how a step is started and
        its exit heard (spawn.py)."""
        self._starter = starter
        self._pidfds = pidfds
        self._spawn_as = dict(spawn_as or {})
        self._cwd = cwd
        self._env = env
        self._sink = sink
        self._supervisor = supervisor
        self._grace = cancel_grace
        self._pgid: int | None = None
        self._kill_timer: asyncio.TimerHandle | None = None
        self.stop_reason: str | None = None

    @property
    def pgid(self) -> int | None:
        """The running step's process group, None between steps."""
        return self._pgid

    async def run(self, scripts: Sequence[Script]) -> RunResult:
        result = RunResult()
        for script in scripts:
            if self.stop_reason is not None:
                break
            step = await self.run_step(script)
            result.exit_code = step.exit_code
            if step.exit_code != 0:
                result.failed_step = script.name
                result.stderr_tail = step.stderr_tail
                break
        result.stop_reason = self.stop_reason
        return result

    async def run_step(self, script: Script) -> StepRun:
        """One step, its `::step::` marker first when it has a name. Raises
        OSError when its command cannot be started."""
        if script.name is not None:
            self._sink.write("stdout", STEP_MARKER.format(name=script.name))
        exit_code, stderr, timed_out = await self._run_one(script)
        tail = "\n".join(stderr.strip().splitlines()[-STDERR_TAIL_LINES:]) if exit_code else ""
        return StepRun(exit_code, tail, timed_out)

    def stop(self, reason: str) -> None:
        """SIGTERM the running step's group now and SIGKILL it after the grace period.

        The first reason wins: a job that times out and is then cancelled
        stays a timeout.
        """
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        if self._pgid is not None:
            self._terminate(self._pgid)

    def kill_now(self) -> None:
        if self._pgid is not None:
            _kill_group(self._pgid, signal.SIGKILL)

    def _terminate(self, pgid: int) -> None:
        _kill_group(pgid, signal.SIGTERM)
        if self._kill_timer is None:  # a step's timeout and then a stop: one SIGKILL, at the first's grace
            self._kill_timer = asyncio.get_running_loop().call_later(
                self._grace, _kill_group, pgid, signal.SIGKILL
            )

    async def _run_one(self, script: Script) -> tuple[int, str, bool]:
        loop = asyncio.get_running_loop()
        output = _Output(self._sink)
        process = output.process = await Process.start(
            script.argv or shell_argv(script.run),
            cwd=script.cwd or self._cwd,
            env=script.env if script.env is not None else self._env,
            spawn_as=self._spawn_as,
            emit=output.emit,
            starter=self._starter,
            pidfds=self._pidfds,
        )
        pgid = self._pgid = process.pid
        if self._supervisor is not None:
            self._supervisor.watch(pgid)
        timed_out: list[bool] = []

        def time_out() -> None:
            timed_out.append(True)
            self._terminate(pgid)

        step_timer = loop.call_later(script.timeout_secs, time_out) if script.timeout_secs else None
        try:
            if self.stop_reason is not None:  # stopped while the step was starting
                self._terminate(pgid)
            await process.exited
            _kill_group(pgid, signal.SIGKILL)
            try:
                await asyncio.wait_for(asyncio.shield(process.pipes_closed), _PIPE_CLOSE_TIMEOUT)
            except asyncio.TimeoutError:
                pass
            exit_code = process.returncode
            assert exit_code is not None
            return exit_code, output.stderr, bool(timed_out)
        except BaseException:
            _kill_group(pgid, signal.SIGKILL)  # cancelled: take the job down with us
            raise
        finally:
            if step_timer is not None:
                step_timer.cancel()
            if self._kill_timer is not None:
                self._kill_timer.cancel()
                self._kill_timer = None
            self._pgid = None
            if self._supervisor is not None:
                self._supervisor.unwatch(pgid)
            process.close()
