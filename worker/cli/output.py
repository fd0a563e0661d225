"""How `rota` prints answers: tables and short lines for people, `--json`
(the API's own objects) for scripts."""

from __future__ import annotations

import sys
from typing import Any

import msgspec


def one_line(text: str, width: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [headers, *rows]
    )


def print_json(value: Any) -> None:
    """`--json`: the API's own objects, one document on stdout."""
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")
    sys.stdout.flush()


def elapsed(secs: float) -> str:
    """`4s`, `2m05s`, `1h02m`: a span as people read it."""
    secs = int(max(secs, 0))
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60:02d}s"
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
