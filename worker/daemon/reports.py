"""What the daemon reports about a job beside its output and result: the
steps of a `steps:` job as each runs, and the job's CPU and memory use.

Both are best effort. A report the server does not take never fails or
delays the job: it is retried a little while the server is unreachable,
one warning per job says reports are missing, and a 409 (the lease ended,
was given up to wait, or the job was cancelled) ends the reports at once,
since no later one would be taken either.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from functools import partial
from typing import Awaitable, Callable, Optional

from server.models import ResourceSample, StepUpdate
from worker.client.api import Client
from worker.client.errors import ApiError, RotaError, is_transient
from worker.daemon.logship import Backoff

log = logging.getLogger("rota.worker")

# At the job's end, how long its last step reports may take to reach the
# server before its result goes (which ends the lease, and so the reports).
STEP_FLUSH_SECS = 5.0
# Tries of one report while the server is unreachable or failing.
_REPORT_TRIES = 3


class _Reports:
    """One job's reports: sent one at a time, in order, never raising."""

    def __init__(self, client: Client, lease_id: str, name: str, what: str):
        self._client = client
        self.lease_id = lease_id
        self._name = name
        self._what = what
        self.ended = False  # a 409: the lease takes no more reports
        self._warned = False

    async def send(self, call: Callable[[], Awaitable[None]]) -> bool:
        """True if the server took it."""
        if self.ended:
            return False
        backoff = Backoff()
        for attempt in range(_REPORT_TRIES):
            try:
                await call()
                return True
            except ApiError as exc:
                if exc.status == 409:
                    self.ended = True
                    return False
                if not is_transient(exc) or attempt == _REPORT_TRIES - 1:
                    self._warn(exc)
                    return False
            except RotaError as exc:
                if attempt == _REPORT_TRIES - 1:
                    self._warn(exc)
                    return False
            await asyncio.sleep(backoff.next())
        return False

    def _warn(self, exc: RotaError) -> None:
        if not self._warned:
            log.warning("could not report the %s of %s (later ones may be missing too; the job goes on): %s",
                        self._what, self._name, exc)
            self._warned = True


class StepReporter:
    """Reports each step of a `steps:` job as it runs, is skipped or ends.

    The steps call in synchronously; the reports queue here and go out in
    order behind the job, so a slow server never holds a step up.
    """

    def __init__(self, client: Client, lease_id: str, name: str):
        self._client = client
        self._reports = _Reports(client, lease_id, name, "steps")
        self._queue: asyncio.Queue[tuple[int, str, StepUpdate]] = asyncio.Queue()
        self._task = asyncio.create_task(self._send_all())

    def started(self, index: int, name: str) -> None:
        self._queue.put_nowait((index, "running", StepUpdate(name=name)))

    def finished(self, index: int, name: str, exit_code: Optional[int], error: Optional[str]) -> None:
        """`error`: why it failed (`exit code 3: <stderr tail>`), None when it
        succeeded; `exit_code`: None when it failed before its script ran."""
        if error is None:
            self._queue.put_nowait((index, "completed", StepUpdate(name=name, exit_code=0)))
        else:
            update = StepUpdate(name=name, exit_code=exit_code, error_message=error)
            self._queue.put_nowait((index, "failed", update))

    def skipped(self, index: int, name: str, why: str) -> None:
        self._queue.put_nowait((index, "skipped", StepUpdate(name=name, error_message=why)))

    async def _send_all(self) -> None:
        lease_id = self._reports.lease_id
        while True:
            index, state, update = await self._queue.get()
            try:
                await self._reports.send(partial(self._client.report_step, lease_id, index, state, update))
            finally:
                self._queue.task_done()

    async def close(self, timeout: float = STEP_FLUSH_SECS) -> None:
        """Lets the queued reports go out, for up to `timeout`, then stops."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


# ---- resource use ---------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class GroupUsage:
    """A process group's use of the machine, as /proc shows it at one moment."""

    cpu_ticks: int  # user + system, its live processes' and the children they reaped
    rss_bytes: int
    processes: int
    leader_start_ticks: Optional[int]  # since boot; None once the leader is gone


def read_group(pgid: int, proc: str = "/proc") -> Optional[GroupUsage]:
    """The processes of group `pgid` summed; None if it has none (or there is no /proc)."""
    ticks = rss_pages = count = 0
    leader_start = None
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"{proc}/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited while we looked
        # Fields after the command name, which may itself hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2:].split()
        try:
            if int(fields[2]) != pgid:  # field 5, pgrp
                continue
            # fields 14-17: utime, stime, and the cutime, cstime of reaped children
            ticks += sum(int(v) for v in fields[11:15])
            rss_pages += int(fields[21])  # field 24
            if int(pid) == pgid:
                leader_start = int(fields[19])  # field 22, starttime
        except (IndexError, ValueError):
            continue
        count += 1
    if not count:
        return None
    return GroupUsage(ticks, rss_pages * _PAGE_SIZE, count, leader_start)


def _uptime_ticks(proc: str = "/proc") -> Optional[float]:
    try:
        with open(f"{proc}/uptime") as f:
            return float(f.read().split()[0]) * _CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return None


class CpuMeter:
    """CPU percent of a process group between two samples (100 = one core busy).

    A group first seen (a new step) is measured since its leader started.
    """

    def __init__(self) -> None:
        self._last: Optional[tuple[int, int, float]] = None  # pgid, ticks, at (monotonic)

    def percent(self, pgid: int, usage: GroupUsage, now: float, proc: str = "/proc") -> Optional[float]:
        last, self._last = self._last, (pgid, usage.cpu_ticks, now)
        if last is not None and last[0] == pgid:
            elapsed_ticks = (now - last[2]) * _CLOCK_TICKS
            used = usage.cpu_ticks - last[1]
        else:
            uptime = _uptime_ticks(proc)
            if usage.leader_start_ticks is None or uptime is None:
                return None
            elapsed_ticks = uptime - usage.leader_start_ticks
            used = usage.cpu_ticks
        if elapsed_ticks <= 0:
            return None
        # A process that died unreaped takes its ticks with it: never below 0.
        return round(max(used, 0) / elapsed_ticks * 100, 1)


async def sample_resources(client: Client, lease_id: str, name: str, pgid: Callable[[], Optional[int]],
                           interval: float, first_delay: Optional[float] = None) -> None:
    """Every `interval` seconds (the first after `first_delay`, by default
    `interval`), report the job's CPU and RSS until cancelled; `pgid` says
    the running step's group, None between steps."""
    reports = _Reports(client, lease_id, name, "resource use")
    meter = CpuMeter()
    delay = interval if first_delay is None else first_delay
    while not reports.ended:
        await asyncio.sleep(delay)
        delay = interval
        group = pgid()
        if group is None:
            continue
        # Off the event loop: a busy machine has thousands of /proc entries.
        usage = await asyncio.to_thread(read_group, group)
        if usage is None:
            continue
        cpu = meter.percent(group, usage, time.monotonic())
        sample = ResourceSample(cpu_percent=cpu, memory_bytes=usage.rss_bytes,
                                extra={"processes": usage.processes})
        await reports.send(partial(client.report_resources, lease_id, sample))
