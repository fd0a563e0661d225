"""The scheduler: starts the runs of `on: schedule:` ticks, releases delayed
runs whose time has come and expires runs nobody started in time. A loop
in every process that runs the reaper (every server unless API_ONLY=1, and
`python -m server.reaper`).

Any number may run against one Redis. Each pass reads the schedules due
(by the clock: Redis TIME, or the one a test passes in), computes their
ticks with cron, and calls fire_schedule, which claims the ticks and
starts their runs in one script only if the schedule is still as it was
read: the first scheduler to get there fires a tick, the others find it
taken. Nothing lives in a scheduler's memory, so a restarted one (or
another replica) goes on where the last left off.

Catch-up: after downtime (no scheduler running, or Redis away) the ticks
missed are handled by the schedule's `catch-up`: `latest` (the default)
starts one run, for the newest missed tick; `all` one per missed tick, the
newest MAX_CATCH_UP_RUNS of them; `none` starts nothing for a tick seen
more than SCHEDULE_ON_TIME_SECS late.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable, Optional

from redis.exceptions import RedisError

from . import cron
from .errors import NotFound, Unprocessable
from .inputs import InputError, resolve
from .limits import MAX_CATCH_UP_RUNS, SCHEDULE_ON_TIME_SECS
from .store import Store
from .store.schedules import Due

log = logging.getLogger("rota.scheduler")
events = logging.getLogger("rota.events")
Clock = Callable[[], Awaitable[int]]
BATCH = 100  # schedules fired per pass, at most
RUN_BATCH, RUN_BATCHES = 500, 20  # delayed or expiring runs per script, scripts per pass


@dataclass(frozen=True)
class Plan:
    fire: list[int]  # the ticks to start runs for, oldest first
    newlast: int  # ticks count from here next time
    next: int  # the next tick after now
    missed: int  # due ticks not fired (at most MAX_CATCH_UP_RUNS counted)
    oldest_missed: Optional[int] = None


def plan(expr: str, tz: str, catch_up: str, last: int, now: int) -> Plan:
    """What to fire at `now` for a schedule whose ticks count from `last`."""
    due = cron.due(expr, tz, last, now, MAX_CATCH_UP_RUNS + 1)
    nxt = cron.next_tick(expr, tz, max(last, now))
    if not due:
        return Plan([], last, nxt, 0)
    newest = due[-1]
    if catch_up == "all":
        fire = due[-MAX_CATCH_UP_RUNS:]
    elif catch_up == "latest" or now - newest <= SCHEDULE_ON_TIME_SECS * 1000:
        fire = [newest]
    else:
        fire = []
    missed = len(due) - len(fire)
    return Plan(fire, newest, nxt, missed, due[0] if missed else None)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")


async def fire_due(store: Store, now: int, broken: Optional[set[str]] = None) -> int:
    """One pass over the schedules due at `now`; the runs started. One
    schedule failing (a bug) leaves the others to fire; `broken` holds the
    ones whose failure was logged, so each is logged once, not every pass."""
    broken = set() if broken is None else broken
    started = 0
    for due in await store.due_schedules(now, BATCH):
        try:
            started += await _fire(store, due, now)
            broken.discard(due.id)
        except (RedisError, OSError):
            raise
        except Exception:
            if due.id not in broken:
                broken.add(due.id)
                log.exception("schedule %s could not be fired", due.id)
    return started


async def _fire(store: Store, due: Due, now: int) -> int:
    p = plan(due.cron, due.timezone, due.catch_up, int(due.last or 0), now)
    try:
        ver, definition = await store.current_definition(due.workflow_id)
    except NotFound:
        return 0  # deleted meanwhile: its schedules went with it
    try:
        inputs = resolve(definition.inputs if definition else {}, {}, due.workflow_id)
    except InputError as exc:  # refused at submit; kept from a crash all the same
        log.warning("schedule %s: %s; its ticks start nothing", due.id, exc)
        p = Plan([], p.newlast, p.next, p.missed + len(p.fire))
        inputs = {}
    try:
        runs = await store.fire_schedule(due, p.fire, p.newlast, p.next, ver, inputs, definition)
    except Unprocessable as exc:  # a concurrency group these inputs cannot render: refused at no start
        log.warning("schedule %s: %s; its ticks start nothing", due.id, exc.message)
        p = Plan([], p.newlast, p.next, p.missed + len(p.fire))
        runs = await store.fire_schedule(due, [], p.newlast, p.next, ver, inputs, definition)
    if runs is None:
        return 0  # another scheduler got there first, or it changed: the next pass reads it again
    if p.missed:
        events.info("schedule %s: %d%s tick(s) from %s missed while no scheduler ran (catch-up: %s)", due.id,
                    p.missed, "+" if p.missed > MAX_CATCH_UP_RUNS else "", _iso(p.oldest_missed or p.newlast),
                    due.catch_up)
    for run, tick in runs:
        events.info("schedule %s: run %s started for %s", due.id, run, _iso(tick))
    return len(runs)


async def pass_once(store: Store, clock: Optional[Clock] = None,
                    broken: Optional[set[str]] = None) -> tuple[int, int, int]:
    """(cron runs started, delayed runs released, runs expired)."""
    released = expired = 0
    for _ in range(RUN_BATCHES):  # a burst due at once goes in batches, each one script
        more_released, more_expired = await store.due_runs(RUN_BATCH)
        released, expired = released + more_released, expired + more_expired
        if more_released < RUN_BATCH and more_expired < RUN_BATCH:
            break
    fired = await fire_due(store, await (clock or store.now_ms)(), broken)
    return fired, released, expired


async def run_forever(store: Store, interval_secs: float, stop: Optional[asyncio.Event] = None,
                      clock: Optional[Clock] = None) -> None:
    """A pass every `interval_secs` until `stop` is set (by event, not by
    cancelling the task: see reaper.run_forever)."""
    stop = stop or asyncio.Event()
    lost_at = None
    broken: set[str] = set()
    while not stop.is_set():
        try:
            fired, released, expired = await pass_once(store, clock, broken)
            if lost_at is not None:
                log.info("Redis is back after %.0fs", time.monotonic() - lost_at)
                lost_at = None
            if released or expired:  # each is in the log already (rota.events), once per fleet
                log.debug("released %d delayed run(s), expired %d", released, expired)
        except (RedisError, OSError) as exc:
            if lost_at is None:
                log.warning("Redis lost: %s (retrying every %.1fs)", exc, interval_secs)
                lost_at = time.monotonic()
        except Exception:  # a bug must not end the loop: every later tick would be missed
            log.exception("scheduler pass failed")
        try:
            await asyncio.wait_for(stop.wait(), interval_secs)
        except asyncio.TimeoutError:
            pass
