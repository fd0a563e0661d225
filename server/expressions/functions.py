"""The functions an expression may call, with GitHub's argument counts and
behaviour. Each receives its argument nodes unevaluated, so format() and
join() evaluate only what they use, as GitHub's do."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .errors import EvaluationError
from .json_text import from_json, to_json
from .limits import MAX_FORMAT_ARGS, MAX_VALUE_CHARS
from .values import ARRAY, BOOLEAN, PRIMITIVES, equals, fold, kind, to_string

# name as documented -> (fewest, most) arguments; names match case-insensitively
SIGNATURES: dict[str, tuple[int, int]] = {
    "contains": (2, 2),
    "startsWith": (2, 2),
    "endsWith": (2, 2),
    "format": (1, MAX_FORMAT_ARGS),
    "join": (1, 2),
    "toJSON": (1, 1),
    "fromJSON": (1, 1),
    "case": (3, MAX_FORMAT_ARGS),  # and an odd number: pairs, then the default
    "success": (0, 0),
    "always": (0, 0),
    "cancelled": (0, 0),
    "failure": (0, 0),
}


class Evaluation(Protocol):
    status: Any

    def eval(self, node: Any) -> Any: ...

    def spend(self, units: int) -> None: ...


def _text(ev: Evaluation, value: Any) -> str:
    """A primitive's text, for a function that compares text ignoring case."""
    text = to_string(value)
    ev.spend(len(text))
    return fold(text)


def contains(ev: Evaluation, args: Sequence) -> bool:
    """An array: whether an element equals the item (loosely, as ==). A
    primitive: whether its text holds the item's, ignoring case."""
    search, item = ev.eval(args[0]), ev.eval(args[1])
    search_kind = kind(search)
    if search_kind == ARRAY:
        ev.spend(len(search))
        return any(equals(element, item) for element in search)
    if search_kind in PRIMITIVES and kind(item) in PRIMITIVES:
        return _text(ev, item) in _text(ev, search)
    return False


def starts_with(ev: Evaluation, args: Sequence) -> bool:
    text, prefix = ev.eval(args[0]), ev.eval(args[1])
    if kind(text) not in PRIMITIVES or kind(prefix) not in PRIMITIVES:
        return False
    return _text(ev, text).startswith(_text(ev, prefix))


def ends_with(ev: Evaluation, args: Sequence) -> bool:
    text, suffix = ev.eval(args[0]), ev.eval(args[1])
    if kind(text) not in PRIMITIVES or kind(suffix) not in PRIMITIVES:
        return False
    return _text(ev, text).endswith(_text(ev, suffix))


class _Output:
    """Text being built by format() or join(), refused past MAX_VALUE_CHARS
    before it is joined."""

    def __init__(self, ev: Evaluation, name: str) -> None:
        self.ev, self.name, self.parts, self.size = ev, name, [], 0

    def add(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_VALUE_CHARS:
            raise EvaluationError(f"{self.name}() result longer than {MAX_VALUE_CHARS} characters")
        self.ev.spend(len(text))
        self.parts.append(text)

    def text(self) -> str:
        return "".join(self.parts)


def format_(ev: Evaluation, args: Sequence) -> str:
    """`{N}` is argument N's text, `{{` and `}}` are braces; anything else
    with a brace, or an N with no argument, is an EvaluationError. Each
    argument is evaluated once, when first used."""
    template = to_string(ev.eval(args[0]))
    out = _Output(ev, "format")
    values: dict[int, str] = {}
    i, n = 0, len(template)
    while i < n:
        left, right = template.find("{", i), template.find("}", i)
        if left >= 0 and (right < 0 or left < right):
            if template.startswith("{{", left):
                out.add(template[i:left + 1])
                i = left + 2
                continue
            digits = left + 1
            while digits < n and "0" <= template[digits] <= "9":
                digits += 1
            # GitHub reads an index of 1 to 3 digits
            if not 0 < digits - left - 1 <= 3 or digits >= n or template[digits] not in "}:":
                raise _bad_format(template)
            if template[digits] == ":":
                raise EvaluationError(f"format() does not take format specifiers: {_shown(template)}")
            index = int(template[left + 1:digits])
            if index + 1 >= len(args):
                raise EvaluationError(
                    f"format() string refers to argument {{{index}}} but has {len(args) - 1}: {_shown(template)}")
            out.add(template[i:left])
            if index not in values:
                values[index] = to_string(ev.eval(args[index + 1]))
            out.add(values[index])
            i = digits + 1
        elif right >= 0:
            if not template.startswith("}}", right):
                raise _bad_format(template)
            out.add(template[i:right + 1])
            i = right + 2
        else:
            out.add(template[i:])
            break
    return out.text()


def _bad_format(template: str) -> EvaluationError:
    return EvaluationError(
        f"format() string is invalid (use {{0}} for an argument, {{{{ and }}}} for braces): {_shown(template)}")


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def join(ev: Evaluation, args: Sequence) -> str:
    """An array's elements' text joined by the separator (',' unless a
    primitive is given); a primitive's own text; '' for anything else."""
    items = ev.eval(args[0])
    items_kind = kind(items)
    if items_kind in PRIMITIVES:
        return to_string(items)
    if items_kind != ARRAY or not items:
        return ""
    separator = ","
    if len(items) > 1 and len(args) > 1:
        given = ev.eval(args[1])
        if kind(given) in PRIMITIVES:
            separator = to_string(given)
    out = _Output(ev, "join")
    for n, item in enumerate(items):
        if n:
            out.add(separator)
        out.add(to_string(item))
    return out.text()


def to_json_(ev: Evaluation, args: Sequence) -> str:
    return to_json(ev.eval(args[0]), ev.spend)


def from_json_(ev: Evaluation, args: Sequence) -> Any:
    return from_json(to_string(ev.eval(args[0])), ev.spend)


def case(ev: Evaluation, args: Sequence) -> Any:
    """case(pred1, value1, pred2, value2, ..., default): the value after the
    first predicate that is true, else the default. Predicates must be
    booleans (`1` or `'yes'` is an error, as in GitHub); each is evaluated
    only until one is true, and only the chosen value is evaluated."""
    for n in range(0, len(args) - 1, 2):
        predicate = ev.eval(args[n])
        if kind(predicate) != BOOLEAN:
            raise EvaluationError(f"case() predicate {n // 2 + 1} is a {kind(predicate).lower()}, not a boolean")
        if predicate:
            return ev.eval(args[n + 1])
    return ev.eval(args[-1])


def _status(name: str) -> Callable[[Evaluation, Sequence], bool]:
    def call(ev: Evaluation, args: Sequence) -> bool:
        if ev.status is None:
            raise EvaluationError(f"{name}() is not available here: status functions belong in if:")
        return True if name == "always" else bool(getattr(ev.status, name))
    return call


IMPLEMENTATIONS: dict[str, Callable[[Evaluation, Sequence], Any]] = {
    "contains": contains,
    "startsWith": starts_with,
    "endsWith": ends_with,
    "format": format_,
    "join": join,
    "toJSON": to_json_,
    "fromJSON": from_json_,
    "case": case,
    **{name: _status(name) for name in ("success", "always", "cancelled", "failure")},
}
