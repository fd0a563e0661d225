"""The ready queues as an operator sees them: jobs per label set, the
longest wait, and who can serve each. Plain pipelined reads, bounded:
MAX_QUEUES label sets, a few entries per priority, the first 1,000 workers."""

from __future__ import annotations

from typing import Optional

from .. import limits
from ..models import QueuedRef, QueueOut, QueuesPage, WorkerOut
from .base import StoreBase

MAX_QUEUES = limits.MAX_QUEUES_LISTED
# A ready queue is scored (100 - priority) * 2^42 + an enqueue sequence
# (_ready.lua): one band per priority, oldest first within it.
_BAND = 4398046511104
# Entries read at the head of each band (handed-back jobs go to its front
# with a fresh enqueue time), and bands walked per queue.
_HEAD = 4
_MAX_BANDS = 16
_WORKERS_SHOWN = 20


def live_workers(workers: list[WorkerOut]) -> list[WorkerOut]:
    """Those that may claim now (a lost, offline or stopped one will not)."""
    return [w for w in workers if w.status in ("idle", "busy")]


def _serves(worker: WorkerOut, labels: set[str]) -> bool:
    """As _ready.lua's claim: every label the job needs, and an exclusive
    worker never takes a job that needs none."""
    return labels <= set(worker.labels) and not (worker.exclusive and not labels)


class QueuesMixin(StoreBase):
    async def list_queues(self, live: Optional[list[WorkerOut]] = None) -> QueuesPage:
        """`live`: the live workers, when the caller has read them (else
        the first 1,000 workers are read)."""
        keys, truncated = await self._label_keys()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.hkeys(self.key("plabels"))
            for lk in keys:
                pipe.zcard(self.key("ready", lk))
            (now_s, now_us), paused, *counts = await pipe.execute()
        heads = await self._band_heads(keys)
        members = sorted({m for found in heads.values() for m in found})
        async with self.redis.pipeline(transaction=False) as pipe:
            for m in members:
                run, _, job = m.partition(":")
                pipe.hget(self.key("rj", run, job), "enq")
            enqueued = dict(zip(members, await pipe.execute()))
        if live is None:
            live = live_workers(await self.list_workers(1000, 0))  # type: ignore[attr-defined]
        out = []
        for lk, ready in zip(keys, counts):
            if not ready:
                continue  # emptied between the reads
            labels = [x for x in lk.split(",") if x]
            serving = [w for w in live if _serves(w, set(labels))]
            held = [x for x in labels if x in paused]
            out.append(QueueOut(
                labels=labels, ready=int(ready), oldest=_oldest(heads.get(lk, []), enqueued),
                workers=sorted(w.worker_id for w in serving)[:_WORKERS_SHOWN], live_workers=len(serving),
                free_slots=sum(w.free_slots or 0 for w in serving), paused=bool(held), paused_labels=held))
        out.sort(key=lambda q: (-q.ready, q.labels))
        return QueuesPage(queues=out, now_ms=now_s * 1000 + now_us // 1000, truncated=truncated)

    async def _label_keys(self) -> tuple[list[str], bool]:
        """The non-empty label sets, those claims may take from and those a
        paused label holds back (plsets), MAX_QUEUES at most (SSCAN: never
        one unbounded reply), and whether there were more."""
        found: list[str] = []
        more = False
        for index in ("labelsets", "plsets"):
            cursor = 0
            while True:
                cursor, batch = await self.redis.sscan(self.key(index), cursor, count=500)
                found.extend(batch)
                if cursor == 0 or len(found) > MAX_QUEUES:
                    break
            more = more or cursor != 0
        unique = sorted(set(found))
        return unique[:MAX_QUEUES], len(unique) > MAX_QUEUES or more

    async def _band_heads(self, keys: list[str]) -> dict[str, list[str]]:
        """The first few members of each priority band of each queue, all
        queues at once: one pipelined round trip per band."""
        heads: dict[str, list[str]] = {lk: [] for lk in keys}
        walking = {lk: 0.0 for lk in keys}  # the lowest score left to look at
        for _ in range(_MAX_BANDS):
            if not walking:
                break
            order = list(walking)
            async with self.redis.pipeline(transaction=False) as pipe:
                for lk in order:
                    pipe.zrangebyscore(self.key("ready", lk), walking[lk], "+inf", start=0, num=_HEAD,
                                       withscores=True)
                got = await pipe.execute()
            for lk, entries in zip(order, got):
                band = None
                for member, score in entries:
                    b = int(score) // _BAND
                    if band is None:
                        band = b
                    if b == band:
                        heads[lk].append(member)
                if band is None:
                    del walking[lk]
                else:
                    walking[lk] = float((band + 1) * _BAND)
        return heads


def _oldest(members: list[str], enqueued: dict[str, Optional[str]]) -> Optional[QueuedRef]:
    best: Optional[QueuedRef] = None
    for m in members:
        at = int(enqueued.get(m) or 0)
        if at and (best is None or at < best.enqueued_at_ms):
            run, _, job = m.partition(":")
            best = QueuedRef(run_id=run, job_id=job, enqueued_at_ms=at)
    return best
