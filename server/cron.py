"""Cron expressions: checking one, and the ticks a schedule has between two
instants. Parsing and iteration are cronsim's (docs/dependencies.md says
why it, not croniter); this module only turns epoch milliseconds into the
schedule's local time and back.

Semantics are Debian cron's, which cronsim follows, DST quirks included:
- a time the clocks skip (02:30 on the spring-forward night in
  Europe/Berlin) fires at the first instant after the gap (03:00), once;
- a time the clocks repeat (02:30 on the fall-back night) fires once, at
  its first occurrence, for an expression whose minute and hour fields
  both name times; one whose minute or hour field starts with `*` (`*`,
  `*/30`) fires in both hours, since those times are real instants twice,
  and skips the times in a spring-forward gap, which do not exist.
Five fields (minute hour day-of-month month day-of-week), or six with a
leading seconds field (rota's extension, as Quartz writes it; a six-field
expression gets no DST special-casing).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

UTC = "UTC"
MAX_CRON_CHARS = 256
MAX_TIMEZONE_CHARS = 64


def check(expr: str) -> Optional[str]:
    """Why the expression is not one cron accepts, or None."""
    if len(expr) > MAX_CRON_CHARS:
        return f"longer than {MAX_CRON_CHARS} characters"
    fields = expr.split()
    if expr.strip().startswith("@"):
        return "macros such as @daily are not supported: write the five fields (@daily is '0 0 * * *')"
    if len(fields) not in (5, 6):
        return (f"has {len(fields)} field{'s' if len(fields) != 1 else ''}; write five (minute hour day-of-month"
                " month day-of-week), or six with a leading seconds field")
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=timezone.utc))
    except CronSimError as exc:
        return str(exc).lower().rstrip(".")
    return None


def zone(name: str) -> Optional[timezone | ZoneInfo]:
    """The IANA time zone of that name, or None if there is none."""
    if name == UTC:
        return timezone.utc
    if len(name) > MAX_TIMEZONE_CHARS or not name or name.startswith("/") or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _local(ms: int, tz) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).astimezone(tz)


def _ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def ticks_after(expr: str, tz_name: str, after_ms: int) -> Iterator[int]:
    """Every tick strictly after `after_ms`, oldest first (endless)."""
    tz = zone(tz_name) or timezone.utc
    start = _local(after_ms, tz)
    # cronsim works in whole seconds: a start inside a second would count
    # that second's own tick as "after" it.
    for dt in CronSim(expr, start.replace(microsecond=0)):
        ms = _ms(dt)
        if ms > after_ms:
            yield ms


def ticks_upto(expr: str, tz_name: str, upto_ms: int) -> Iterator[int]:
    """Every tick at or before `upto_ms`, newest first (endless)."""
    tz = zone(tz_name) or timezone.utc
    # Backwards, cronsim starts at the given second itself only when the
    # datetime has microseconds (it counts dropping them as the first step).
    start = _local(upto_ms, tz)
    if start.microsecond == 0:
        start += timedelta(microseconds=1)
    for dt in CronSim(expr, start, reverse=True):
        ms = _ms(dt)
        if ms <= upto_ms:
            yield ms


def next_tick(expr: str, tz_name: str, after_ms: int) -> int:
    return next(ticks_after(expr, tz_name, after_ms))


def due(expr: str, tz_name: str, last_ms: int, now_ms: int, limit: int) -> list[int]:
    """The ticks after `last_ms` and at or before `now_ms`: the newest
    `limit` of them, oldest first. Walked backwards from now, so a schedule
    that has been down a year costs `limit` steps, not a year's ticks."""
    found: list[int] = []
    if limit <= 0:
        return found
    for ms in ticks_upto(expr, tz_name, now_ms):
        if ms <= last_ms:
            break
        found.append(ms)
        if len(found) == limit:
            break
    return found[::-1]
