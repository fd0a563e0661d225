"""Flags several `rota` commands share, and the argparse types that read
their values: `--json`, durations (`30d`, `12h`), `KEY=VALUE` pairs,
labels and numbers checked as the server declares them, and defaults
taken from the environment.

A bad value is refused before anything is sent: argparse prints
"argument --flag: <message>" and exits 2. Each message starts "invalid
value" (or "invalid label"), as a bad value has always said."""

from __future__ import annotations

import argparse
import os
import re
from typing import Callable

import msgspec
import msgspec.inspect

from server.models import LABEL_PATTERN, PATTERN_WORDS


def env_default(name: str, default: str) -> str:
    """A flag's default: the environment variable `name` when set and not empty."""
    return os.environ.get(name) or default


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the answer as JSON on stdout")


_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT_SECS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """`30d`, `12h`, `90m`, `3600s` or plain seconds, as seconds (at least 1)."""
    match = _DURATION.fullmatch(text.strip().lower())
    secs = int(match.group(1)) * _UNIT_SECS[match.group(2)] if match else 0
    if secs < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30d, 12h, 90m, 3600s or 3600")
    return secs


def _span(secs: int) -> str:
    """604800 as `7d`, 90 as `90s`: a bound as the flag is written."""
    for unit in ("d", "h", "m"):
        if secs % _UNIT_SECS[unit] == 0:
            return f"{secs // _UNIT_SECS[unit]}{unit}"
    return f"{secs}s"


def int_bounds(struct: type, field: str) -> tuple[int, int]:
    """The `ge` and `le` the server declares for a whole-number field of `struct`."""
    (info,) = [f.type for f in msgspec.inspect.type_info(struct).fields if f.name == field]
    types = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
    (number,) = [t for t in types if isinstance(t, msgspec.inspect.IntType)]
    return number.ge, number.le


def whole_number_of(struct: type, field: str) -> Callable[[str], int]:
    """An argparse type: a whole number within `struct.field`'s declared bounds."""
    low, high = int_bounds(struct, field)

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be a whole number from {low} to {high}")
        return value

    return parse


def duration_of(struct: type, field: str) -> Callable[[str], int]:
    """An argparse type: a duration (parse_duration) within `struct.field`'s declared seconds."""
    low, high = int_bounds(struct, field)

    def parse(text: str) -> int:
        try:
            secs = parse_duration(text)
        except argparse.ArgumentTypeError:
            secs = None
        if secs is None or not low <= secs <= high:
            raise argparse.ArgumentTypeError(
                f"invalid value {text!r}: must be a duration from {_span(low)} to {_span(high)}"
                " (like 90s, 30m, 2h, 1d, or seconds)")
        return secs

    return parse


_LABEL = re.compile(LABEL_PATTERN)


def label(text: str) -> str:
    """An argparse type: one label, as the server declares labels."""
    if not _LABEL.match(text):
        raise argparse.ArgumentTypeError(f"invalid label {text!r}: must be {PATTERN_WORDS[LABEL_PATTERN]}")
    return text


def key_values(flag: str) -> Callable[[str], tuple[str, str]]:
    """An argparse type for `k=v` (repeatable flags build a dict from these)."""

    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{text!r} is not {flag} KEY=VALUE")
        return key, value

    return parse
