"""GitHub Actions' expression language: one parser and evaluator for the
server (checking a workflow when it is submitted, deciding conditions) and
the worker daemon (step conditions and env values). Pure Python, importing
nothing else from the server, so the daemon imports it cheaply.

    expr = parse("needs.build.result == 'success' && !cancelled()")
    expr.contexts()                  # {("needs", "build")}
    expr.calls_status_function()     # True
    evaluate(expr, {"needs": {...}}, Status(success=True))

    template = parse_template("v${{ inputs.version }}-${{ matrix.os }}")
    render(template, {"inputs": {...}, "matrix": {...}})

The language itself is documented in docs/workflow-yaml.md
("The expression language"); limits.py holds its bounds.
"""

from __future__ import annotations

from .errors import EvaluationError, ExpressionError
from .evaluate import Status, evaluate
from .nodes import STATUS_FUNCTIONS, Expr, Reference
from .parser import parse
from .template import Piece, Template, parse_template, render
from .values import to_string, truthy

__all__ = [
    "STATUS_FUNCTIONS",
    "EvaluationError",
    "Expr",
    "ExpressionError",
    "Piece",
    "Reference",
    "Status",
    "Template",
    "evaluate",
    "parse",
    "parse_template",
    "render",
    "to_string",
    "truthy",
]
