"""`--wait` and `--follow`: a run's job state changes (and with `--follow`
every job's log lines, each to its job's `end` event) printed until the run
ends, each stamped with the time since the wait began; what a queued job is
waiting for; `--timeout`. A server restart or a Redis outage meanwhile is
waited out (worker/client/reconnect.py): the exit status is the run's. SIGINT and
SIGTERM leave the run going, saying how to cancel it, or with
`--cancel-on-interrupt` cancel it."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional, TextIO

from server.models import RunOut
from worker.cli.show import follow_job, state_line
from server.terminal import safe
from worker.client import reconnect
from worker.client.api import Client
from worker.client.errors import RotaError
from worker.client.reconnect import Reconnect, StillDown

FINISHED = {"success", "failure", "cancelled", "expired"}
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
# Past --timeout (or on an interrupt with --cancel-on-interrupt), how long
# the cancel may wait for a server that is out.
CANCEL_WITHIN_SECS = 60.0
INTERRUPT_CANCEL_SECS = 10.0  # a CI runner's cancel sends SIGKILL soon after
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclass(frozen=True)
class Pace:
    """How often a wait reads the run and asks why queued jobs wait, and how
    soon it tries a server that is out again (a test's wait goes faster)."""

    interval: float = WATCH_INTERVAL
    blocked_check_secs: float = BLOCKED_CHECK_SECS
    reconnect_first_delay: float = reconnect.FIRST_DELAY
    reconnect_max_delay: float = reconnect.MAX_DELAY


def _clock(ms: Optional[int]) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ms / 1000))


def stamp(secs: float) -> str:
    secs = int(max(secs, 0))
    return f"[{secs // 60}:{secs % 60:02d}]"


class Watch:
    def __init__(self, client: Client, run_id: str, out: TextIO, follow: bool, timeout: Optional[float],
                 clock: Callable[[], float], pace: Pace = Pace()):
        self.client, self.run_id, self.out, self.follow, self.timeout = client, run_id, out, follow, timeout
        self.clock, self.pace = clock, pace
        self.start = clock()
        self.net = Reconnect(self.say, clock, pace.reconnect_first_delay, pace.reconnect_max_delay)
        self.seen: dict[str, tuple[str, int]] = {}
        self.followers: list[asyncio.Task] = []
        self.followed: set[str] = set()
        self.said_waiting: dict[tuple[str, ...], float] = {}
        self.next_blocked_check = self.start
        self.timed_out, self.timed_out_at = False, 0.0
        self.final: Optional[RunOut] = None  # the run as it ended
        self.said_delayed: Optional[int] = None  # the start time a delayed run was last said to wait for

    def say(self, text: str) -> None:
        # (job states carry what jobs wrote: their errors)
        print(f"{stamp(self.clock() - self.start)} {safe(text)}", file=self.out, flush=True)

    @property
    def deadline(self) -> Optional[float]:
        if self.timed_out:
            return self.timed_out_at + CANCEL_WITHIN_SECS
        return None if self.timeout is None else self.start + self.timeout

    async def ask(self, fn: Callable[..., Awaitable], *args: object):
        """`fn(*args)`, waiting out an outage until the deadline; past it, a
        timeout (first), or StillDown (once the run's cancel is overdue)."""
        while True:
            try:
                return await self.net.call(fn, *args, until=self.deadline)
            except StillDown:
                if self.timed_out:
                    raise
                await self._time_out()  # then ask again, within the cancel's own deadline

    async def run(self) -> int:
        try:
            while True:
                run = await self.ask(self.client.get_run, self.run_id)
                for job in run.jobs or []:
                    seen = self.seen.get(job.id)
                    if seen != (job.status, job.attempt):
                        self.seen[job.id] = (job.status, job.attempt)
                        # a new attempt says why, even when the wait never saw it queued
                        self.say(state_line(job, why=seen is None or job.attempt > seen[1]))
                    if self.follow and job.id not in self.followed and job.status not in ("queued", "skipped"):
                        self.followed.add(job.id)
                        self.followers.append(asyncio.create_task(
                            follow_job(self.client, self.run_id, job, self.out, f"{job.id} | ", outages=self.net)))
                if run.status in FINISHED:
                    break
                if run.status == "delayed":
                    if self.said_delayed != run.scheduled_at:
                        self.said_delayed = run.scheduled_at
                        self.say(f"delayed until {_clock(run.scheduled_at)}")
                else:
                    await self._check_blocked(run)
                if self.deadline is not None and self.clock() >= self.deadline and not self.timed_out:
                    await self._time_out()
                await asyncio.sleep(self.pace.interval)
            if self.followers:
                await asyncio.wait(self.followers, timeout=FOLLOW_LIMIT_SECS)
                for task in self.followers:  # a tail that failed for good (not an outage) says why
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        self.say(f"a log tail ended early: {task.exception()}")
        except StillDown as exc:  # past --timeout, and the server still out
            self.say(f"the server is still out ({exc.cause}): run {self.run_id} may still be going;"
                     f" check it with: rota status {self.run_id} (cancel it with: rota cancel {self.run_id})")
            return 1
        finally:
            for task in self.followers:
                task.cancel()
        self.final = run
        self.say(f"workflow {run.workflow_id} run #{run.number}: {run.status}")
        return 0 if run.status == "success" and not self.timed_out else 1

    async def _check_blocked(self, run: RunOut) -> None:
        now = self.clock()
        if now < self.next_blocked_check:
            return
        self.next_blocked_check = now + self.pace.blocked_check_secs
        queued = [j for j in run.jobs or [] if j.status == "queued" and j.retry_at is None]
        wanted: set[tuple[str, ...]] = set()
        for job in queued[:BLOCKED_JOBS_CHECKED]:
            blocked = (await self.ask(self.client.get_run_job, self.run_id, job.id)).blocked_by
            if blocked is not None and blocked.no_worker_with is not None:
                wanted.add(tuple(blocked.no_worker_with))
        for labels in sorted(wanted):
            last = self.said_waiting.get(labels)
            if last is None or now - last >= WAITING_REPEAT_SECS:
                self.said_waiting[labels] = now
                which = f"a worker with [{', '.join(labels)}]" if labels else "any worker"
                self.say(f"waiting for {which}: none registered")

    async def _time_out(self) -> None:
        self.timed_out, self.timed_out_at = True, self.clock()
        self.say(f"timed out after {self.timeout:g}s: cancelling run {self.run_id}")
        await self.ask(self.client.cancel_run, self.run_id)


