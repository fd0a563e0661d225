"""Golden tests of cron as schedules read it (server/cron.py over cronsim):
steps, ranges, lists, names, a seconds field, time zones, and what happens
to skipped and repeated local times on Europe/Berlin's DST nights (Debian
cron's rules, documented in workflow-yaml.md)."""

from __future__ import annotations

from datetime import datetime

import pytest

from server import cron


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def iso(value: int, tz: str = "UTC") -> str:
    return datetime.fromtimestamp(value / 1000, cron.zone(tz)).isoformat(timespec="seconds")


def upcoming(expr: str, tz: str, after: str, n: int) -> list[str]:
    it = cron.ticks_after(expr, tz, ms(after))
    return [iso(next(it), tz) for _ in range(n)]


@pytest.mark.parametrize("expr, after, expected", [
    ("*/15 * * * *", "2025-01-01T10:07:00+00:00",
     ["2025-01-01T10:15:00+00:00", "2025-01-01T10:30:00+00:00", "2025-01-01T10:45:00+00:00",
      "2025-01-01T11:00:00+00:00"]),
    # a step over a range starts at the range's start
    ("10-50/20 * * * *", "2025-01-01T10:00:00+00:00",
     ["2025-01-01T10:10:00+00:00", "2025-01-01T10:30:00+00:00", "2025-01-01T10:50:00+00:00",
      "2025-01-01T11:10:00+00:00"]),
    # working hours on weekdays: Friday evening runs on to Monday morning
    ("0 9-17/4 * * 1-5", "2025-01-03T12:00:00+00:00",
     ["2025-01-03T13:00:00+00:00", "2025-01-03T17:00:00+00:00", "2025-01-06T09:00:00+00:00",
      "2025-01-06T13:00:00+00:00"]),
    # lists and names
    ("30 6 1,15 JAN,JUL *", "2025-01-10T00:00:00+00:00",
     ["2025-01-15T06:30:00+00:00", "2025-07-01T06:30:00+00:00", "2025-07-15T06:30:00+00:00",
      "2026-01-01T06:30:00+00:00"]),
    ("0 0 * * MON-WED", "2025-01-01T00:00:00+00:00",  # a Wednesday
     ["2025-01-06T00:00:00+00:00", "2025-01-07T00:00:00+00:00", "2025-01-08T00:00:00+00:00",
      "2025-01-13T00:00:00+00:00"]),
    # day-of-month and day-of-week both given: either matches (cron's OR)
    ("0 12 13 * 5", "2025-06-01T00:00:00+00:00",
     ["2025-06-06T12:00:00+00:00", "2025-06-13T12:00:00+00:00", "2025-06-20T12:00:00+00:00",
      "2025-06-27T12:00:00+00:00"]),
    # 7 is Sunday too; the last day of the month
    ("0 0 * * 7", "2025-01-01T00:00:00+00:00",
     ["2025-01-05T00:00:00+00:00", "2025-01-12T00:00:00+00:00", "2025-01-19T00:00:00+00:00",
      "2025-01-26T00:00:00+00:00"]),
    ("0 0 L * *", "2024-01-15T00:00:00+00:00",
     ["2024-01-31T00:00:00+00:00", "2024-02-29T00:00:00+00:00", "2024-03-31T00:00:00+00:00",
      "2024-04-30T00:00:00+00:00"]),
    # six fields: a leading seconds field
    ("*/20 * * * * *", "2025-01-01T10:00:05+00:00",
     ["2025-01-01T10:00:20+00:00", "2025-01-01T10:00:40+00:00", "2025-01-01T10:01:00+00:00",
      "2025-01-01T10:01:20+00:00"]),
])
def test_steps_ranges_lists_and_names(expr, after, expected):
    assert upcoming(expr, "UTC", after, len(expected)) == expected


