"""A job's log: a lease's chunks appended within its attempt's byte budget
(LOG_MAX_BYTES), and pages of it read within a byte bound, as history or
as a stream's batches. Pages of any stream (a run's events too) are read
the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import msgspec

from .. import limits
from ..errors import PayloadTooLarge, Unprocessable
from ..models import JobLogChunk, LogChunk, LogsAccepted
from .base import StoreBase, check_size
from .leases import lease_refused

_encode = msgspec.json.encode
_chunk_decoder = msgspec.json.Decoder(JobLogChunk)
# A job's log entries' levels, least severe first (`warning` is stored as `warn`).
LOG_LEVELS = ("debug", "info", "warn", "error")


@dataclass
class Page:
    """Entries oldest first, as (stream id, data); data None for an entry a
    filter skips, so a reader still moves past it. `more`: entries remain
    beyond the page (after it, or before it when read backwards)."""

    entries: list[tuple[str, Optional[bytes]]]
    more: bool


def log_full(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        "log_limit_exceeded",
        f"this job attempt's log is full (LOG_MAX_BYTES, {limit} bytes): nothing more of it is kept; the job"
        " itself runs on", {"limit": limit})


class LogsMixin(StoreBase):
    async def append_logs(self, lease_id: str, chunks: list[LogChunk], caller: str = "*") -> LogsAccepted:
        """Chunks over LOG_MAX_CHUNK_BYTES are refused here, before any
        script runs; the attempt's budget is checked and spent in the
        script that appends: the request that fills it keeps what fits
        (`dropped` counts the rest), a later one with anything new is 413."""
        encoded = []
        for i, c in enumerate(chunks):
            c.attempt = None  # the lease says which attempt, when the chunk is read
            data = _encode(c)
            check_size(f"chunks[{i}]", data, self.log_max_chunk_bytes)
            encoded.append((c, data))
        args: list = [lease_id, caller, self.log_maxlen, self.log_max_bytes]
        for c, data in sorted(encoded, key=lambda pair: pair[0].sequence):
            args += [c.workflow_id, c.job_id, c.sequence, data]
        res = await self._call("logs", *args)
        if res[0] in ("lost", "forbidden"):
            lease_refused(res[0], lease_id)
        if res[0] == "mismatch":
            raise Unprocessable(
                "chunk_mismatch",
                "log chunks must name the lease's workflow_id and job_id",
                {"chunk": int(res[1])},
            )
        if res[0] == "full":
            raise log_full(self.log_max_bytes)
        return LogsAccepted(accepted=int(res[1]), duplicates=int(res[2]), dropped=int(res[3]))

    async def read_logs(
        self, run: str, job: str, after: str = "0-0", count: int = limits.LOG_PAGE_CHUNKS,
        attempt: Optional[int] = None, level: Optional[str] = None, *, max_bytes: int = limits.LOG_PAGE_BYTES,
        before: Optional[str] = None,
    ) -> Page:
        """A page of a job's log: after `after`, or with `before` ('' for
        the end) the page that ends there; at most `count` entries and
        `max_bytes` (at least one entry). With `attempt`, another attempt's
        entry comes as (id, None); with `level`, so does every entry but the
        job's log entries (stream `event`) of that level or above.
        Identical reads in flight share one call (a thousand tails of one job)."""
        least = LOG_LEVELS.index(level) if level is not None else None
        key = f"logs:{run}:{job}"
        backward = before is not None
        cursor = before if backward else ("" if after == "0-0" else after)
        entries, more = await self._reads.do(
            ("page", key, cursor, backward, count, max_bytes),
            lambda: self.stream_page(key, cursor, backward=backward, max_bytes=max_bytes, count=count))
        out: list[tuple[str, Optional[bytes]]] = []
        for eid, fields in entries:
            att = int(fields.get("a") or 0)
            if attempt is not None and att != attempt:
                out.append((eid, None))
                continue
            chunk = _chunk_decoder.decode(fields["c"])
            if least is not None and (chunk.level not in LOG_LEVELS or LOG_LEVELS.index(chunk.level) < least):
                out.append((eid, None))
                continue
            chunk.attempt = att
            out.append((eid, _encode(chunk)))
        return Page(out, more)
