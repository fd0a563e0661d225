"""Times and spans as a client writes them: an instant as epoch
milliseconds or RFC 3339 text, a span as seconds or `90s`, `30m`, `2h`,
`1d` (whole units, or a plain number of seconds). A bad one is a 422
naming its field."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Optional, Union

from .errors import Unprocessable
from .limits import MAX_EPOCH_MS

_SPAN = re.compile(r"([0-9]+(?:[.][0-9]+)?)(ms|s|m|h|d)?")
_UNIT_MS = {"ms": 1, "s": 1000, None: 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
# RFC 3339: a date, 'T' or a space, a time, and an offset (Z or +hh:mm).
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})")


def instant(value: Union[int, str], field: str) -> int:
    """Epoch milliseconds."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.isdigit():
        return _bounded(int(text), field)
    if not _RFC3339.fullmatch(text):
        raise Unprocessable("invalid_body", f"{field} must be epoch milliseconds or an RFC 3339 time with its"
                            f" offset, e.g. 2026-05-01T09:00:00Z (got {value!r})", {"field": field})
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        raise Unprocessable("invalid_body", f"{field} is not a real time: {value!r}", {"field": field}) from None
    return _bounded(round(parsed.timestamp() * 1000), field)


def _bounded(ms: int, field: str) -> int:
    if not 0 <= ms <= MAX_EPOCH_MS:
        raise Unprocessable("invalid_body", f"{field} is out of range (the year 1970 to 9999)", {"field": field})
    return ms


def span(value: Union[float, str], field: str) -> int:
    """Milliseconds, at most MAX_EPOCH_MS (longer than any time can be ahead)."""
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise Unprocessable("invalid_body", f"{field} must be a number of seconds, 0 or more", {"field": field})
        ms = value * 1000
    else:
        match = _SPAN.fullmatch(value)
        if not match:
            raise Unprocessable("invalid_body", f"{field} must be seconds or a span such as 90s, 30m, 2h or 1d"
                                f" (got {value!r})", {"field": field})
        ms = float(match.group(1)) * _UNIT_MS[match.group(2)]
    if not ms <= MAX_EPOCH_MS:  # NaN and infinity too
        raise Unprocessable("invalid_body", f"{field} is far too long", {"field": field})
    return round(ms)


def one_of(abs_value, rel_value, abs_field: str, rel_field: str) -> tuple[Optional[int], Optional[int]]:
    """(absolute ms, relative ms): at most one of the two given."""
    if abs_value is not None and rel_value is not None:
        raise Unprocessable("invalid_body", f"give {abs_field} or {rel_field}, not both", {"field": rel_field})
    return (instant(abs_value, abs_field) if abs_value is not None else None,
            span(rel_value, rel_field) if rel_value is not None else None)
