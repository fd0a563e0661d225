"""Collecting what is wrong with a document, each problem named by field path
and, where the document is YAML, by line and column."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable

# Beyond this many problems a document is broken wholesale; listing more helps nobody.
MAX_PROBLEMS = 200
# A "did you mean" compares the word with each candidate (difflib, a few
# microseconds each). Among more than this many (a job's 900 needs) no hint
# is offered, and a document's hints together compare at most MAX_PROBLEMS
# times this many names: a refusal costs milliseconds however it is built.
MAX_SUGGESTION_CANDIDATES = 256

Where = tuple[str | int, ...]  # ("jobs", "build", "steps", 1, "run")
Position = tuple[int, int]  # 1-based (line, column)


class DefinitionError(Exception):
    """A document that cannot become a WorkflowSpec, with every reason.

    `problems` holds `{"field", "message"}` dicts, plus `line` and `column`
    (1-based) where the document is YAML.
    """

    def __init__(self, problems: list[dict]) -> None:
        super().__init__(_summary(problems))
        self.problems = problems


class Positions(dict):
    """Where each key and item of a YAML document sits (Where -> Position),
    and for scalars, their text in the document, so that a problem at an
    offset inside a value (an expression's) can be given its own line and
    column."""

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self.text = text
        self.scalars: dict[Where, tuple[int, int, str]] = {}  # where -> (start, end, style)

    def inside(self, where: Where, value: str, offset: int) -> Position | None:
        """The position of value[offset], `value` being the scalar at `where`."""
        span = self.scalars.get(where)
        if span is None:
            return None
        index = _align(self.text, span, value, offset)
        if index is None:
            return None
        line_start = self.text.rfind("\n", 0, index) + 1
        return self.text.count("\n", 0, index) + 1, index - line_start + 1


def _align(text: str, span: tuple[int, int, str], value: str, offset: int) -> int | None:
    """The index in `text` of value[offset], walking the scalar's source
    and its value together: the source has what the value lacks (quotes,
    indentation, a block's header, escapes), so each value character is
    matched to the next source character that is it (a folded line break
    is a space). None when they do not line up; linear in the scalar."""
    start, end, style = span
    i = start
    if style in ("'", '"'):
        i += 1
    elif style in ("|", ">"):
        i = text.find("\n", start, end) + 1
        if i <= 0:
            return None
    for j in range(min(offset, len(value)) + 1):
        c = value[j] if j < len(value) else None
        if c is None:
            break
        while i < end and text[i] != c and not (c == " " and text[i] == "\n"):
            i += 1
        if i >= end:
            return None
        if j == offset:
            return i
        i += 1
    return None


class Problems:
    def __init__(self) -> None:
        self.items: list[tuple[Where, str, Position | None]] = []
        self.count = 0
        # (index in items, the value, the offset in it): positioned once the document's positions are known
        self.offsets: list[tuple[int, str, int]] = []
        self._comparisons_left = MAX_PROBLEMS * MAX_SUGGESTION_CANDIDATES

    def __bool__(self) -> bool:
        return self.count > 0

    @property
    def full(self) -> bool:
        return len(self.items) >= MAX_PROBLEMS

    def hint(self, word: object, candidates: Iterable[str]) -> str:
        """`suggest`, while the document's budget of comparisons lasts and
        the problem will be shown."""
        names = list(itertools.islice(candidates, MAX_SUGGESTION_CANDIDATES + 1))
        if self.full or len(names) > self._comparisons_left:
            return ""
        self._comparisons_left -= len(names)
        return suggest(word, names)

    def add(self, where: Where, message: str, position: Position | None = None) -> None:
        self.count += 1
        if not self.full:
            self.items.append((where, message, position))

    def add_inside(self, where: Where, message: str, value: str, offset: int) -> None:
        """A problem at `offset` in the text `value` of the field at `where`
        (an expression's): positioned there in a YAML document."""
        if not self.full:
            self.offsets.append((len(self.items), value, offset))
        self.add(where, message)

    def error(self, positions: dict[Where, Position]) -> DefinitionError:
        items = list(self.items)
        if isinstance(positions, Positions):
            for index, value, offset in self.offsets:
                where, message, _ = items[index]
                items[index] = (where, message, positions.inside(where, value, offset))
        problems = [
            problem(field(where), message, position or _position(where, positions))
            for where, message, position in items
        ]
        if self.count > len(self.items):
            hidden = self.count - len(self.items)
            problems.append(problem("document", f"{hidden} more problems not shown"))
        return DefinitionError(problems)


def _position(where: Where, positions: dict[Where, Position]) -> Position | None:
    """Where the field sits, or for a missing field, where the mapping that lacks it does."""
    while where and where not in positions:
        where = where[:-1]
    return positions.get(where)


def problem(field: str, message: str, position: Position | None = None) -> dict:
    found: dict = {"field": field, "message": message}
    if position is not None:
        found["line"], found["column"] = position
    return found


def field(where: Where) -> str:
    text = ""
    for part in where:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "document"


def _summary(problems: list[dict], shown: int = 5) -> str:
    parts = []
    for item in problems[:shown]:
        name = item["field"]
        if "line" in item:
            name += f" (line {item['line']}, column {item['column']})"
        parts.append(f"{name}: {item['message']}")
    if len(problems) > shown:
        parts.append(f"and {len(problems) - shown} more")
    lead = f"{len(problems)} problems: " if len(problems) > 1 else ""
    return lead + "; ".join(parts)


def suggest(word: object, candidates: Iterable[str]) -> str:
    names = list(itertools.islice(candidates, MAX_SUGGESTION_CANDIDATES + 1))
    if not isinstance(word, str) or len(names) > MAX_SUGGESTION_CANDIDATES:
        return ""
    close = difflib.get_close_matches(word, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def key_text(key: object) -> str:
    return key if isinstance(key, str) else str(key)


def got(value: object) -> str:
    """Why a boolean or number where text belongs, and the fix: an unquoted
    YAML `true`, `1.0` or `22.04` is not the string it looks like."""
    if isinstance(value, bool):
        return " (got a boolean; quote it)"
    if isinstance(value, (int, float)):
        return " (got a number; quote it)"
    return ""
