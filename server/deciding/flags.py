"""What the scripts need to know of a job's language, as letters in its
static description (`m:<job>`, see _keys.lua), so the cascade stays in Lua:

  d  the job is decided before it runs (an if:, a matrix, expressions in a
     job-level field beyond the `${{ needs.<job>.outputs.<key> }}` a worker
     resolves itself, or a workflow env: with expressions)
  a  its if: calls a status function: it is decided, not skipped, when
     something upstream did not succeed or the run was cancelled
  x  a matrix job: decided into combinations, never claimed itself
  c  continue-on-error: true (its failure does not fail its run)
"""

from __future__ import annotations

from .. import models
from ..expressions import parse
from ..expressions.needs_outputs import EXPRESSION, NEEDS_OUTPUT

OPEN, CLOSE = "${{", "}}"


def decide_flags(job: models.JobSpec, dynamic_env: bool = False) -> str:
    flags = ""
    needs_deciding = (
        dynamic_env
        or job.if_ is not None
        or job.strategy is not None
        or job.labels_expr is not None
        or job.timeout_expr is not None
        or isinstance(job.continue_on_error, str)
        or "${{" in job.name
        or not all(legacy_only(value) for value in job.env.values())
    )
    if needs_deciding:
        flags += "d"
    if job.if_ is not None and parse(job.if_).calls_status_function():
        flags += "a"
    if job.strategy is not None:
        flags += "x"
    if job.continue_on_error is True:
        flags += "c"
    return flags


def legacy_only(value: str) -> bool:
    """Whether every expression in `value` is `${{ needs.<job>.outputs.<key> }}`,
    which a worker resolves itself (the jobs that have only these go
    straight to their queue, without being decided)."""
    if OPEN not in value:
        return True
    closed = value.rfind(CLOSE) + len(CLOSE) if CLOSE in value else 0
    if OPEN in value[closed:]:
        return False
    return all(NEEDS_OUTPUT.match(match.group(1)) for match in EXPRESSION.finditer(value, 0, closed))
