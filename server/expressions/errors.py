"""The two ways an expression goes wrong: it does not parse (refused when a
workflow is submitted), or it parses but cannot be evaluated with the values
it meets at run time."""

from __future__ import annotations


class ExpressionError(ValueError):
    """A syntax error. `offset` is the 0-based index in the text that was
    parsed (for a template, the whole template) where the problem is, so a
    caller can turn it into a line and column of its own document."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset

    def __reduce__(self):
        return type(self), (self.message, self.offset)


class EvaluationError(ValueError):
    """An expression that cannot be evaluated with these values: `fromJSON`
    of text that is not JSON, a `format` index with no argument, a status
    function where there is no status, or a limit in limits.py reached."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
