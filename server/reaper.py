"""The lease reaper: expires dead workers' leases (re-enqueueing their jobs
with backoff), promotes due delayed jobs, decides the jobs a process that
died left deciding, and purges workflows past their retention. Runs inside
every server process unless API_ONLY=1, or alone as `python -m
server.reaper` (which runs the scheduler, server/scheduler.py, beside it).
Any number may run at once: each pass is one
atomic script that only acts on what is already due."""

from __future__ import annotations

import asyncio
import logging
import time

from redis.exceptions import RedisError

from .store import Store

log = logging.getLogger("rota.reaper")
BATCH = 500


async def reap_once(store: Store) -> tuple[int, int, int]:
    """Runs passes until nothing due is left; returns the totals."""
    totals = [0, 0, 0]
    while True:
        expired, promoted, purged = await store.reap(BATCH)
        totals = [totals[0] + expired, totals[1] + promoted, totals[2] + purged]
        if expired < BATCH and promoted < BATCH:
            break
    await store.decide_overdue(BATCH)
    return totals[0], totals[1], totals[2]


async def run_forever(store: Store, interval_secs: float, stop: asyncio.Event | None = None) -> None:
    """Reaps every `interval_secs` until `stop` is set. Stopping by event, not
    by cancelling the task: a cancel that lands inside a Redis client call
    can be swallowed there, and shutdown would then wait forever."""
    stop = stop or asyncio.Event()
    lost_at = None  # when Redis stopped answering: said once, and once when it is back
    while not stop.is_set():
        try:
            expired, promoted, purged = await reap_once(store)
            if lost_at is not None:
                log.info("Redis is back after %.0fs", time.monotonic() - lost_at)
                lost_at = None
            if expired or purged:
                log.info("reaped %d expired lease(s), promoted %d delayed job(s), purged %d run(s)",
                         expired, promoted, purged)
        except (RedisError, OSError) as exc:
            if lost_at is None:
                log.warning("Redis lost: %s (retrying every %.1fs)", exc, interval_secs)
                lost_at = time.monotonic()
        try:
            await asyncio.wait_for(stop.wait(), interval_secs)
        except asyncio.TimeoutError:
            pass


def main() -> None:
    from . import scheduler
    from .redis_conn import connect, describe
    from .settings import Settings

    from . import logconfig

    settings = Settings.from_env()
    logconfig.configure(settings.log_level, settings.log_format)
    if not settings.redis_url:
        raise SystemExit("python -m server.reaper needs REDIS_URL: the embedded store lives inside one server process")

    async def run() -> None:
        redis = connect(settings)
        store = Store.from_settings(redis, settings)
        log.info("reaper running against %s every %.1fs, scheduler every %.1fs", describe(settings),
                 settings.reap_interval_secs, settings.schedule_interval_secs)
        # The scheduler goes where the reaper goes: a fleet of API_ONLY
        # servers still gets its cron ticks and delayed runs.
        await asyncio.gather(run_forever(store, settings.reap_interval_secs),
                             scheduler.run_forever(store, settings.schedule_interval_secs))

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
