"""GitHub's value rules: truthiness, conversion to number and to string, and
loose equality and ordering (JavaScript's abstract comparison, except that
strings compare ignoring case and objects and arrays are never converted).

Values are plain JSON values: None, bool, int or float, str, list (or tuple)
and dict. Numbers behave as IEEE doubles, as GitHub's do; ints stay ints so a
caller gets `3`, not `3.0`, back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import EvaluationError

NULL, BOOLEAN, NUMBER, STRING, ARRAY, OBJECT = "Null", "Boolean", "Number", "String", "Array", "Object"
PRIMITIVES = frozenset({NULL, BOOLEAN, NUMBER, STRING})

# What .NET's Double.TryParse reads with a leading sign, a decimal point and an
# exponent (the runner's ParseNumber); [0-9], not \d, which matches any digit.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_OCTAL = re.compile(r"0o[0-7]+")
_INFINITY = {"Infinity": math.inf, "+Infinity": math.inf, "-Infinity": -math.inf}
_EXACT = 2**53  # beyond this an int is no longer exactly a double


def kind(value: Any) -> str:
    if value is None:
        return NULL
    if value is True or value is False:
        return BOOLEAN
    if isinstance(value, str):
        return STRING
    if isinstance(value, (int, float)):
        return NUMBER
    if isinstance(value, (list, tuple)):
        return ARRAY
    if isinstance(value, Mapping):
        return OBJECT
    raise EvaluationError(f"a value of type {type(value).__name__} is not a JSON value")


def truthy(value: Any) -> bool:
    """GitHub's truthiness: false, 0, -0, NaN, '' and null are false;
    everything else, including every array and object, is true."""
    k = kind(value)
    if k == NULL:
        return False
    if k == BOOLEAN:
        return value
    if k == NUMBER:
        return not (value == 0 or value != value)
    if k == STRING:
        return value != ""
    return True


def as_double(value: int | float) -> float:
    """A number as the double GitHub would hold (an int too large for one is
    an infinity, as a double overflows)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def to_number(value: Any) -> float:
    """null -> 0, true -> 1, false -> 0, a string parsed as a number (''
    and blanks -> 0, anything unreadable -> NaN), arrays and objects -> NaN."""
    k = kind(value)
    if k == NUMBER:
        return as_double(value)
    if k == STRING:
        return parse_number(value)
    if k == BOOLEAN:
        return 1.0 if value else 0.0
    if k == NULL:
        return 0.0
    return math.nan


def parse_number(text: str) -> float:
    """A string as a number, as GitHub reads one: surrounding whitespace is
    ignored, an empty string is 0; decimals with an optional sign and
    exponent, 0x hexadecimal, 0o octal and [+-]Infinity are read; anything
    else is NaN. (GitHub's runner reads hexadecimal and octal as 32-bit
    integers; here they are read whole.)"""
    text = text.strip()
    if not text:
        return 0.0
    if _DECIMAL.fullmatch(text):
        return float(text)
    if _HEX.fullmatch(text):
        return as_double(int(text[2:], 16))
    if _OCTAL.fullmatch(text):
        return as_double(int(text[2:], 8))
    return _INFINITY.get(text, math.nan)


def number_value(number: float) -> int | float:
    """A double as the value handed back: an int when it is a whole number
    a double holds exactly (so 255, not 255.0), else the float."""
    if number.is_integer() and abs(number) < _EXACT and not (number == 0 and math.copysign(1, number) < 0):
        return int(number)
    return number


def to_string(value: Any) -> str:
    """GitHub's conversion to text: null -> '', true -> 'true', numbers with
    15 significant digits (as .NET's G15), strings as they are, and an
    array or object as the word 'Array' or 'Object' (toJSON gives the JSON)."""
    k = kind(value)
    if k == STRING:
        return value
    if k == NULL:
        return ""
    if k == BOOLEAN:
        return "true" if value else "false"
    if k == NUMBER:
        return number_to_string(value)
    return k


