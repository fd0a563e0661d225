"""Concurrency groups as a run starts: each `concurrency:` of its definition
rendered with the run's contexts, into the group specs the scripts keep
(server/lua/_control.lua).

A group is decided when its run starts, from what is known then: the run's
`inputs` and the `run` context without its number (given by the start
script itself). A job-level group reads the same; needs and matrix values
wait for job-level decisions (issue 16), which the definition check says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from .errors import Unprocessable
from .expressions import EvaluationError, ExpressionError, Template, parse_template, render, truthy
from .expressions import evaluate as evaluate_expression
from .limits import MAX_GROUP_CHARS
from .models import ConcurrencySpec, JobSpec

# What a group expression may read, and of `run` which properties: the run's
# number and attempt are not known before the start script gives them.
CONTEXTS = ("inputs", "run")
RUN_PROPERTIES = ("id", "workflow", "triggered_by", "tags")
# A per-run key (Strait's `concurrency_key`) without a workflow-level
# `concurrency:` to take the rest from: Strait's queues, one at a time, in order.
KEY_DEFAULTS = ConcurrencySpec(group="", queue="max", limit=1)


def run_contexts(run_id: str, workflow_id: str, triggered_by: str, inputs: Mapping[str, Any],
                 tags: Mapping[str, str]) -> dict[str, Any]:
    return {"inputs": dict(inputs),
            "run": {"id": run_id, "workflow": workflow_id, "triggered_by": triggered_by, "tags": dict(tags)}}


def _group_name(spec: ConcurrencySpec, contexts: Mapping[str, Any], field: str) -> str:
    try:
        name = render(parse_template(spec.group), contexts)
    except (ExpressionError, EvaluationError) as exc:
        raise Unprocessable("invalid_concurrency_group", f"{field}: {exc.message}", {"field": field}) from None
    name = name.strip()
    if len(name) > MAX_GROUP_CHARS:
        raise Unprocessable("invalid_concurrency_group",
                            f"{field} renders to {len(name)} characters; a group name has at most"
                            f" {MAX_GROUP_CHARS}", {"field": field})
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise Unprocessable("invalid_concurrency_group",
                            f"{field} renders to a name with a control character (a tab or a line break?)",
                            {"field": field})
    return name


def _cancel(spec: ConcurrencySpec, contexts: Mapping[str, Any], field: str) -> bool:
    value = spec.cancel_in_progress
    if isinstance(value, bool):
        return value
    try:
        template: Template = parse_template(value)
        only = template.only_expression
        if only is not None:
            return truthy(evaluate_expression(only, contexts))
        return render(template, contexts).strip().lower() == "true"
    except (ExpressionError, EvaluationError) as exc:
        raise Unprocessable("invalid_concurrency_group", f"{field}: {exc.message}", {"field": field}) from None


def group_spec(name: str, spec: ConcurrencySpec, cancel: bool) -> str:
    """What the scripts keep of a member's group: key (the name, case
    folded: GitHub's groups ignore case), limit, queue, cancel, the rate's
    window in ms (0: `limit` counts members at once), name."""
    return "\t".join((name.casefold(), str(spec.limit), "m" if spec.queue == "max" else "s",
                      "1" if cancel else "0", str((spec.per_secs or 0) * 1000), name))


def group_name(spec: Optional[str]) -> Optional[str]:
    """A group's name, from the spec the scripts keep (group_spec's)."""
    return spec.split("\t", 5)[5] if spec and spec.count("\t") >= 5 else None


def render_groups(workflow: Optional[ConcurrencySpec], jobs: Mapping[str, JobSpec], contexts: Mapping[str, Any],
                  key: Optional[str] = None) -> dict:
    """{"run": spec, "jobs": {job: spec}} for the start script; a group that
    renders empty is no group. `key`: a per-run group name (Strait's
    `concurrency_key`) standing for the workflow-level group's, with its
    settings (or KEY_DEFAULTS without one)."""
    out: dict = {}
    if key is not None:
        base = workflow or KEY_DEFAULTS
        cancel = _cancel(base, contexts, "concurrency.cancel-in-progress") if workflow else False
        out["run"] = group_spec(key, base, cancel)
    elif workflow is not None:
        name = _group_name(workflow, contexts, "concurrency.group")
        if name:
            out["run"] = group_spec(name, workflow, _cancel(workflow, contexts, "concurrency.cancel-in-progress"))
    grouped = {}
    for job_id, job in jobs.items():
        if job.concurrency is None:
            continue
        field = f"jobs.{job_id}.concurrency"
        name = _group_name(job.concurrency, contexts, field + ".group")
        if name:
            grouped[job_id] = group_spec(name, job.concurrency,
                                         _cancel(job.concurrency, contexts, field + ".cancel-in-progress"))
    if grouped:
        out["jobs"] = grouped
    return out


def has_groups(workflow: Optional[ConcurrencySpec], jobs: list[JobSpec]) -> bool:
    return workflow is not None or any(job.concurrency is not None for job in jobs)
