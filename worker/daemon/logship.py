"""Ships one lease's job output to the server as sequence-numbered log chunks.

Also home to what the daemon shares with it: `send_until_answered` (retry
through outages), its `Backoff`, the `Outage` tracker, and `job_name`."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterator

import msgspec

from server.models import Lease, LogChunk, LogsAccepted
from worker.client.api import Client
from worker.client.errors import ApiError, RotaError, is_transient

log = logging.getLogger("rota.worker")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Backoff:
    """Delays for retrying against an unreachable server: 0.2 s doubling to a cap."""

    def __init__(self, first: float = 0.2, cap: float = 5.0):
        self._first, self._cap = first, cap
        self.delay = first

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, self._cap)
        return delay

    def reset(self) -> None:
        self.delay = self._first


class Outage:
    """Whether the server is reachable, as every request of one worker sees it.

    Requests report each transient failure (no answer, or a 5xx) and each
    answer; the first answer after failures logs one line saying how long
    the server was away, so an operator reading the log sees the outage end.
    """

    def __init__(self) -> None:
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self) -> None:
        if self._since is None:
            self._since = time.monotonic()

    def answered(self) -> None:
        if self._since is not None:
            log.info("server reachable again after %.0fs", time.monotonic() - self._since)
            self._since = None

    def saw(self, exc: BaseException) -> None:
        """A request failed with `exc`: an outage if transient, else the server answered."""
        if is_transient(exc):
            self.failed()
        else:
            self.answered()


async def send_until_answered(
    send: Callable[[], Awaitable[object]], what: str, outage: Outage | None = None
) -> ApiError | None:
    """Sends until the server takes it (None) or refuses it (its ApiError).

    Connection failures and 5xx answers are retried with backoff for as long
    as they last, so a server blip never loses what the worker sends.
    """
    outage = outage or Outage()
    backoff = Backoff()
    while True:
        try:
            await send()
            outage.answered()
            return None
        except RotaError as exc:
            outage.saw(exc)
            if not is_transient(exc):
                if isinstance(exc, ApiError):
                    return exc
                raise
            delay = backoff.next()
            log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc)
            await asyncio.sleep(delay)


@dataclass
class _Segment:
    """Output of one stream written back to back: becomes one chunk (or a few)."""

    stream: str
    parts: list[str]
    chars: int
    timestamp_ms: int


class LogShipper:
    """Batches one lease's output into sequence-numbered chunks and pushes them.

    Output is buffered as it arrives and cut into chunks at most `interval`
    after the first byte of a batch; the sequence is assigned when a batch is
    cut and a failed push resends the same batch, so the server (which drops
    any sequence it has already accepted for the lease) never stores a chunk
    twice. Output keeps arriving while a push is retried; past `high_water`
    characters the shipper reports itself congested and the runner stops
    reading the job's pipes, so a job that outpaces the server blocks instead
    of filling the worker's memory.

    Chunks and pushes stay inside the server's bounds (LOG_MAX_CHUNK_BYTES of
    at least 128 KiB, 1,000 chunks a request) whatever the output: a chunk's
    data is at most MAX_CHUNK_BYTES as JSON (a terminal's escape codes take
    six bytes each there). Once the attempt's log is full (the server's
    LOG_MAX_BYTES: a push answered with `dropped`, or 413
    `log_limit_exceeded`; the server writes the marker line into the log)
    the shipper stops: the job runs on, its output still read and dropped,
    and the worker says so once.
    """

    MAX_CHUNK_CHARS = 64 * 1024
    MAX_CHUNK_BYTES = 60 * 1024
    MAX_BATCH_BYTES = 1024 * 1024
    MAX_BATCH_CHUNKS = 500

    def __init__(
        self,
        client: Client,
        lease: Lease,
        *,
        on_lease_lost: Callable[[], None],
        interval: float = 0.1,
        high_water: int = 4 * 1024 * 1024,
        outage: Outage | None = None,
    ):
        self._client = client
        self._outage = outage
        self._lease = lease
        self._on_lease_lost = on_lease_lost
        self._interval = interval
        self._high_water = high_water
        self._pending: list[_Segment] = []
        self._pending_chars = 0
        self._next_sequence = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closing = asyncio.Event()
        self._lost = False
        self.congested = False
        # Started by the first output: most short jobs write none, and
        # then need no task at all.
        self._task: asyncio.Task[None] | None = None

    def write(self, stream: str, text: str) -> None:
        if self._lost or not text:
            return
        last = self._pending[-1] if self._pending else None
        if last is not None and last.stream == stream and last.chars < self.MAX_CHUNK_CHARS:
            last.parts.append(text)
            last.chars += len(text)
        else:
            self._pending.append(_Segment(stream, [text], len(text), _now_ms()))
        self._pending_chars += len(text)
        if self._pending_chars >= self._high_water:
            self.congested = True
            self._room.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def drained(self) -> None:
        await self._room.wait()

    async def close(self) -> None:
        """Push everything written so far (retrying while the server is away)."""
        self._closing.set()
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            try:  # let a burst of output share a request, unless the job is over
                await asyncio.wait_for(self._closing.wait(), self._interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            while self._pending and not self._lost:
                await self._push(self._cut())
            if self._closing.is_set():
                return

    def _cut(self) -> list[LogChunk]:
        chunks: list[LogChunk] = []
        size = 0
        while self._pending and size < self.MAX_BATCH_BYTES:
            segment = self._pending[0]
            pieces = list(_pieces("".join(segment.parts), self.MAX_CHUNK_BYTES))
            if chunks and len(chunks) + len(pieces) > self.MAX_BATCH_CHUNKS:
                break
            self._pending.pop(0)
            for data in pieces:
                chunks.append(
                    LogChunk(
                        workflow_id=self._lease.workflow_id,
                        job_id=self._lease.job_id,
                        sequence=self._next_sequence,
                        data=data,
                        timestamp_ms=segment.timestamp_ms,
                        stream=segment.stream,  # type: ignore[arg-type]
                    )
                )
                self._next_sequence += 1
                size += len(data)
            self._pending_chars -= segment.chars
        if self.congested and self._pending_chars < self._high_water // 2:
            self.congested = False
            self._room.set()
        return chunks

    async def _push(self, chunks: list[LogChunk]) -> None:
        answers: list[LogsAccepted] = []

        async def push() -> None:
            answers.append(await self._client.push_logs(self._lease.lease_id, chunks))

        refused = await send_until_answered(push, f"log upload for {job_name(self._lease)}", self._outage)
        if refused is None:
            if answers[-1].dropped:  # this push filled the attempt's log
                self._log_full()
            return
        if refused.status == 409:
            self._give_up()
            self._on_lease_lost()
        elif refused.status == 413 and refused.code == "log_limit_exceeded":
            self._log_full()
        else:
            log.warning("dropped %d log chunks of %s: %s", len(chunks), job_name(self._lease), refused)

    def _log_full(self) -> None:
        log.warning("log of %s reached the server's LOG_MAX_BYTES: the rest of its output is dropped (the log"
                    " ends with a line saying so); the job runs on", job_name(self._lease))
        self._give_up()

    def _give_up(self) -> None:
        """Ships nothing more: what is written from now on is dropped."""
        self._lost = True
        self._pending.clear()
        self._pending_chars = 0
        self.congested = False
        self._room.set()


def _pieces(data: str, limit: int) -> Iterator[str]:
    """`data` cut into pieces whose JSON strings are each at most `limit` bytes."""
    start = 0
    while start < len(data):
        n = min(len(data) - start, limit)
        while (size := len(msgspec.json.encode(data[start:start + n]))) > limit:
            n = max(1, n * limit // size - 1)
        yield data[start:start + n]
        start += n


def job_name(lease: Lease) -> str:
    """How log lines name a job: workflow/job. Never the lease id, which the
    worker logs only at DEBUG."""
    return f"{lease.workflow_id}/{lease.job_id}"