def number_to_string(value: int | float) -> str:
    if isinstance(value, int) and abs(value) < 10**15:
        return str(value)
    number = as_double(value)
    if number != number:
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"  # and -0: GitHub writes 0
    mantissa, exponent_text = f"{number:.14e}".split("e")
    exponent = int(exponent_text)
    sign = "-" if mantissa.startswith("-") else ""
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    # .NET's G format: scientific when the exponent is -5 or less or reaches
    # the precision, with at least two exponent digits (1E+15, 1.5E-05).
    if exponent <= -5 or exponent >= 15:
        fraction = f".{digits[1:]}" if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{fraction}E{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole, fraction = digits[: exponent + 1], digits[exponent + 1:]
    whole = whole.ljust(exponent + 1, "0")
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


# ---- comparing text, ignoring case --------------------------------------------------

_upper_table: dict[int, str] | None = None


def _table() -> dict[int, str]:
    """Each character's simple (one-to-one) uppercase, as .NET's
    OrdinalIgnoreCase compares: so 'ß' stays 'ß' (not 'SS') and, as in
    GitHub, the dotless 'ı' is not an 'I'. Built on first use: cased
    characters all lie below U+20000."""
    global _upper_table
    if _upper_table is None:
        table = {}
        for code in range(0x80, 0x20000):
            char = chr(code)
            upper = char.upper()
            if upper != char and len(upper) == 1 and char != "ı":
                table[code] = upper
        _upper_table = table
    return _upper_table


def fold(text: str) -> str:
    """Text in the form two strings equal ignoring case share."""
    return text.upper() if text.isascii() else text.translate(_table())


def _order_key(text: str) -> bytes:
    # .NET orders strings by UTF-16 code units, which big-endian UTF-16 bytes
    # keep; Python's code point order differs above the surrogates.
    return fold(text).encode("utf-16-be", "surrogatepass")


# ---- loose equality and ordering ---------------------------------------------------

def _coerce(left: Any, right: Any) -> tuple[Any, str, Any, str]:
    """Both sides brought to one kind where GitHub does: a number meets a
    string as a number; null and booleans become numbers first."""
    lk, rk = kind(left), kind(right)
    while lk != rk:
        if lk == NUMBER and rk == STRING:
            right, rk = parse_number(right), NUMBER
        elif lk == STRING and rk == NUMBER:
            left, lk = parse_number(left), NUMBER
        elif lk in (BOOLEAN, NULL):
            left, lk = to_number(left), NUMBER
        elif rk in (BOOLEAN, NULL):
            right, rk = to_number(right), NUMBER
        else:
            break
    return left, lk, right, rk


def equals(left: Any, right: Any) -> bool:
    """`==`: after coercion, numbers by value (NaN equals nothing), strings
    ignoring case, arrays and objects only when they are the same one."""
    left, lk, right, rk = _coerce(left, right)
    if lk != rk:
        return False
    if lk == NULL:
        return True
    if lk == NUMBER:
        return as_double(left) == as_double(right)
    if lk == STRING:
        return left == right or fold(left) == fold(right)
    if lk == BOOLEAN:
        return left == right
    return left is right


def less_than(left: Any, right: Any) -> bool:
    return _order(left, right) < 0


def greater_than(left: Any, right: Any) -> bool:
    return _order(left, right) > 0


def _order(left: Any, right: Any) -> int:
    """-1, 1, or 0 for "neither less nor greater" (equal, NaN, or kinds that
    have no order: arrays, objects, and mixed kinds)."""
    left, lk, right, rk = _coerce(left, right)
    if lk != rk:
        return 0
    if lk == NUMBER:
        a, b = as_double(left), as_double(right)
    elif lk == STRING:
        a, b = _order_key(left), _order_key(right)
    elif lk == BOOLEAN:
        a, b = left, right
    else:
        return 0
    return -1 if a < b else 1 if a > b else 0
