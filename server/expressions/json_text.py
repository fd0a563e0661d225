"""toJSON and fromJSON: JSON text written as GitHub writes it (two-space
indents, `"key": value`, `[]` and `{}` when empty) and read back, both
bounded in size and nesting."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import EvaluationError
from .limits import MAX_JSON_DEPTH, MAX_VALUE_CHARS

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_EXACT = 2**53


def to_json(value: Any, spend: Callable[[int], None]) -> str:
    """`value` as indented JSON. Numbers are written exactly (an integer in
    full, a fraction in the shortest form that reads back to the same
    double), so fromJSON(toJSON(x)) gives x back; NaN and the infinities are
    written NaN, Infinity and -Infinity, which fromJSON reads."""
    out: list[str] = []
    size = 0

    def put(text: str) -> None:
        nonlocal size
        size += len(text)
        if size > MAX_VALUE_CHARS:
            raise EvaluationError(f"toJSON() result longer than {MAX_VALUE_CHARS} characters")
        out.append(text)

    def write(item: Any, depth: int) -> None:
        if item is None:
            put("null")
        elif item is True or item is False:
            put("true" if item else "false")
        elif isinstance(item, str):
            put(_string(item))
        elif isinstance(item, (int, float)):
            put(_number(item))
        elif isinstance(item, (list, tuple, Mapping)) and depth >= MAX_JSON_DEPTH:
            raise EvaluationError(f"toJSON() of a value nested deeper than {MAX_JSON_DEPTH} levels")
        elif isinstance(item, (list, tuple)):
            if not item:
                put("[]")
                return
            inner = "\n" + "  " * (depth + 1)
            put("[")
            for n, element in enumerate(item):
                put(("," if n else "") + inner)
                write(element, depth + 1)
            put("\n" + "  " * depth + "]")
        elif isinstance(item, Mapping):
            if not item:
                put("{}")
                return
            inner = "\n" + "  " * (depth + 1)
            put("{")
            for n, (key, element) in enumerate(item.items()):
                if not isinstance(key, str):
                    raise EvaluationError(f"toJSON() of an object with a {type(key).__name__} key")
                put(("," if n else "") + inner + _string(key) + ": ")
                write(element, depth + 1)
            put("\n" + "  " * depth + "}")
        else:
            raise EvaluationError(f"toJSON() of a {type(item).__name__}, which is not a JSON value")

    write(value, 0)
    spend(size)
    return "".join(out)


def _string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    # A lone surrogate cannot be written as UTF-8; JSON can escape it.
    if _LONE_SURROGATE.search(encoded):
        encoded = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", encoded)
    return encoded


def _number(number: int | float) -> str:
    if isinstance(number, int):
        return str(number)
    if number != number:
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number.is_integer() and abs(number) < _EXACT:
        return str(int(number))  # 2, not 2.0; and 0 for -0, as GitHub writes it
    return repr(number)


def from_json(text: str, spend: Callable[[int], None]) -> Any:
    """The JSON value in `text`: objects become dicts (a repeated key keeps
    its last value), numbers ints or floats; NaN, Infinity and -Infinity are
    read as numbers. Anything else is an EvaluationError."""
    if len(text) > MAX_VALUE_CHARS:
        raise EvaluationError(f"fromJSON() of text longer than {MAX_VALUE_CHARS} characters")
    spend(len(text))
    if not text.strip():
        raise EvaluationError("fromJSON() of empty text")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise EvaluationError(f"fromJSON(): not JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None
    except (ValueError, RecursionError) as err:
        # an integer of more digits than Python converts, or nesting past the
        # interpreter's recursion limit
        raise EvaluationError(f"fromJSON(): not JSON that can be read: {err}") from None
    spend(_check_depth(value))
    return value


def _check_depth(value: Any) -> int:
    """How many values `value` holds, having made sure none lies deeper
    than MAX_JSON_DEPTH."""
    count = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if isinstance(item, (list, dict)):
            if depth >= MAX_JSON_DEPTH:
                raise EvaluationError(f"fromJSON() of a value nested deeper than {MAX_JSON_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return count

