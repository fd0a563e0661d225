"""The workflow language in the worker: a job's step fields and declared
outputs, evaluated with the one expression package (server/expressions)
over the contexts the claim carries (docs/http-api.md, "The claim and the
workflow language") and the steps context the job builds as it runs.

What each field may read was checked when the workflow was submitted; here
the values are the job's: an expression that cannot be evaluated (a
fromJSON of text that is not JSON, a value too large) is an EvaluationError,
and the step it belongs to fails. Each step's fields together, and the
job's declared outputs together, are bounded as one decision is
(MAX_EVALUATION_COST): the values come from jobs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import msgspec

from server.expressions import EvaluationError, Status, parse, to_string, truthy
from server.expressions.resolve import Budget, Renderer
from server.expressions.values import kind, to_number
from server.models import QueuedJob

# A step's timeout-minutes, as a job's: above 0, at most a week.
MAX_STEP_MINUTES = 10_080
# The steps context's outcome and conclusion of a step that did not run.
SKIPPED = "skipped"


@dataclass
class StepRecord:
    """What `steps.<id>` says of a step once it is done."""

    outcome: str  # success, failure or skipped, before continue-on-error
    conclusion: str  # after it: a failure it let pass is success
    outputs: dict[str, str] = field(default_factory=dict)


class JobLanguage:
    """One job's contexts and what its steps have done so far."""

    def __init__(self, job: QueuedJob, env: dict[str, str]):
        """`env`: the job's env as the job gets it (rendered or resolved)."""
        if job.contexts is not None:
            base = msgspec.to_builtins(job.contexts)
        else:  # a server from before the workflow language: what it told the worker
            base = {"needs": {need: {"result": "success", "outputs": outputs}
                              for need, outputs in job.upstream_outputs.items()},
                    "inputs": dict(job.inputs), "matrix": None}
        base["env"] = env
        self._base = base
        self.job_env = env
        self.records: list[StepRecord] = []
        self.steps: dict[str, dict[str, Any]] = {}  # the steps context: steps with an id

    def status(self) -> Status:
        """The status functions in a step's `if:`: failure() once an earlier
        step failed (its conclusion), success() until then. A stopped job
        (cancelled, timed out) runs no further step, so cancelled() is false."""
        failed = any(record.conclusion == "failure" for record in self.records)
        return Status(success=not failed, failure=failed)

    def renderer(self, env: Optional[dict[str, str]] = None, budget: Optional[Budget] = None) -> Renderer:
        """Evaluates over the job's contexts, `env` (the job's, or with a
        step's own over it) and the steps so far, spending from `budget`
        (one step's fields share one; a fresh one by default)."""
        contexts = {**self._base, "env": self.job_env if env is None else env, "steps": self.steps}
        return Renderer(contexts, budget or Budget(), self.status())

    def skips(self, condition: Optional[str]) -> Optional[str]:
        """Why a step with this `if:` (its text, without `${{ }}`) is
        skipped, or None when it runs: GitHub's implicit `success() &&`
        unless the condition calls a status function."""
        status = self.status()
        if condition is None or not parse(condition).calls_status_function():
            if not status.success:
                return "an earlier step failed"
            if condition is None:
                return None
        if truthy(self.renderer().value(parse(condition))):
            return None
        return f"if: {shown(condition)} is false"

    def record(self, step_id: Optional[str], record: StepRecord) -> None:
        self.records.append(record)
        if step_id is not None:
            self.steps[step_id] = {"outputs": record.outputs, "outcome": record.outcome,
                                   "conclusion": record.conclusion}

    def declared_outputs(self, declarations: dict[str, str]) -> dict[str, str]:
        """The job's `outputs:`, each rendered as text over the job's contexts
        and its steps: what its dependents read."""
        renderer = self.renderer()
        return {name: renderer.text(template) for name, template in declarations.items()}


def flag(value: Any, what: str) -> bool:
    """continue-on-error: true, false, their text, or null (false)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise EvaluationError(f"{what} must be true or false (got {shown(value)})")


def minutes(value: Any, what: str) -> float:
    """timeout-minutes as seconds."""
    number = to_number(value) if kind(value) in ("String", "Number") else math.nan
    if number != number or not 0 < number <= MAX_STEP_MINUTES:
        raise EvaluationError(f"{what} must be a number of minutes above 0, at most {MAX_STEP_MINUTES}"
                              f" (got {shown(value)})")
    return number * 60


def resolve(renderer: Renderer, value: Union[str, float, bool, None]) -> Any:
    """A field that is a plain value, or text holding `${{ }}`."""
    return renderer.resolve(value) if isinstance(value, str) else value


def shown(value: Any, limit: int = 80) -> str:
    text = msgspec.json.encode(value).decode() if isinstance(value, (list, dict)) else to_string(value)
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")
