"""How `rota` prints answers: tables and short lines for people, `--json`
(the API's own objects) for scripts. Both show no control character raw
(terminal.py): what a job wrote is in them."""

from __future__ import annotations

import re
import sys
from typing import Any

import msgspec

from server.terminal import safe


def one_line(text: str, width: int = 80) -> str:
    """`text` on one line (any run of spaces, line ends and CRs one space),
    controls shown (terminal.safe), cut to `width`."""
    text = safe(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: list[str], rows: list[list[str]]) -> str:
    rows = [[safe(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [headers, *rows]
    )


# JSON escapes C0 controls itself; these it writes as they are. They can
# only stand inside strings, where `\uXXXX` means the same character.
_JSON_RAW = re.compile(r"[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def print_json(value: Any) -> None:
    """`--json`: the API's own objects, one document on stdout; DEL, C1
    controls and bidi overrides written as `\\uXXXX` escapes (the same JSON)."""
    text = msgspec.json.format(msgspec.json.encode(value), indent=2).decode()
    sys.stdout.write(_JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")
    sys.stdout.flush()


def elapsed(secs: float) -> str:
    """`4s`, `2m05s`, `1h02m`: a span as people read it."""
    secs = int(max(secs, 0))
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60:02d}s"
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
