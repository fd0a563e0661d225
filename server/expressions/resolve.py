"""Evaluating what a job's fields hold: text with `${{ }}` in it, or any
JSON value whose strings may hold it (a matrix, a runs-on list).

A string that is one expression and nothing else (but blanks) is that
expression's value, so `matrix: ${{ fromJSON(needs.plan.outputs.m) }}`
is an object and `continue-on-error: ${{ matrix.experimental }}` a
boolean; any other string with `${{ }}` in it is text, each expression put
in as text.

Every evaluation of one Budget shares one bound on work
(MAX_EVALUATION_COST, limits.py): a job's decision (however many fields
and matrix combinations it has), or one step's fields in the worker: the
values come from jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import EvaluationError, ExpressionError
from .evaluate import Evaluation, FilteredArray, Status
from .limits import MAX_VALUE_CHARS
from .needs_outputs import NEEDS_OUTPUT
from .nodes import Expr
from .parser import parse
from .template import parse_template
from .values import to_string

OPEN = "${{"


class Budget:
    """Work done so far by one decision's evaluations."""

    def __init__(self) -> None:
        self.cost = 0


class Renderer:
    """Evaluates against one set of contexts, spending from a shared Budget."""

    def __init__(self, contexts: Mapping[str, Any], budget: Budget, status: Status | None = None) -> None:
        self.contexts = contexts
        self.budget = budget
        self.status = status

    def _evaluation(self) -> Evaluation:
        ev = Evaluation(self.contexts, self.status)
        ev.cost = self.budget.cost
        return ev

    def value(self, expr: Expr) -> Any:
        ev = self._evaluation()
        try:
            result = ev.eval(expr)
        finally:
            self.budget.cost = ev.cost
        return list(result) if isinstance(result, FilteredArray) else result

    def condition(self, text: str) -> Any:
        """An `if:`'s expression text (stored without `${{ }}`)."""
        return self.value(_parse(parse, text))

    def text(self, text: str) -> str:
        """`text` with each expression's value put in as text."""
        if OPEN not in text:
            return text
        template = _parse(parse_template, text)
        ev = self._evaluation()
        out: list[str] = []
        size = 0
        try:
            for part in template.parts:
                if isinstance(part, str):
                    piece = part
                else:
                    legacy = self._legacy(text, part)
                    piece = legacy if legacy is not None else to_string(ev.eval(part.expr))
                size += len(piece)
                if size > MAX_VALUE_CHARS:
                    raise EvaluationError(f"rendered text longer than {MAX_VALUE_CHARS} characters")
                ev.spend(len(piece))
                out.append(piece)
        finally:
            self.budget.cost = ev.cost
        return "".join(out)

    def _legacy(self, text: str, piece) -> str | None:
        """`${{ needs.<job>.outputs.<key> }}` read as a worker reads it, so a
        job id with dots (needs.a.b.outputs.k) means what it always did."""
        ref = NEEDS_OUTPUT.match(text[piece.start + len(OPEN):piece.end - 2])
        if ref is None:
            return None
        needs = self.contexts.get("needs") or {}
        need = needs.get(ref["job"]) if isinstance(needs, Mapping) else None
        outputs = need.get("outputs") if isinstance(need, Mapping) else None
        value = outputs.get(ref["key"]) if isinstance(outputs, Mapping) else None
        return value if isinstance(value, str) else ""

    def resolve(self, value: Any) -> Any:
        """`value` with every string that holds `${{ }}` evaluated: a lone
        expression to its value, anything else to text."""
        if isinstance(value, str):
            if OPEN not in value:
                return value
            only = _parse(parse_template, value).only_expression
            return self.value(only) if only is not None else self.text(value)
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        return value


def _parse(parser, text: str):
    try:
        return parser(text)
    except ExpressionError as err:
        # Checked when the document was submitted; a definition stored by an
        # older version may still hold one that no longer parses.
        raise EvaluationError(f"expression does not parse: {err.message}") from None


def has_expressions(value: Any) -> bool:
    if isinstance(value, str):
        return OPEN in value
    if isinstance(value, list):
        return any(has_expressions(item) for item in value)
    if isinstance(value, dict):
        return any(has_expressions(item) for item in value.values())
    return False
