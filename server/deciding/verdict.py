"""One job's verdict, once its needs have settled: skip it (its `if:` is
false), fail it (a value its expressions made is unusable), run it with its
fields rendered, or expand its matrix into combinations that run.

GitHub's rules: a condition without a status function is `success() &&
(condition)`; `needs`, `inputs` and `run` are what a job-level `if:` and
`strategy` read; `name`, `runs-on`, `env`, `timeout-minutes` and
`continue-on-error` read `matrix` and `strategy` besides. The workflow's
`env:` (when it holds expressions) reads `inputs` and `run`, and the job's
env wins over it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import msgspec

from .. import models
from ..expressions import EvaluationError, Status, parse, parse_template, to_string, truthy
from ..expressions.values import kind, to_number
from ..limits import (
    MAX_ENV_TOTAL_CHARS,
    MAX_ENV_VALUE_CHARS,
    MAX_EXPANSION_BYTES,
    MAX_LABELS,
    MAX_NAME_CHARS,
)
from .matrix import MatrixError, combination_ids, display_name, expand
from ..expressions.resolve import OPEN, Budget, Renderer

_LABEL_RE = re.compile(models.LABEL_PATTERN)
_MAX_MINUTES = 86_400 * 7 // 60
_encode = msgspec.json.encode


@dataclass(frozen=True)
class Skip:
    why: str


@dataclass(frozen=True)
class Fail:
    error: str


@dataclass(frozen=True)
class Run:
    decided: models.DecidedJob


@dataclass(frozen=True)
class Expand:
    fail_fast: bool
    max_parallel: int
    combinations: list[tuple[str, models.DecidedJob]] = field(default_factory=list)


Verdict = Union[Skip, Fail, Run, Expand]


class Unusable(ValueError):
    """A rendered value the job cannot have (a bad label, an env value too long)."""


def decide(spec: models.JobSpec, contexts: dict[str, Any], status: Status, *,
           workflow_env: Optional[dict[str, str]] = None, taken: frozenset[str] = frozenset(),
           upstream: str = "") -> Verdict:
    """`contexts`: needs, inputs and run; `status`: what the status
    functions answer; `workflow_env`: the workflow's env templates when
    they hold expressions; `taken`: the run's job ids (a matrix's
    combinations get others); `upstream`: why the job is skipped when it
    has no if: and something upstream did not succeed."""
    budget = Budget()
    try:
        condition = _condition(spec, contexts, status, budget)
        if condition is not None:
            return Skip(condition)
        if not spec.if_ and not status.success:
            return Skip(upstream or "the run was cancelled")
        if spec.strategy is not None:
            return _expand(spec, contexts, budget, workflow_env or {}, taken)
        return Run(_render(spec, contexts, budget, workflow_env or {}))
    except EvaluationError as err:
        return Fail(f"cannot evaluate the job's expressions: {err.message}")
    except (MatrixError, Unusable) as err:
        return Fail(str(err))


def _condition(spec: models.JobSpec, contexts: dict, status: Status, budget: Budget) -> Optional[str]:
    """Why the job is skipped, or None when its if: holds."""
    if not spec.if_:
        return None
    expr = parse(spec.if_)
    if not expr.calls_status_function() and not status.success:
        # `success() && (...)`: decided without evaluating the rest
        return f"if: {_shown(spec.if_)} is false (something upstream did not succeed)"
    if truthy(Renderer(contexts, budget, status).value(expr)):
        return None
    return f"if: {_shown(spec.if_)} is false"


def _expand(spec: models.JobSpec, contexts: dict, budget: Budget, workflow_env: dict[str, str],
            taken: frozenset[str]) -> Expand:
    strategy = spec.strategy
    assert strategy is not None
    renderer = Renderer(contexts, budget)
    combinations = expand(renderer.resolve(strategy.matrix))
    fail_fast = _flag(renderer.resolve(strategy.fail_fast), "fail-fast")
    total = len(combinations)
    max_parallel = total
    if strategy.max_parallel is not None:
        max_parallel = _positive_int(renderer.resolve(strategy.max_parallel), "max-parallel")
    ids = combination_ids(spec.id, combinations, taken)
    names_matrix = _reads_matrix(spec.name)
    out: list[tuple[str, models.DecidedJob]] = []
    size = 0
    for index, (job_id, combination) in enumerate(zip(ids, combinations)):
        strategy_context = {"fail-fast": fail_fast, "job-index": index, "job-total": total,
                            "max-parallel": min(max_parallel, total)}
        combo_contexts = {**contexts, "matrix": combination, "strategy": strategy_context}
        decided = _render(spec, combo_contexts, budget, workflow_env)
        if not names_matrix:
            decided.name = display_name(decided.name, combination)
        decided.matrix = combination
        decided.strategy = strategy_context
        decided.of = spec.id
        size += len(_encode(decided))
        if size > MAX_EXPANSION_BYTES:
            raise Unusable(f"the matrix's combinations, with their env, are more than {MAX_EXPANSION_BYTES}"
                           " bytes together")
        out.append((job_id, decided))
    return Expand(fail_fast, max_parallel, out)


def _render(spec: models.JobSpec, contexts: dict, budget: Budget, workflow_env: dict[str, str]) -> models.DecidedJob:
    renderer = Renderer(contexts, budget)
    name = renderer.text(spec.name)
    if len(name) > MAX_NAME_CHARS:
        name = name[:MAX_NAME_CHARS - 1] + "…"
    env: dict[str, str] = {}
    if workflow_env:
        # the workflow's env reads inputs and run only (checked at submit)
        env.update({key: renderer.text(value) for key, value in workflow_env.items()})
    env.update({key: renderer.text(value) for key, value in spec.env.items()})
    _check_env(env)
    timeout = spec.timeout_secs
    if spec.timeout_expr is not None:
        timeout = _minutes(renderer.resolve(spec.timeout_expr))
    return models.DecidedJob(
        name=name, labels=_labels(renderer, spec), env=env, timeout_secs=timeout,
        continue_on_error=_flag(renderer.resolve(spec.continue_on_error), "continue-on-error"))


def _labels(renderer: Renderer, spec: models.JobSpec) -> list[str]:
    if spec.labels_expr is None:
        return list(spec.labels)
    labels: set[str] = set()
    for item in spec.labels_expr:
        value = renderer.resolve(item)
        for label in value if isinstance(value, list) else [value]:
            if kind(label) not in ("String", "Number", "Boolean"):
                raise Unusable(f"runs-on: {_shown(item)} gave {kind(label).lower()} where a label belongs")
            text = to_string(label)
            if not _LABEL_RE.fullmatch(text):
                raise Unusable(f"runs-on: {_shown(item)} gave {_shown(text)}, which is not a label: use letters,"
                               " digits and _.:/=+- (no spaces or commas), at most 64 characters")
            labels.add(text)
    if len(labels) > MAX_LABELS:
        raise Unusable(f"runs-on gave {len(labels)} labels; at most {MAX_LABELS}")
    return sorted(labels)


def _check_env(env: dict[str, str]) -> None:
    total = 0
    for key, value in env.items():
        if len(value) > MAX_ENV_VALUE_CHARS:
            raise Unusable(f"env {key}: the rendered value is {len(value)} characters; at most"
                           f" {MAX_ENV_VALUE_CHARS} (read large values from $ROTA_UPSTREAM_OUTPUTS instead)")
        total += len(key) + len(value) + 2
    if total > MAX_ENV_TOTAL_CHARS:
        raise Unusable(f"the job's env, rendered, is {total} characters; at most {MAX_ENV_TOTAL_CHARS}")


def _flag(value: Any, what: str) -> bool:
    """A boolean field: true, false, their text, or null (false)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise Unusable(f"{what} must be true or false (got {_shown(_text_or_json(value))})")


def _positive_int(value: Any, what: str) -> int:
    number = to_number(value) if kind(value) in ("String", "Number") else math.nan
    if number != number or number < 1 or number != int(number) or number > 1_000_000:
        raise Unusable(f"{what} must be a whole number of at least 1 (got {_shown(_text_or_json(value))})")
    return int(number)


def _minutes(value: Any) -> int:
    number = to_number(value) if kind(value) in ("String", "Number") else math.nan
    if number != number or not 0 < number <= _MAX_MINUTES:
        raise Unusable(f"timeout-minutes must be a number of minutes above 0, at most {_MAX_MINUTES}"
                       f" (got {_shown(_text_or_json(value))})")
    return math.ceil(number * 60)


def _text_or_json(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return _encode(value).decode()
    return to_string(value)


def _reads_matrix(text: str) -> bool:
    if OPEN not in text:
        return False
    return any(ref[0] == "matrix" for ref in parse_template(text).contexts())


def _shown(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[:limit] + "...")
