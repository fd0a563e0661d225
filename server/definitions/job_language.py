"""One job's expressions, each checked where it stands (see expressions.py
for which contexts each key reads), and the spec fields that hold them
filled from what was written: `if` without its `${{ }}`, `labels_expr`
for a runs-on with expressions, `timeout_expr`. A static matrix is
expanded here, so a matrix that cannot run is refused at submit."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Optional

from ..deciding.matrix import MatrixError, expand
from .expressions import (
    JOB_CONTEXTS,
    JOB_IF_CONTEXTS,
    OPEN,
    STEP_CONTEXTS,
    STRATEGY_CONTEXTS,
    Language,
    Scope,
)
from .graph import Job
from .problems import Problems, Where, field


def check_job(language: Language, job: Job, ids: Collection[str]) -> None:
    spec, wheres = job.spec, job.wheres
    prefix = field(job.where)

    def scope(key: str, contexts: tuple[str, ...], **more: Any) -> Scope:
        if "matrix" in contexts and not has_matrix:
            contexts = tuple(c for c in contexts if c != "matrix")
        return Scope(f"{prefix}.{key}", contexts, job=job, matrix_keys=matrix_keys, ids=ids, **more)

    has_matrix = "strategy" in spec
    matrix_keys: Optional[frozenset[str]] = None
    if "if" in spec:
        text = language.condition(spec["if"], wheres["if"], scope("if", JOB_IF_CONTEXTS, status=True))
        if text is None:
            del spec["if"]
        else:
            spec["if"] = text
    if has_matrix:
        matrix_keys = _strategy(language, spec["strategy"], wheres["strategy"], scope("strategy", STRATEGY_CONTEXTS))
    if "name" in spec and "name" in wheres:
        language.template(spec["name"], wheres["name"], scope("name", JOB_CONTEXTS))
    if "labels" in spec and any(OPEN in label for label in spec["labels"]):
        where = wheres["labels"]
        items = spec.pop("labels")
        for index, label in enumerate(items):
            item_where = where + (index,) if isinstance(job.raws.get("labels"), list) else where
            language.template(label, item_where, scope(where[-1], JOB_CONTEXTS))
        spec["labels_expr"] = items
    for name, value in spec.get("env", {}).items():
        language.template(value, wheres["env"] + (name,), scope("env", JOB_CONTEXTS))
    if isinstance(spec.get("timeout_secs"), str):
        value = spec.pop("timeout_secs")
        language.lone(value, wheres["timeout"], scope(wheres["timeout"][-1], JOB_CONTEXTS),
                      "must be a number of minutes")
        spec["timeout_expr"] = value
    if isinstance(spec.get("continue_on_error"), str):
        language.lone(spec["continue_on_error"], wheres["continue-on-error"],
                      scope("continue-on-error", JOB_CONTEXTS), "must be true or false")
    step_ids = [step["id"] for step in spec.get("steps", []) if step is not None and "id" in step]
    for name, value in spec.get("outputs", {}).items():
        language.template(value, wheres["outputs"] + (name,),
                          scope("outputs", STEP_CONTEXTS, steps=step_ids, step_where="one of the job's step ids"))
    if "steps" in spec:
        _steps(language, job, scope)
    elif "run" in wheres and "command" in spec:  # a gate (wait:) has no script
        language.script(spec["command"], wheres["run"])


def _steps(language: Language, job: Job, scope) -> None:
    seen: dict[str, int] = {}
    where = job.wheres["steps"]
    for index, step in enumerate(job.spec["steps"]):
        if step is None:  # a step with its own problem
            continue
        step_where = where + (index,)
        earlier = list(seen)
        step_scope = scope(f"steps[{index}]", STEP_CONTEXTS, steps=earlier,
                           step_where="one of the earlier steps' ids")
        if "id" in step:
            if step["id"] in seen:
                language.problems.add(step_where + ("id",), f"duplicate step id {step['id']!r}"
                                      f" (also steps[{seen[step['id']]}])")
            else:
                seen[step["id"]] = index
        if "if" in step:
            text = language.condition(step["if"], step_where + ("if",),
                                      _with(step_scope, ".if", status=True))
            if text is None:
                del step["if"]
            else:
                step["if"] = text
        if step["name"] is not None and step["name"] != _first_line(step["run"]):  # a name taken from the run is the run's to check
            language.template(step["name"], step_where + ("name",), _with(step_scope, ".name"))
        for name, value in step.get("env", {}).items():
            language.template(value, step_where + ("env", name), _with(step_scope, ".env"))
        for key, what in (("timeout-minutes", "must be a number of minutes"),
                          ("continue-on-error", "must be true or false")):
            if isinstance(step.get(key), str):
                language.lone(step[key], step_where + (key,), _with(step_scope, f".{key}"), what)
        if "working-directory" in step:
            language.template(step["working-directory"], step_where + ("working-directory",),
                              _with(step_scope, ".working-directory"))
        language.script(step["run"], step_where + ("run",))


def _first_line(run: str) -> str:
    return next((line.strip() for line in run.splitlines() if line.strip()), "")[:256]


def _with(scope: Scope, suffix: str, status: bool = False) -> Scope:
    return Scope(scope.field + suffix, scope.contexts, status, scope.job, scope.matrix_keys, scope.steps,
                 scope.step_where, scope.ids)


def _strategy(language: Language, strategy: dict, where: Where, scope: Scope) -> Optional[frozenset[str]]:
    """Checks a strategy's expressions; expands a static matrix. Returns the
    matrix's keys when they are known at submit."""
    for key in ("fail-fast", "max-parallel"):
        if isinstance(strategy.get(key), str):
            what = "must be true or false" if key == "fail-fast" else "must be a whole number"
            language.lone(strategy[key], where + (key,), scope, what)
    matrix = strategy.get("matrix")
    matrix_where = where + ("matrix",)
    if isinstance(matrix, str):
        language.lone(matrix, matrix_where, scope, "must be a mapping")
        return None
    if not isinstance(matrix, dict):
        return None
    templated = False
    for value, value_where in _strings(matrix, matrix_where):
        if OPEN in value:
            templated = True
            language.template(value, value_where, scope)
    if templated:
        include = matrix.get("include")
        if isinstance(include, str) or any(OPEN in v for v, _ in _strings(include, ())):
            return None  # include may add keys only known when it is evaluated
        keys = {k for k in matrix if k not in ("include", "exclude")}
        for entry in include if isinstance(include, list) else []:
            if isinstance(entry, dict):
                keys.update(k for k in entry if isinstance(k, str))
        return frozenset(keys)
    try:
        combinations = expand(matrix)
    except MatrixError as err:
        language.problems.add(matrix_where + err.where, err.message)
        return None
    return frozenset(key for combination in combinations for key in combination)


def _strings(value: object, where: Where):
    """Every string inside a value, with where it sits."""
    stack: list[tuple[object, Where]] = [(value, where)]
    while stack:
        item, item_where = stack.pop()
        if isinstance(item, str):
            yield item, item_where
        elif isinstance(item, list):
            stack.extend((x, item_where + (i,)) for i, x in enumerate(item))
        elif isinstance(item, dict):
            stack.extend((x, item_where + (str(k),)) for k, x in item.items())


def check_expressions(jobs: list[Job], problems: Problems, known: Collection[str] = (),
                      language: Optional[Language] = None) -> None:
    """Every expression of every job; `known`: ids of jobs already in the
    run (a spawn), besides `jobs`. Fills the spec fields that hold
    expressions (if, labels_expr, timeout_expr) from what was written."""
    language = language or Language(problems)
    ids = {job.id for job in jobs if job.id is not None} | set(known)
    for job in jobs:
        check_job(language, job, ids)
