"""Flags several `rota` commands share, and the argparse types that read
their values: `--json`, durations (`30d`, `12h`), `KEY=VALUE` pairs, and
defaults taken from the environment."""

from __future__ import annotations

import argparse
import os
import re
from typing import Callable


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


def key_values(flag: str) -> Callable[[str], tuple[str, str]]:
    """An argparse type for `k=v` (repeatable flags build a dict from these)."""

    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{text!r} is not {flag} KEY=VALUE")
        return key, value

    return parse
