"""A run's inputs: typed against the workflow's `workflow_dispatch: inputs:`
(GitHub's types), bounded, and as text for the jobs' environment.

A workflow that declares inputs gets exactly those: each given value is
checked against its type, an undeclared one is refused, a missing one
takes its default (or its type's empty value: GitHub's rule for inputs
that are not given), and a required one without a default must be given.
A workflow that declares none takes any inputs as they come (the seeds
send theirs as JSON: Restep's `input_params`, Strait's `payload`).
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Optional

import msgspec

from . import limits
from .expressions.values import number_value, to_string
from .models.specs import InputSpec

_encode = msgspec.json.encode
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
TYPES = ("string", "number", "boolean", "choice", "environment")
# A number as text: decimals with a sign and an exponent (no hex, no Infinity).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_EMPTY = {"string": "", "environment": "", "number": 0, "boolean": False}


class InputError(ValueError):
    """One input that will not do: `field` names it (`inputs.<name>`)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def typed(spec: InputSpec, value: Any) -> Any:
    """The value as its input's type holds it; ValueError (the message) if
    it is not one. Strings that spell a number or a boolean are read as one,
    as GitHub's dispatch form and `rota run --input` send only text."""
    if spec.type in ("string", "environment"):
        if isinstance(value, str):
            return value
        raise ValueError(f"must be a string (got {_kind(value)})")
    if spec.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError(f"must be true or false (got {_kind(value) if not isinstance(value, str) else repr(value)})")
    if spec.type == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
            number = float(value.strip())
        else:
            raise ValueError(f"must be a number (got {_kind(value) if not isinstance(value, str) else repr(value)})")
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return value if isinstance(value, int) and not isinstance(value, bool) else number_value(number)
    # choice
    if isinstance(value, str) and value in spec.options:
        return value
    shown = ", ".join(spec.options[:20]) + (", ..." if len(spec.options) > 20 else "")
    raise ValueError(f"must be one of {shown} (got {repr(value) if isinstance(value, str) else _kind(value)})")


def resolve(declared: Mapping[str, InputSpec], given: Mapping[str, Any], workflow: str = "") -> dict[str, Any]:
    """The run's inputs: `given` checked against `declared`, defaults
    applied. No declared inputs: `given` as it is. Raises InputError."""
    if not declared:
        return dict(given)
    by_lower = {name.lower(): name for name in declared}
    out: dict[str, Any] = {}
    for name, value in given.items():
        key = name if name in declared else by_lower.get(name.lower())
        if key is None:
            names = ", ".join(declared)
            raise InputError(f"inputs.{name}", f"not an input of {f'workflow {workflow!r}' if workflow else 'this workflow'}"
                             f" (its inputs: {names})")
        if key in out:
            raise InputError(f"inputs.{name}", f"given twice (as {key} and {name})")
        try:
            out[key] = typed(declared[key], value)
        except ValueError as exc:
            raise InputError(f"inputs.{name}", f"{declared[key].type} input {exc}") from None
    for name, spec in declared.items():
        if name in out:
            continue
        if spec.default is not None:
            out[name] = spec.default
        elif spec.required:
            raise InputError(f"inputs.{name}", "required" + (f" ({spec.description})" if spec.description else ""))
        else:
            out[name] = spec.options[0] if spec.type == "choice" else _EMPTY[spec.type]
    return out


def check_bounds(inputs: Mapping[str, Any]) -> Optional[InputError]:
    """Whether a run's inputs stay within what a run may carry: every job's
    claim hands them over, and each becomes an environment string."""
    if len(inputs) > limits.MAX_INPUTS:
        return InputError("inputs", f"more than {limits.MAX_INPUTS} inputs")
    for name, value in inputs.items():
        if not NAME_RE.fullmatch(name):
            return InputError(f"inputs.{name}", "an input name is letters, digits and '_', not starting with a digit,"
                              " at most 64 characters (it becomes $ROTA_INPUT_<NAME>)")
        depth = _depth(value)
        if depth > limits.MAX_INPUT_DEPTH:
            return InputError(f"inputs.{name}", f"nested deeper than {limits.MAX_INPUT_DEPTH} levels")
        if isinstance(value, float) and not math.isfinite(value):
            return InputError(f"inputs.{name}", "must be a finite number")
        if len(text(value)) > limits.MAX_INPUT_CHARS:
            return InputError(f"inputs.{name}", f"longer than {limits.MAX_INPUT_CHARS} characters as text (limit"
                              " for one input: it becomes one environment string)")
    if len(_encode(dict(inputs))) > limits.MAX_INPUTS_BYTES:
        return InputError("inputs", f"more than {limits.MAX_INPUTS_BYTES} bytes as JSON (limit for a run's inputs)")
    return None


def _depth(value: Any) -> int:
    """Levels of lists and objects (a scalar is 0). The body it came in was
    already refused past 64 levels, so the recursion is bounded."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def text(value: Any) -> str:
    """An input as its job's environment has it (ROTA_INPUT_<NAME>): a
    string as it is, a boolean `true`/`false`, a number as GitHub writes it
    in text, null empty, a list or an object as its JSON."""
    if isinstance(value, (list, dict)):
        return _encode(value).decode()
    return to_string(value)


def texts(inputs: Mapping[str, Any]) -> dict[str, str]:
    return {name: text(value) for name, value in inputs.items()}
