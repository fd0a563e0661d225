"""Collecting what is wrong with a document, each problem named by field path
and, where the document is YAML, by line and column."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Beyond this many problems a document is broken wholesale; listing more helps nobody.
MAX_PROBLEMS = 200

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


class Problems:
    def __init__(self) -> None:
        self.items: list[tuple[Where, str, Position | None]] = []
        self.count = 0

    def __bool__(self) -> bool:
        return self.count > 0

    @property
    def full(self) -> bool:
        return len(self.items) >= MAX_PROBLEMS

    def add(self, where: Where, message: str, position: Position | None = None) -> None:
        self.count += 1
        if not self.full:
            self.items.append((where, message, position))

    def error(self, positions: dict[Where, Position]) -> DefinitionError:
        problems = [
            problem(field(where), message, position or _position(where, positions))
            for where, message, position in self.items
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
    close = difflib.get_close_matches(word, list(candidates), n=1) if isinstance(word, str) else []
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
