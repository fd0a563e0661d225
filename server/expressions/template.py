"""Text with `${{ expression }}` parts, as a workflow value holds them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import EvaluationError, ExpressionError
from .evaluate import Evaluation, Status
from .limits import MAX_VALUE_CHARS
from .nodes import Expr
from .parser import parse
from .values import to_string

OPEN, CLOSE = "${{", "}}"


@dataclass(frozen=True, slots=True)
class Piece:
    """One `${{ ... }}`: `start` is the offset of its `${{`, `end` just past
    its `}}`; the expression's own offsets count from the template's start."""
    expr: Expr
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Template:
    text: str
    parts: tuple[str | Piece, ...]  # literal text and pieces, in order; no empty text

    @property
    def pieces(self) -> tuple[Piece, ...]:
        return tuple(part for part in self.parts if isinstance(part, Piece))

    @property
    def expressions(self) -> tuple[Expr, ...]:
        return tuple(piece.expr for piece in self.pieces)

    @property
    def is_literal(self) -> bool:
        """No expressions: the text is the value."""
        return not self.pieces

    @property
    def only_expression(self) -> Expr | None:
        """The expression, when the text is one `${{ }}` and nothing else
        (but blanks): a caller may then want its value, not its text."""
        pieces = self.pieces
        if len(pieces) != 1:
            return None
        if any(isinstance(part, str) and part.strip() for part in self.parts):
            return None
        return pieces[0].expr

    def contexts(self) -> set[tuple[str, str | None]]:
        return {ref for expr in self.expressions for ref in expr.contexts()}

    def calls_status_function(self) -> bool:
        return any(expr.calls_status_function() for expr in self.expressions)


def parse_template(text: str) -> Template:
    """Split `text` into literal text and `${{ }}` expressions, each parsed.
    A `}}` inside a quoted string does not close an expression, so
    `${{ '${{' }}` is a literal `${{`. Raises ExpressionError for a `${{`
    never closed, an empty `${{ }}`, or an expression that does not parse,
    with the offset in `text`."""
    if not isinstance(text, str):
        raise TypeError("a template is text")
    parts: list[str | Piece] = []
    i = 0
    while (start := text.find(OPEN, i)) >= 0:
        if start > i:
            parts.append(text[i:start])
        inner = start + len(OPEN)
        close = expression_end(text, inner)
        if close < 0:
            raise ExpressionError(f"unclosed '{OPEN}': no '{CLOSE}' after it", start)
        if not text[inner:close].strip():
            raise ExpressionError(f"empty expression '{text[start:close + len(CLOSE)]}'", start)
        parts.append(Piece(parse(text, inner, close), start, close + len(CLOSE)))
        i = close + len(CLOSE)
    if i < len(text):
        parts.append(text[i:])
    return Template(text, tuple(parts))


def expression_end(text: str, i: int) -> int:
    """Offset of the `}}` that ends an expression starting at i, skipping
    quoted strings (`''` inside one closes and reopens it, which skips the
    same text); -1 if there is none. In a string never closed, the first
    `}}` ends the expression, so the parser reports the string."""
    while (close := text.find(CLOSE, i)) >= 0:
        quote = text.find("'", i, close)
        if quote < 0:
            return close
        end = text.find("'", quote + 1)
        if end < 0:
            return text.find(CLOSE, quote)
        i = end + 1
    return -1


def render(template: Template, contexts: Mapping[str, Any], status: Status | None = None) -> str:
    """The template's text with each expression replaced by its value's text
    (to_string: null is '', an object is 'Object'; toJSON() gives JSON).
    Its expressions share one evaluation's bounds, and the result is at most
    MAX_VALUE_CHARS. Raises EvaluationError."""
    ev = Evaluation(contexts, status)
    out: list[str] = []
    size = 0
    for part in template.parts:
        text = part if isinstance(part, str) else to_string(ev.eval(part.expr))
        size += len(text)
        if size > MAX_VALUE_CHARS:
            raise EvaluationError(f"rendered text longer than {MAX_VALUE_CHARS} characters")
        ev.spend(len(text))
        out.append(text)
    return "".join(out)

