"""`--wait` and `--follow`: a run's job state changes (and with `--follow`
every job's log lines, each to its job's `end` event) printed until the run
ends, each stamped with the time since the wait began; what a queued job is
waiting for; `--timeout`."""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Optional, TextIO

from server.models import RunOut
from worker.cli_show import follow_job, state_line  # noqa: F401  (state_line: re-exported)
from worker.client import Client

FINISHED = {"success", "failure", "cancelled"}
# How often `--wait` reads the run.
WATCH_INTERVAL = 0.25
# How often it asks why queued jobs are not running (one request per job).
BLOCKED_CHECK_SECS = 2.0
# "waiting for a worker with [gpu]" again after this long, not every check.
WAITING_REPEAT_SECS = 60.0
# After the run ends, `--follow` waits for each job's `end` event, which for
# a cancelled job comes once its worker has stopped it; this bounds a stuck one.
FOLLOW_LIMIT_SECS = 600.0
BLOCKED_JOBS_CHECKED = 10


def stamp(secs: float) -> str:
    secs = int(max(secs, 0))
    return f"[{secs // 60}:{secs % 60:02d}]"


class Watch:
    def __init__(self, client: Client, run_id: str, out: TextIO, follow: bool, timeout: Optional[float],
                 clock: Callable[[], float]):
        self.client, self.run_id, self.out, self.follow, self.timeout = client, run_id, out, follow, timeout
        self.clock = clock
        self.start = clock()
        self.seen: dict[str, tuple[str, int]] = {}
        self.followers: list[asyncio.Task] = []
        self.followed: set[str] = set()
        self.said_waiting: dict[tuple[str, ...], float] = {}
        self.next_blocked_check = self.start
        self.timed_out = False

    def say(self, text: str) -> None:
        print(f"{stamp(self.clock() - self.start)} {text}", file=self.out, flush=True)

    async def run(self) -> int:
        try:
            while True:
                run = await self.client.get_run(self.run_id)
                for job in run.jobs or []:
                    if self.seen.get(job.id) != (job.status, job.attempt):
                        self.seen[job.id] = (job.status, job.attempt)
                        self.say(state_line(job))
                    if self.follow and job.id not in self.followed and job.status not in ("queued", "skipped"):
                        self.followed.add(job.id)
                        self.followers.append(asyncio.create_task(
                            follow_job(self.client, self.run_id, job, self.out, f"{job.id} | ")))
                if run.status in FINISHED:
                    break
                await self._check_blocked(run)
                await self._check_timeout()
                await asyncio.sleep(WATCH_INTERVAL)
            if self.followers:
                await asyncio.wait(self.followers, timeout=FOLLOW_LIMIT_SECS)
        finally:
            for task in self.followers:
                task.cancel()
        self.say(f"workflow {run.workflow_id} run #{run.number}: {run.status}")
        return 0 if run.status == "success" and not self.timed_out else 1

    async def _check_blocked(self, run: RunOut) -> None:
        now = self.clock()
        if now < self.next_blocked_check:
            return
        self.next_blocked_check = now + BLOCKED_CHECK_SECS
        queued = [j for j in run.jobs or [] if j.status == "queued" and j.retry_at is None]
        wanted: set[tuple[str, ...]] = set()
        for job in queued[:BLOCKED_JOBS_CHECKED]:
            blocked = (await self.client.get_run_job(self.run_id, job.id)).blocked_by
            if blocked is not None and blocked.no_worker_with is not None:
                wanted.add(tuple(blocked.no_worker_with))
        for labels in sorted(wanted):
            last = self.said_waiting.get(labels)
            if last is None or now - last >= WAITING_REPEAT_SECS:
                self.said_waiting[labels] = now
                which = f"a worker with [{', '.join(labels)}]" if labels else "any worker"
                self.say(f"waiting for {which}: none registered")

    async def _check_timeout(self) -> None:
        if self.timeout is None or self.timed_out or self.clock() - self.start < self.timeout:
            return
        self.timed_out = True
        self.say(f"timed out after {self.timeout:g}s: cancelling run {self.run_id}")
        await self.client.cancel_run(self.run_id)


async def watch(client: Client, run_id: str, *, follow: bool, out: TextIO, timeout: Optional[float] = None,
                clock: Callable[[], float] = time.monotonic) -> int:
    """Print each job state change (and with `follow` every job's log lines)
    until the run ends; 0 if it succeeded, else 1 (also after `timeout`
    seconds, when the run is cancelled)."""
    return await Watch(client, run_id, out, follow, timeout, clock).run()