def test_a_time_zone_moves_the_ticks_with_its_clock():
    # 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer
    assert [iso(t) for t in [cron.next_tick("0 9 * * *", "Europe/Berlin", ms("2025-01-10T00:00:00+00:00")),
                             cron.next_tick("0 9 * * *", "Europe/Berlin", ms("2025-07-10T00:00:00+00:00"))]] == [
        "2025-01-10T08:00:00+00:00", "2025-07-10T07:00:00+00:00"]


# Europe/Berlin: 2025-03-30 02:00 CET -> 03:00 CEST (02:xx never happens);
# 2025-10-26 03:00 CEST -> 02:00 CET (02:xx happens twice).

def test_spring_forward_a_skipped_daily_time_fires_once_at_the_end_of_the_gap():
    assert upcoming("30 2 * * *", "Europe/Berlin", "2025-03-29T12:00:00+01:00", 3) == [
        "2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00", "2025-04-01T02:30:00+02:00"]


def test_spring_forward_a_sub_hourly_step_skips_the_missing_hour():
    assert upcoming("*/30 * * * *", "Europe/Berlin", "2025-03-30T01:00:00+01:00", 4) == [
        "2025-03-30T01:30:00+01:00", "2025-03-30T03:00:00+02:00", "2025-03-30T03:30:00+02:00",
        "2025-03-30T04:00:00+02:00"]


def test_fall_back_a_repeated_daily_time_fires_once():
    assert upcoming("30 2 * * *", "Europe/Berlin", "2025-10-25T12:00:00+02:00", 3) == [
        "2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00", "2025-10-28T02:30:00+01:00"]


def test_fall_back_a_sub_hourly_step_fires_in_both_hours():
    assert upcoming("*/30 * * * *", "Europe/Berlin", "2025-10-26T01:45:00+02:00", 5) == [
        "2025-10-26T02:00:00+02:00", "2025-10-26T02:30:00+02:00", "2025-10-26T02:00:00+01:00",
        "2025-10-26T02:30:00+01:00", "2025-10-26T03:00:00+01:00"]


def test_due_walks_back_from_now_and_agrees_across_dst():
    forward = cron.ticks_after("30 2 * * *", "Europe/Berlin", ms("2025-10-20T00:00:00+02:00"))
    ahead = [next(forward) for _ in range(10)]
    back = cron.due("30 2 * * *", "Europe/Berlin", ms("2025-10-20T00:00:00+02:00"), ahead[-1], 50)
    assert back == ahead
    # bounded: the newest `limit`, oldest first
    assert cron.due("30 2 * * *", "Europe/Berlin", ms("2025-10-20T00:00:00+02:00"), ahead[-1], 3) == ahead[-3:]
    # the bounds: after `last`, at or before `now`
    assert cron.due("*/15 * * * *", "UTC", ms("2025-01-01T10:00:00+00:00"), ms("2025-01-01T10:30:00+00:00"), 50) \
        == [ms("2025-01-01T10:15:00+00:00"), ms("2025-01-01T10:30:00+00:00")]


@pytest.mark.parametrize("expr, why", [
    ("* * *", "has 3 fields"),
    ("* * * * * * *", "has 7 fields"),
    ("@daily", "macros such as @daily are not supported"),
    ("60 * * * *", "bad minute"),
    ("*/0 * * * *", "bad minute"),
    ("5-1 * * * *", "bad minute"),
    ("0 24 * * *", "bad hour"),
    ("0 0 30 2 *", "bad day-of-month"),
    ("0 0 * 13 *", "bad month"),
    ("0 0 * * 8", "bad day-of-week"),
    ("0 0 ? * *", "bad day-of-month"),
])
def test_bad_expressions_say_what_is_wrong(expr, why):
    assert why in cron.check(expr)


def test_zones_are_iana_names():
    assert cron.zone("Europe/Berlin") is not None and cron.zone("UTC") is not None
    for bad in ("Mars/Olympus", "../../etc/passwd", "/etc/localtime", "", "x" * 100):
        assert cron.zone(bad) is None
