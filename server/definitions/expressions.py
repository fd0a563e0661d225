"""`${{ }}` expressions, checked at submit where each may appear.

Every expression in a document is parsed with the one parser
(server/expressions) and checked against the contexts GitHub allows in
that key ("Context availability"), adapted to what rota has:

  run-name, the workflow's env          inputs, run
  a job's if (+ status functions),
  strategy (matrix, fail-fast, ...)     needs, inputs, run
  a job's name, runs-on, env,
  timeout-minutes, continue-on-error    needs, inputs, run, matrix, strategy
  a job's outputs                       ... and env, steps
  a step's if (+ status functions),
  name, env, timeout-minutes,
  working-directory, continue-on-error  ... and env, steps (earlier steps)

`needs.X` must be a direct need, `matrix.k` a key of the job's matrix (when
its keys are known at submit), `steps.X` an earlier step's id; `github`,
`secrets` and `vars` are refused with what rota has instead. A script
(`run:`) never has expressions expanded into it. Every problem is placed at
its expression in a YAML document (line and column), and the expression
text a document may hold is bounded before anything is parsed.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Optional

from ..expressions import Expr, ExpressionError, parse, parse_template
from ..expressions.needs_outputs import EXPRESSION, NEEDS_OUTPUT
from ..expressions.nodes import Call, Context, Index, Literal, STATUS_FUNCTIONS
from ..expressions.template import expression_end
from ..limits import EXPRESSION_CHARS_FLOOR, MAX_DOCUMENT_EXPRESSION_CHARS
from .graph import Job
from .problems import Problems, Where

__all__ = ["EXPRESSION", "NEEDS_OUTPUT", "Language", "Scope"]

OPEN, CLOSE = "${{", "}}"
SCRIPT_FIX = "expressions are never expanded into a script; put it in env: and use $VAR"
_SHOWN = 80  # characters of an expression quoted in a message
_SHOWN_NEEDS = 10  # needs listed in a message

WORKFLOW_CONTEXTS = ("inputs", "run")
JOB_IF_CONTEXTS = ("needs", "inputs", "run")
STRATEGY_CONTEXTS = JOB_IF_CONTEXTS
JOB_CONTEXTS = ("needs", "inputs", "run", "matrix", "strategy")
STEP_CONTEXTS = JOB_CONTEXTS + ("env", "steps")

RUN_PROPERTIES = ("id", "number", "workflow", "triggered_by", "tags", "attempt")
STRATEGY_PROPERTIES = ("fail-fast", "job-index", "job-total", "max-parallel")
NEED_PROPERTIES = ("result", "outputs")
STEP_PROPERTIES = ("outputs", "outcome", "conclusion")
ALL_CONTEXTS = ("needs", "inputs", "matrix", "strategy", "env", "steps", "run")

# GitHub's contexts rota has no equivalent of, with where rota keeps the like
_FOREIGN = {
    "github": "rota has no github context: the run context has the run's id, number, workflow, triggered_by"
              " and tags (run.number), a commit or ref can be a run input (inputs.<name>), and a job sees"
              " $ROTA_WORKFLOW_ID, $ROTA_RUN_ID and $ROTA_JOB_ID",
    "secrets": "rota keeps no secrets: give the worker the secret in its environment, which jobs inherit,"
               " and use $NAME in run:",
    "vars": "rota has no configuration variables: use a run input (inputs.<name>), or the worker's"
            " environment ($NAME in run:)",
    "job": "a job sees $ROTA_JOB_ID and $ROTA_ATTEMPT in its environment",
    "jobs": "a dependent job reads outputs as ${{ needs.<job>.outputs.<key> }}",
    "runner": "a job runs in its worker's environment: use its variables in run:",
}
_WHY_NOT = {
    "matrix": "the job has no strategy.matrix",
    "steps": "only a step's fields and a job's outputs read steps",
    "env": "the env context is for steps and a job's outputs",
    "needs": "the workflow's keys are evaluated before any job",
    "strategy": "the workflow's keys are evaluated before any job",
}


@dataclass
class Scope:
    """What an expression at one place may read."""
    field: str  # as messages name it: "jobs.build.if"
    contexts: tuple[str, ...]
    status: bool = False  # status functions allowed (an if:)
    job: Optional[Job] = None
    matrix_keys: Optional[frozenset[str]] = None  # None: not known at submit
    steps: Collection[str] = ()  # step ids it may read
    step_where: str = ""  # "one of the earlier steps' ids": for the steps message
    ids: Collection[str] = ()  # every job id there is (a spawn's run's too)


class Language:
    """The checks of one document's expressions, sharing its bound."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.chars = 0
        self.over = False

    # ---- the bound --------------------------------------------------------

    def _charge(self, where: Where, spans: Iterable[int]) -> bool:
        if self.over:
            return False
        self.chars += sum(max(EXPRESSION_CHARS_FLOOR, n) for n in spans)
        if self.chars > MAX_DOCUMENT_EXPRESSION_CHARS:
            self.over = True
            self.problems.add(where, f"the document's expressions are more than {MAX_DOCUMENT_EXPRESSION_CHARS}"
                              f" characters (each counting at least {EXPRESSION_CHARS_FLOOR}); the limit for"
                              " one document: the rest were not checked")
            return False
        return True

    # ---- the three forms a value takes -----------------------------------------

    def template(self, value: str, where: Where, scope: Scope) -> Optional[Any]:
        """Text with `${{ }}` in it (an env value, a name). Returns the
        parsed template, or None (no expressions, or a problem said)."""
        if OPEN not in value:
            return None
        if not self._charge(where, _spans(value)):
            return None
        try:
            template = parse_template(value)
        except ExpressionError as err:
            self._syntax(err, value, where)
            return None
        for piece in template.pieces:
            ref = NEEDS_OUTPUT.match(value[piece.start + len(OPEN):piece.end - len(CLOSE)])
            if ref is not None and scope.job is not None:
                # `${{ needs.<job>.outputs.<key> }}` as a worker reads it: the
                # job id may hold dots (needs.a.b.outputs.k is job a.b's)
                if scope.job.needs_valid and ref["job"] not in scope.job.needs:
                    self.problems.add_inside(where, _not_a_need(ref["job"], scope.job, scope.ids, self.problems), value,
                                             piece.start)
                continue
            self._check(piece.expr, value, where, scope)
        return template

    def lone(self, value: object, where: Where, scope: Scope, what: str) -> Optional[Expr]:
        """A value that is a plain value or one `${{ }}` and nothing else
        (continue-on-error, timeout-minutes, a dynamic matrix). Returns the
        expression, or None (a plain value, or a problem said)."""
        if not isinstance(value, str) or OPEN not in value:
            return None
        template = self.template(value, where, scope)
        if template is None:
            return None
        expr = template.only_expression
        if expr is None:
            self.problems.add(where, f"{what}, or one ${{{{ }}}} expression with nothing around it")
        return expr

    def condition(self, value: str, where: Where, scope: Scope) -> Optional[str]:
        """An `if:`: an expression with or without `${{ }}` around it.
        Returns the expression's text (without `${{ }}`), or None."""
        if OPEN in value:
            template = self.template(value, where, scope)
            if template is None:
                return None
            pieces = template.pieces
            if template.only_expression is None:
                self.problems.add_inside(where, "write the whole condition inside one ${{ }}, or without it:"
                                         " text outside ${{ }} makes the condition a string, which is"
                                         " always true", value, pieces[0].start if pieces else 0)
                return None
            return value[pieces[0].start + len(OPEN):pieces[0].end - len(CLOSE)]
        if not self._charge(where, [len(value)]):
            return None
        try:
            expr = parse(value)
        except ExpressionError as err:
            self._syntax(err, value, where)
            return None
        self._check(expr, value, where, scope)
        return value

    def script(self, value: str, where: Where) -> None:
        start = value.find(OPEN)
        if start < 0:
            return
        end = value.find(CLOSE, start)
        text = value[start:] if end < 0 else value[start:end + len(CLOSE)]
        message = f"{_shown(text)} is not expanded in a script: {SCRIPT_FIX}"
        ref = NEEDS_OUTPUT.match(text[len(OPEN):-len(CLOSE)]) if end >= 0 else None
        if ref is not None:
            variable = re.sub(r"\W", "_", ref["key"]).upper()
            if variable[0].isdigit():
                variable = "_" + variable
            expression = f"${{{{ needs.{ref['job']}.outputs.{ref['key']} }}}}"
            message += f" (env: {{{variable}: '{expression}'}}, then \"${variable}\" in the script)"
        self.problems.add_inside(where, message, value, start)

    def plain(self, value: str, where: Where, what: str) -> None:
        """A field that takes no expressions."""
        start = value.find(OPEN)
        if start >= 0:
            self.problems.add_inside(where, f"{what} takes no expressions", value, start)

    # ---- checking one expression ---------------------------------------------------

    def _syntax(self, err: ExpressionError, value: str, where: Where) -> None:
        message = err.message if OPEN in err.message else f"{err.message} in {_shown(_around(value, err.offset))}"
        self.problems.add_inside(where, message, value, err.offset)

    def _check(self, expr: Expr, value: str, where: Where, scope: Scope) -> None:
        said: set[str] = set()

        def say(message: str, offset: int) -> None:
            if message not in said:
                said.add(message)
                self.problems.add_inside(where, message, value, offset)

        if not scope.status:
            for node in expr.walk():
                if isinstance(node, Call) and node.name in STATUS_FUNCTIONS:
                    say(f"{node.name}() is a status function: it belongs in if: only", node.offset)
        for path, offset in _paths(expr):
            message = self._path_problem(path, scope)
            if message is not None:
                say(message, offset)

    def _path_problem(self, path: list[str], scope: Scope) -> Optional[str]:
        context = path[0]
        if context not in scope.contexts:
            if context in _FOREIGN:
                return f"unknown context {context!r}: {_FOREIGN[context]}"
            if context not in ALL_CONTEXTS:
                return (f"unknown context {context!r}{self.problems.hint(context, ALL_CONTEXTS)}: the contexts are"
                        f" {', '.join(ALL_CONTEXTS)}")
            why = _WHY_NOT.get(context, "")
            if context == "matrix" and scope.job is not None and "strategy" in scope.job.spec \
                    and scope.field.endswith((".if", ".strategy")):
                why = "a job's if: and strategy are evaluated before its matrix expands"
            return (f"{context} is not available in {scope.field}" + (f" ({why})" if why else "")
                    + f": it may use {', '.join(scope.contexts)}")
        if len(path) < 2:
            return None
        prop = path[1]
        if context == "needs":
            return self._need(path, scope)
        if context == "run" and prop.lower() not in RUN_PROPERTIES:
            return f"run has no {prop!r}: it has {', '.join(RUN_PROPERTIES)}" + self.problems.hint(prop, RUN_PROPERTIES)
        if context == "strategy" and prop.lower() not in STRATEGY_PROPERTIES:
            return (f"strategy has no {prop!r}: it has {', '.join(STRATEGY_PROPERTIES)}"
                    + self.problems.hint(prop, STRATEGY_PROPERTIES))
        if context == "matrix" and scope.matrix_keys is not None \
                and prop.lower() not in {key.lower() for key in scope.matrix_keys}:
            keys = sorted(scope.matrix_keys)
            return f"the matrix has no key {prop!r}: its keys are {', '.join(keys)}" + self.problems.hint(prop, keys)
        if context == "steps":
            if prop.lower() not in {step.lower() for step in scope.steps}:
                if scope.steps:
                    listed = ", ".join(list(scope.steps)[:_SHOWN_NEEDS])
                    return f"steps.{prop} is not {scope.step_where} ({listed})" + self.problems.hint(prop, scope.steps)
                return f"steps.{prop}: there is no step with an id {scope.step_where.replace('one of ', 'among ')}"
            if len(path) > 2 and path[2].lower() not in STEP_PROPERTIES:
                return f"steps.{prop} has no {path[2]!r}: it has {', '.join(STEP_PROPERTIES)}"
        return None

    def _need(self, path: list[str], scope: Scope) -> Optional[str]:
        job = scope.job
        need = path[1]
        if job is None:
            return None
        lowered = {n.lower() for n in job.needs}
        if job.needs_valid and need not in job.needs and need.lower() not in lowered:
            dotted = next((".".join(path[1:i]) for i in range(3, len(path) + 1)
                           if ".".join(path[1:i]) in job.needs), None)
            if dotted is not None:
                return (f"job id {dotted!r} has dots, which an expression reads as properties: write"
                        f" needs['{dotted}']")
            return _not_a_need(need, job, scope.ids, self.problems)
        if len(path) > 2 and path[2].lower() not in NEED_PROPERTIES:
            return (f"needs.{need} has no {path[2]!r}: it has result and outputs"
                    + self.problems.hint(path[2], NEED_PROPERTIES))
        return None