async def watch(client: Client, run_id: str, *, follow: bool, out: TextIO, timeout: Optional[float] = None,
                clock: Callable[[], float] = time.monotonic, pace: Pace = Pace()) -> int:
    """Print each job state change (and with `follow` every job's log lines)
    until the run ends; 0 if it succeeded, else 1 (also after `timeout`
    seconds, when the run is cancelled)."""
    return await Watch(client, run_id, out, follow, timeout, clock, pace).run()


async def until_interrupted(waiting: Awaitable[int], client: Client, run_id: str, *, cancel: bool,
                            err: Optional[TextIO] = None) -> int:
    """`waiting`'s exit code, unless SIGINT or SIGTERM comes first: then the
    run goes on and how to cancel it is said (with `cancel`, it is
    cancelled), and the code is 130 (SIGINT) or 143 (SIGTERM). A second
    signal has its usual effect."""
    err = err or sys.stderr
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(waiting)
    got: list[signal.Signals] = []
    installed: list[signal.Signals] = []

    def interrupted(sig: signal.Signals) -> None:
        got.append(sig)
        task.cancel()
        for s in installed:
            loop.remove_signal_handler(s)
        installed.clear()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, interrupted, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no such support
            pass
    try:
        return await task
    except asyncio.CancelledError:
        if not got:
            raise
    finally:
        for s in installed:
            loop.remove_signal_handler(s)
    print(f"rota: interrupted ({got[0].name})", file=err, flush=True)
    if cancel:
        await _cancel_on_interrupt(client, run_id, err)
    else:
        print(f"run {run_id} is still going; cancel it with: rota cancel {run_id}", file=err, flush=True)
    return EXIT_INTERRUPTED[got[0]]


async def _cancel_on_interrupt(client: Client, run_id: str, err: TextIO) -> None:
    net = Reconnect(lambda text: print(f"rota: {text}", file=err, flush=True))
    try:
        await net.call(client.cancel_run, run_id, until=time.monotonic() + INTERRUPT_CANCEL_SECS)
    except RotaError as exc:
        print(f"could not cancel run {run_id} ({exc}); cancel it with: rota cancel {run_id}", file=err, flush=True)
        return
    print(f"cancel requested for run {run_id}", file=err, flush=True)
