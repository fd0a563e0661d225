"""One heartbeat for all the worker's leases (rota's batch protocol): a
long-poll that renews every lease at once and answers the moment one of
the jobs is cancelled, or its lease is lost, or after a third of the
shortest lease TTL; the next goes out as soon as one answers.

A job's lease joins `first_delay` after the job starts (most jobs of a busy
fleet end sooner and need no heartbeat at all); when one joins while a
heartbeat is parked, that one is cut short and the next carries it too, so
a cancel reaches every job within a round trip of its first heartbeat.

Against a server without the batch protocol (404/405) each job keeps its
own lease as before (heartbeat.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Callable, Optional

from server.models import Lease
from worker.client.api import Client
from worker.client.errors import ApiError, RotaError
from worker.daemon import protocol
from worker.daemon.heartbeat import keep_lease
from worker.daemon.logship import Backoff, Outage
from worker.daemon.stops import CANCELLED, LEASE_LOST, WAITING

log = logging.getLogger("rota.worker")

# Heartbeats answered sooner than this are paced to it, so they never spin.
_MIN_SPACING = 1.0


@dataclass
class _Held:
    lease: Lease
    name: str
    stop: Callable[[str], None]
    joining: Optional[asyncio.TimerHandle] = None  # until it joins the heartbeat
    own: Optional[asyncio.Task] = None  # its own heartbeat, against an older server
    reporting: bool = False  # its job ended: its result is on its way


class LeaseKeeper:
    def __init__(self, client: Client, outage: Outage, first_delay: float):
        self._client = client
        self._outage = outage
        self._first_delay = first_delay
        self._held: dict[str, _Held] = {}
        self._beating: dict[str, _Held] = {}  # the leases the heartbeat carries
        self._changed = asyncio.Event()
        self._single = False  # the server has no batch heartbeat: one per job

    def add(self, lease: Lease, name: str, stop: Callable[[str], None]) -> None:
        held = self._held[lease.lease_id] = _Held(lease, name, stop)
        delay = min(self._first_delay, lease.ttl_secs / 3)
        held.joining = asyncio.get_running_loop().call_later(delay, self._join, held)

    def remove(self, lease_id: str) -> None:
        held = self._held.pop(lease_id, None)
        if held is None:
            return
        if held.joining is not None:
            held.joining.cancel()
        if held.own is not None:
            held.own.cancel()
        # A parked heartbeat may still carry it: it answers `lost` for it
        # once the result is in, which is ignored (no longer held).
        self._beating.pop(lease_id, None)

    def reporting(self, lease_id: str) -> None:
        """The lease's job ended and its result goes now: a heartbeat woken
        by that result answers that the lease is gone, which is then the
        result's doing, not a lost lease (the result's own answer says if
        the lease was lost before it)."""
        held = self._held.get(lease_id)
        if held is not None:
            held.reporting = True

    def beating(self, lease_id: str) -> bool:
        """Whether the shared heartbeat still renews the lease."""
        return lease_id in self._beating

    def _join(self, held: _Held) -> None:
        held.joining = None
        if self._single:
            held.own = asyncio.create_task(keep_lease(self._client, held.lease, held.name, self._outage, held.stop,
                                                      0.0))
            return
        self._beating[held.lease.lease_id] = held
        self._changed.set()

    async def run(self) -> None:
        """Until cancelled."""
        loop = asyncio.get_running_loop()
        backoff = Backoff(first=_MIN_SPACING, cap=10.0)
        failing = False
        while not self._single:
            if not self._beating:
                self._changed.clear()
                await self._changed.wait()
                continue
            self._changed.clear()
            beating = dict(self._beating)
            wait = min(h.lease.ttl_secs for h in beating.values()) / 3
            sent = loop.time()
            request = asyncio.ensure_future(protocol.heartbeats(self._client, list(beating), wait))
            joined = asyncio.ensure_future(self._changed.wait())
            try:
                done, _ = await asyncio.wait({request, joined}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                joined.cancel()
                if not request.done():
                    request.cancel()  # a lease joined (or we stop): the next heartbeat carries it too
            if request not in done:
                continue
            try:
                beats = request.result()
            except ApiError as exc:
                self._outage.saw(exc)
                if exc.status in (404, 405):
                    self._fall_back()
                    return
                if exc.status in (401, 403):
                    # This worker's token was revoked: no result will be accepted either.
                    for held in beating.values():
                        self._lost(held, f"lost lease {held.name}: {exc}", LEASE_LOST)
                    continue
                error: RotaError = exc
            except RotaError as exc:
                self._outage.saw(exc)
                error = exc
            else:
                self._outage.answered()
                failing = False
                backoff.reset()
                for beat in beats:
                    held = self._beating.get(beat.lease_id)
                    if held is not None and beat.status != "live":
                        self._answered(held, beat.status)
                early = _MIN_SPACING - (loop.time() - sent)
                if early > 0 and all(b.status == "live" for b in beats):
                    await asyncio.sleep(early)  # answered at once: a server that does not long-poll
                continue
            if not failing:  # one line per outage, not one per beat
                log.warning("heartbeat of %d lease(s) failed: %s", len(beating), error)
            failing = True
            await asyncio.sleep(backoff.next())

    def _answered(self, held: _Held, status: str) -> None:
        if status == "cancelled":
            self._lost(held, f"cancel requested for {held.name}", CANCELLED, level=logging.INFO)
        elif status == "waiting":
            # The job asked to wait for an event: the server released its
            # lease and re-runs it when the event comes.
            self._lost(held, f"{held.name} gave up lease {held.lease.lease_id} to wait for an event", WAITING,
                       level=logging.DEBUG)
        elif held.reporting:
            log.debug("%s: lease %s ended as its result went in", held.name, held.lease.lease_id)
            self._beating.pop(held.lease.lease_id, None)
        else:  # lost, forbidden
            self._lost(held, f"lost lease {held.name}: the server answered {status}", LEASE_LOST)

    def _lost(self, held: _Held, message: str, reason: str, level: int = logging.WARNING) -> None:
        log.log(level, "%s", message)
        self._beating.pop(held.lease.lease_id, None)
        held.stop(reason)

    def _fall_back(self) -> None:
        log.info("the server has no batch heartbeat (POST /api/jobs/heartbeats): one heartbeat per job")
        self._single = True
        for held in list(self._beating.values()):
            self._beating.pop(held.lease.lease_id, None)
            self._join(held)
