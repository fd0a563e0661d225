"""How much an expression may ask for. Expressions are written by a workflow's
author, but the values they read (a job's outputs, and whatever `fromJSON`
makes of them) come from jobs, which are untrusted: every cost below is
bounded before the work is done, and breaking a bound is an ExpressionError
(when parsing) or an EvaluationError (when evaluating), never a hang.

Kept here rather than in server/limits.py so that the package imports nothing
else from the server: the worker daemon imports it too."""

from __future__ import annotations

# GitHub's own bounds (actions/runner ExpressionConstants: MaxLength, MaxDepth),
# counted the same way, so every expression GitHub accepts is accepted here.
MAX_EXPRESSION_CHARS = 21_000
MAX_DEPTH = 50

# GitHub's bound on format()'s arguments, the format string included (a byte's range).
MAX_FORMAT_ARGS = 255

# Text that format, join, toJSON or a rendered template make, and text given
# to fromJSON: GitHub's evaluation memory bound is 1 MiB.
MAX_VALUE_CHARS = 1024 * 1024

# What one evaluation (or one template render) may do in total: one unit per
# character made, compared or parsed, and per list element gathered. Without
# it, an expression repeating toJSON() of a 1 MiB output a thousand times
# would make a gigabyte of text, each piece within MAX_VALUE_CHARS.
MAX_EVALUATION_COST = 16 * 1024 * 1024

# Nesting of a value fromJSON makes or toJSON writes, as the YAML nesting limit.
MAX_JSON_DEPTH = 64
