"""A job's steps as the workflow language runs them, one after another.

Each step is decided as it comes, GitHub's way: its `if:` (by default
`success()`: it runs while no earlier step has failed; `failure()` and
`always()` run it after one has), then its fields are evaluated
(language.py) over the job's contexts, the `env` context and the earlier
steps (`steps.<id>`): its `env` over the job's, its `shell`,
`working-directory` (inside the job's directory; `defaults.run` gives both
when the step does not), `timeout-minutes` and `continue-on-error`. Values
reach the step only as environment variables, never as script text.

A step fails when its script does, when its own timeout stops it, or when
a field cannot be evaluated or used (then its script does not run, and its
continue-on-error is not consulted). A failure its `continue-on-error`
lets pass is the step's outcome but not its conclusion: later steps and
the job carry on as if it had succeeded. Each step's $ROTA_OUTPUT (also
$GITHUB_OUTPUT) starts empty; what it writes there is `steps.<id>.outputs`
and, unless the job declares `outputs:`, the job's outputs (a later step's
key wins). A plain `run:` job is one step without a name.

A stopped job (cancelled, timed out, its lease lost, the worker shutting
down) runs no further step.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from typing import Callable, Optional

from server.expressions import EvaluationError, ExpressionError
from server.expressions.resolve import Budget
from server.models import ClaimStep, QueuedJob, StepOptions
from worker.daemon.job_setup import JobFiles, write_new, write_script
from worker.daemon.language import SKIPPED, JobLanguage, StepRecord, flag, minutes, resolve
from worker.daemon.outputs import ExpressionError as EnvError, OutputFileError, check_env_size, parse_output_file
from worker.daemon.reports import StepReporter
from worker.daemon.run_as import RunAs
from worker.daemon.runner import OutputSink, Runner, RunResult, Script, StepRun, describe_exit
from worker.daemon.shells import ShellError, extension, shell_command

_NO_OPTIONS = StepOptions()


class StepFailure(Exception):
    """A step that cannot run as written, or whose outputs cannot be read:
    why. `fatal`: no later step runs either."""

    def __init__(self, message: str, retryable: bool = True, fatal: bool = False):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.fatal = fatal


@dataclass
class _Failed:
    """The first failure the job ends with."""

    step: Optional[str]
    exit_code: Optional[int] = None
    stderr_tail: str = ""
    reason: Optional[str] = None
    retryable: bool = True
    fatal: bool = False


class JobSteps:
    """Runs one job's steps with its Runner and reports them."""

    def __init__(self, job: QueuedJob, runner: Runner, language: JobLanguage, files: JobFiles, root: str,
                 sink: OutputSink, environment: Callable[[dict[str, str]], dict[str, str]],
                 reporter: Optional[StepReporter] = None, run_as: Optional[RunAs] = None):
        """`environment`: the process environment of a step, given its env:
        (the job's, with the step's own over it)."""
        self._job = job
        self._runner = runner
        self._language = language
        self._files = files
        self._root = root
        self._sink = sink
        self._environment = environment
        self._reporter = reporter
        self._run_as = run_as
        self._written: dict[str, str] = {}  # the steps' outputs together
        self._output_used = False  # a step has run with $ROTA_OUTPUT

    async def run(self) -> RunResult:
        job = self._job
        steps: list[Optional[ClaimStep]] = list(job.steps) or [None]
        failed: Optional[_Failed] = None
        for index, step in enumerate(steps):
            if self._runner.stop_reason is not None:
                break
            options = job.step_options[index] if index < len(job.step_options) else _NO_OPTIONS
            failure = await self._step(index, step, options)
            if failure is not None and failed is None:
                failed = failure
            if failure is not None and failure.fatal:
                break
        result = RunResult(exit_code=0, stop_reason=self._runner.stop_reason)
        if failed is not None:
            result.exit_code = failed.exit_code
            result.failed_step, result.stderr_tail = failed.step, failed.stderr_tail
            result.reason, result.retryable = failed.reason, failed.retryable
        elif result.stop_reason is None:
            self._outputs(result)
        return result

    def _outputs(self, result: RunResult) -> None:
        if not self._job.outputs:
            result.outputs = self._written
            return
        try:
            result.outputs = self._language.declared_outputs(self._job.outputs)
        except EvaluationError as err:
            result.exit_code, result.retryable = None, False
            result.reason = f"cannot evaluate the job's outputs: {err.message}"

    async def _step(self, index: int, step: Optional[ClaimStep], options: StepOptions) -> Optional[_Failed]:
        """Runs (or skips) one step; the failure it ends with, if any."""
        language = self._language
        name = step.name if step is not None else None
        try:
            skipped = language.skips(options.if_)
        except (EvaluationError, ExpressionError) as err:
            return self._failed_before(index, name, options, StepFailure(f"cannot evaluate if: {err.message}"))
        if skipped is not None:
            if name is not None and self._reporter is not None:
                self._reporter.skipped(index, name, skipped)
            language.record(options.id, StepRecord(SKIPPED, SKIPPED))
            return None
        try:
            script, continue_on_error, name = self._prepare(index, step, options)
        except StepFailure as failure:
            return self._failed_before(index, name, options, failure)
        if name is not None and self._reporter is not None:
            self._reporter.started(index, name)
        if self._output_used:  # this step's outputs, and only them (the first finds it as the job's start made it)
            write_new(self._files.output, b"")
        self._output_used = True
        try:
            ran = await self._runner.run_step(script)
        except OSError as exc:
            return self._failed_before(index, name, options, _cannot_start(name, exc, script), marked=True)
        try:
            outputs = _read_outputs(self._files.output)
        except (OSError, OutputFileError) as exc:
            # what the job wrote cannot be read: nothing after it can be trusted to run
            failure = StepFailure(f"bad $ROTA_OUTPUT: {exc}", retryable=False, fatal=True)
            return self._failed_before(index, name, options, failure, marked=True)
        self._written.update(outputs)
        succeeded = ran.exit_code == 0 and not ran.timed_out
        outcome = "success" if succeeded else "failure"
        conclusion = "success" if succeeded or continue_on_error else "failure"
        language.record(options.id, StepRecord(outcome, conclusion, outputs))
        error = None if succeeded else self._describe(ran, script)
        if name is not None and self._reporter is not None:
            self._reporter.finished(index, name, ran.exit_code, error)
        if conclusion == "success":
            return None
        reason = f"timed out after {script.timeout_secs:g}s (its timeout-minutes)" if ran.timed_out else None
        return _Failed(name, ran.exit_code, ran.stderr_tail, reason)

    def _prepare(self, index: int, step: Optional[ClaimStep], options: StepOptions) -> tuple[Script, bool, Optional[str]]:
        """The step's fields evaluated: what it runs, its continue-on-error
        and its name. Raises StepFailure."""
        job, language = self._job, self._language
        defaults = job.defaults
        budget = Budget()  # one bound on work for all of the step's fields
        try:
            own = language.renderer(budget=budget)
            step_env = {key: own.text(value) for key, value in options.env.items()}
            for key, value in step_env.items():
                check_env_size(key, value)
            env = {**language.job_env, **step_env}
            renderer = language.renderer(env, budget)
            name = renderer.text(step.name)[:256] if step is not None else None
            continue_on_error = flag(resolve(renderer, options.continue_on_error), "continue-on-error")
            timeout = None
            if options.timeout_minutes is not None:
                timeout = minutes(resolve(renderer, options.timeout_minutes), "timeout-minutes")
            directory = options.working_directory or (defaults.working_directory if defaults else None)
            cwd = self._directory(renderer.text(directory)) if directory else None
        except (EvaluationError, ExpressionError) as err:
            raise StepFailure(f"cannot evaluate the step's fields: {err.message}") from None
        except EnvError as err:
            raise StepFailure(str(err), retryable=False) from None
        run = step.run if step is not None else job.command
        process_env = self._environment(env)
        shell = options.shell or (defaults.shell if defaults else None)
        argv = None
        if shell is not None:
            try:
                path = write_script(self._root, f"step-{index}{extension(shell)}", run, self._run_as)
                argv = shell_command(shell, path, process_env.get("PATH"))
            except ShellError as err:
                raise StepFailure(str(err), retryable=False) from None
            except OSError as exc:
                raise StepFailure(f"cannot write the step's script: {exc}") from None
        return Script(run, name, argv, cwd, process_env, timeout), continue_on_error, name

    def _directory(self, written: str) -> str:
        """`working-directory`, relative to the job's working directory and
        never outside it (a link out of it counts as outside)."""
        top = self._files.cwd
        path = os.path.normpath(os.path.join(top, written))
        real_top, real = os.path.realpath(top), os.path.realpath(path)
        if os.path.commonpath([real_top, real]) != real_top:
            raise StepFailure(f"working-directory {written!r} is outside the job's working directory", False)
        if not os.path.isdir(real):
            raise StepFailure(f"working-directory {written!r} is not a directory in the job's working directory"
                              " (rota makes none: create it in an earlier step)")
        return path

    def _describe(self, ran: StepRun, script: Script) -> str:
        """A failed step's error_message, as its report says it."""
        message = describe_exit(ran.exit_code)
        if ran.timed_out:
            message = f"timed out after {script.timeout_secs:g}s: {message}"
        elif self._runner.stop_reason is not None:
            message = f"stopped ({self._runner.stop_reason}): {message}"
        return f"{message}: {ran.stderr_tail}" if ran.stderr_tail else message

    def _failed_before(self, index: int, name: Optional[str], options: StepOptions, failure: StepFailure,
                       marked: bool = False) -> _Failed:
        """A step that failed without its script ending it: said in the
        job's log (after its marker) and its report."""
        if name is not None and not marked:
            self._sink.write("stdout", f"::step:: {name}\n")
        self._sink.write("stderr", f"rota: {failure.message}\n")
        if name is not None and self._reporter is not None:
            if not marked:
                self._reporter.started(index, name)
            self._reporter.finished(index, name, None, failure.message)
        self._language.record(options.id, StepRecord("failure", "failure"))
        return _Failed(name, reason=failure.message, retryable=failure.retryable, fatal=failure.fatal)


def _read_outputs(path: str) -> dict[str, str]:
    info = os.stat(path)
    if stat.S_ISREG(info.st_mode) and not info.st_size:
        return {}  # (most steps write no outputs: no need to open the file)
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse_output_file(f.read())


def _cannot_start(name: Optional[str], exc: OSError, script: Script) -> StepFailure:
    what = "the job" if name is None else "the step"
    if exc.errno == errno.E2BIG:
        # Each variable was checked; together they (and the script) are too much.
        size = sum(len(k.encode()) + len(v.encode()) + 2 for k, v in (script.env or {}).items())
        return StepFailure(f"cannot start {what}: its environment ({size} bytes) and script are more than the"
                           " system lets a process start with; read large outputs from the JSON file that"
                           " $ROTA_UPSTREAM_OUTPUTS names instead of through env:", retryable=False)
    return StepFailure(f"cannot start {what}: {exc}")
