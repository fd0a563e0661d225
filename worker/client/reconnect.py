"""Riding out a server restart or a Redis outage while the CLI waits for a
run: a call that finds the server unreachable, or answered 502/503/504,
is tried again with capped backoff for as long as the caller allows. Said
once when the outage starts (`server unreachable; reconnecting`) and once
when it ends (`reconnected after 8s`), however many calls wait meanwhile.

The run goes on without the CLI, so its exit status must come from the
run, not from a restart that happened while it waited."""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Optional, TypeVar

from worker.client.errors import RotaError, is_outage

T = TypeVar("T")

FIRST_DELAY = 0.5
MAX_DELAY = 5.0


class StillDown(RotaError):
    """The server did not come back before the caller's deadline."""

    def __init__(self, cause: RotaError):
        super().__init__(str(cause))
        self.cause = cause


class Reconnect:
    """Shared by every call of one command (its poll loop and its log tails),
    so an outage is said once. A client.Outages for the log tails."""

    def __init__(self, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                 first_delay: float = FIRST_DELAY, max_delay: float = MAX_DELAY):
        self.say, self.clock = say, clock
        self.first_delay, self.max_delay = first_delay, max_delay
        self.down_since: Optional[float] = None

    async def call(self, fn: Callable[..., Awaitable[T]], *args: object, until: Optional[float] = None) -> T:
        """`fn(*args)`, tried again while the server is out; StillDown once
        `until` (on `clock`) has passed."""
        delay = self.first_delay
        while True:
            try:
                result = await fn(*args)
            except RotaError as exc:
                if not is_outage(exc):
                    raise
                self.lost(exc)
                if until is not None and self.clock() >= until:
                    raise StillDown(exc) from exc
                wait = delay if until is None else max(min(delay, until - self.clock()), 0)
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.max_delay)
                continue
            self.back()
            return result

    def lost(self, cause: BaseException) -> None:
        if self.down_since is None:
            self.down_since = self.clock()
            self.say(f"server unreachable; reconnecting ({cause})")

    def back(self) -> None:
        if self.down_since is not None:
            self.say(f"reconnected after {self.clock() - self.down_since:.0f}s")
            self.down_since = None

    def backoff(self, failures: int) -> float:
        """How long a log tail waits before its `failures`-th retry in a row."""
        return min(self.first_delay * 2 ** max(failures - 1, 0), self.max_delay)