def _paths(expr: Expr) -> Iterator[tuple[list[str], int]]:
    """Each context an expression reads, with the properties named after it
    while they are literal (`needs.build.outputs.v` -> [needs, build,
    outputs, v]; `needs[x]` -> [needs]), and where its context stands."""
    chains: dict[int, tuple[list[str], int]] = {}
    stack: list[Expr] = [expr]
    covered: set[int] = set()
    while stack:
        node = stack.pop()
        chain = _chain(node)
        if chain is not None and id(node) not in covered:
            path, offset, inner = chain
            covered.update(inner)
            chains[id(node)] = (path, offset)
        stack.extend(node.children())
    yield from sorted(chains.values(), key=lambda chain: chain[1])


def _chain(node: Expr) -> Optional[tuple[list[str], int, list[int]]]:
    """(path, offset of its context, the ids of the nodes it covers) for a
    context with literal properties, else None."""
    keys: list[str] = []
    inner: list[int] = []
    while isinstance(node, Index):
        key = node.key
        if isinstance(key, Literal) and isinstance(key.value, str):
            keys.append(key.value)
        else:
            keys = []  # `a[x].b`: what follows a computed key is not checked
        inner.append(id(node.target))
        node = node.target
    if not isinstance(node, Context):
        return None
    return [node.name] + keys[::-1], node.offset, inner


