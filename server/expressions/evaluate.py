"""Evaluating a parsed expression against contexts of plain JSON values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import EvaluationError
from .functions import IMPLEMENTATIONS
from .limits import MAX_EVALUATION_COST
from .nodes import Call, Compare, Context, Expr, Index, Literal, Logical, Not, Star
from .values import ARRAY, OBJECT, PRIMITIVES, equals, fold, greater_than, kind, less_than, to_number, to_string, truthy

_MISSING = object()
_MAX_INDEX = 2**31 - 1  # GitHub indexes arrays with a 32-bit integer


@dataclass(frozen=True)
class Status:
    """What the status functions answer: success() (nothing before failed or
    was cancelled), failure() (something before failed), cancelled() (the
    run was cancelled). always() is always true."""
    success: bool = True
    failure: bool = False
    cancelled: bool = False


class FilteredArray(list):
    """What `*` gathers. A property or index applied to it applies to each
    element that has it (`jobs.*.result`), skipping those that do not."""


def evaluate(expr: Expr, contexts: Mapping[str, Any], status: Status | None = None) -> Any:
    """The value of `expr`: None, bool, int, float, str, list or dict. A
    context the expression names that is not in `contexts` is null (context
    names match ignoring case). The value may be part of `contexts` itself,
    not a copy. Raises EvaluationError, and nothing else for JSON contexts."""
    value = Evaluation(contexts, status).eval(expr)
    return list(value) if isinstance(value, FilteredArray) else value


class Evaluation:
    """One evaluation's contexts, status and cost so far. A template's
    expressions share one, so a template is bounded as one expression is."""

    def __init__(self, contexts: Mapping[str, Any], status: Status | None) -> None:
        self.contexts = contexts
        self.status = status
        self.cost = 0
        self._folded: dict[int, tuple[Mapping, dict[str, str]]] = {}

    def spend(self, units: int) -> None:
        self.cost += units
        if self.cost > MAX_EVALUATION_COST:
            raise EvaluationError(
                f"expression does too much work: over {MAX_EVALUATION_COST} characters made or compared"
                " and elements gathered")

    def eval(self, node: Expr) -> Any:
        return _EVALUATORS[type(node)](self, node)

    def lookup(self, mapping: Mapping, name: str) -> Any:
        """mapping[name], ignoring case when no key matches exactly (the first
        such key wins); _MISSING when none does."""
        if name in mapping:
            return mapping[name]
        entry = self._folded.get(id(mapping))
        if entry is None or entry[0] is not mapping:
            self.spend(len(mapping))
            keys = {fold(key): key for key in reversed(list(mapping)) if isinstance(key, str)}
            entry = self._folded[id(mapping)] = (mapping, keys)
        key = entry[1].get(fold(name))
        return _MISSING if key is None else mapping[key]


def _literal(ev: Evaluation, node: Literal) -> Any:
    return node.value


def _context(ev: Evaluation, node: Context) -> Any:
    value = ev.lookup(ev.contexts, node.name)
    return None if value is _MISSING else value


def _not(ev: Evaluation, node: Not) -> bool:
    return not truthy(ev.eval(node.operand))


_COMPARE = {
    "==": equals,
    "!=": lambda a, b: not equals(a, b),
    "<": less_than,
    ">": greater_than,
    "<=": lambda a, b: equals(a, b) or less_than(a, b),
    ">=": lambda a, b: equals(a, b) or greater_than(a, b),
}


def _compare(ev: Evaluation, node: Compare) -> Any:
    left = ev.eval(node.first)
    for op, operand in node.rest:
        right = ev.eval(operand)
        for side in (left, right):
            if isinstance(side, str):
                ev.spend(len(side))
        left = _COMPARE[op](left, right)
    return left


def _logical(ev: Evaluation, node: Logical) -> Any:
    """The first operand that decides (falsy for &&, truthy for ||), else the last."""
    stop = node.op == "||"
    for operand in node.operands:
        value = ev.eval(operand)
        if truthy(value) == stop:
            return value
    return value


def _call(ev: Evaluation, node: Call) -> Any:
    return IMPLEMENTATIONS[node.name](ev, node.args)


def _index(ev: Evaluation, node: Index) -> Any:
    target = ev.eval(node.target)
    star = isinstance(node.key, Star)
    key = None if star else ev.eval(node.key)
    if isinstance(target, FilteredArray):
        return _filtered(ev, target, star, key)
    target_kind = kind(target)
    if star:
        gathered = FilteredArray()
        if target_kind == OBJECT:
            gathered.extend(target.values())
        elif target_kind == ARRAY:
            gathered.extend(target)
        ev.spend(len(gathered))
        return gathered
    if target_kind == OBJECT:
        name = _name(key)
        value = _MISSING if name is None else ev.lookup(target, name)
        return None if value is _MISSING else value
    if target_kind == ARRAY:
        position = _position(key)
        return target[position] if position is not None and position < len(target) else None
    return None


def _filtered(ev: Evaluation, elements: FilteredArray, star: bool, key: Any) -> FilteredArray:
    name = None if star else _name(key)
    position = None if star else _position(key)
    gathered = FilteredArray()
    for element in elements:
        element_kind = kind(element)
        if element_kind == OBJECT:
            if star:
                gathered.extend(element.values())
            elif name is not None and (value := ev.lookup(element, name)) is not _MISSING:
                gathered.append(value)
        elif element_kind == ARRAY:
            if star:
                gathered.extend(element)
            elif position is not None and position < len(element):
                gathered.append(element[position])
    ev.spend(len(elements) + len(gathered))
    return gathered


def _name(key: Any) -> str | None:
    """An object's key for an index: a primitive's text (`a[1]` is a['1'])."""
    return to_string(key) if kind(key) in PRIMITIVES else None


def _position(key: Any) -> int | None:
    """An array's index: the key as a number, rounded down; none when it is
    negative, NaN or past 32 bits."""
    number = to_number(key)
    if number != number or number < 0 or number >= _MAX_INDEX + 1:
        return None
    return int(number)


_EVALUATORS = {
    Literal: _literal,
    Context: _context,
    Not: _not,
    Compare: _compare,
    Logical: _logical,
    Call: _call,
    Index: _index,
}