def _not_a_need(need: str, job: Job, ids: Collection[str], problems: Problems) -> str:
    who = f"job {job.id!r}" if job.id is not None else "this job"
    listed = job.needs[:_SHOWN_NEEDS]
    if len(job.needs) > len(listed):
        listed = listed + [f"and {len(job.needs) - len(listed)} more"]
    needs = f"needs [{', '.join(listed)}]" if job.needs else "needs no job"
    message = f"{who} {needs}; needs.{need} is not one of them"
    if need == job.id:
        return message + " (a job cannot read its own outputs)"
    if need in ids:
        where_to = "needs:" if job.needs_key == "needs" else job.needs_key
        return message + f" (add {need} to {where_to} to read its outputs)"
    return message + problems.hint(need, job.needs)


def _spans(value: str) -> list[int]:
    """The length of each `${{ ... }}` in `value`, quoted `}}` skipped as
    the template parser skips them; an unclosed one runs to the end."""
    spans = []
    i = 0
    while (start := value.find(OPEN, i)) >= 0:
        close = expression_end(value, start + len(OPEN))
        end = len(value) if close < 0 else close + len(CLOSE)
        spans.append(end - start)
        i = end
    return spans



def _around(value: str, offset: int) -> str:
    """The expression an offset falls in, for a message: its `${{ ... }}`
    when it has one, else the text."""
    start = value.rfind(OPEN, 0, offset + 1)
    if start < 0:
        return value
    end = value.find(CLOSE, offset)
    return value[start:] if end < 0 else value[start:end + len(CLOSE)]


def _shown(text: str) -> str:
    """The expression quoted on one line, whitespace runs as one space, cut to _SHOWN characters."""
    text = " ".join(text[: _SHOWN * 4].split())
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")
