"""Workers: registering, stopping cleanly, and how they are doing."""

from __future__ import annotations

from typing import Optional

from ..errors import NotFound
from ..models import RegisterRequest, WorkerOut
from .base import StoreBase, label_key, limit_exceeded
from .leases import worker_taken

# How long a worker that did not say how often it calls may go unseen before
# it shows offline: long-poll claims refresh it at least every 60 s.
OFFLINE_AFTER_MS = 90_000
# A prune removes at most this many workers, judged among at most this many
# (most recently seen first); its answer says when there may be more.
PRUNE_LIMIT = 1000
PRUNE_SCAN = 10_000
_PAGE = 1000


class WorkersMixin(StoreBase):
    async def register_worker(self, req: RegisterRequest, owner: str = "") -> int:
        """`owner`: the registering API token's id ('' with auth off)."""
        res = await self._call(
            "register", req.worker_id, label_key(req.labels), owner, int(req.exclusive),
            *("" if v is None else v for v in (req.concurrency, req.version, req.host,
                                               req.claim_wait_secs, req.lease_ttl_secs)),
            self.max_workers)
        if res[0] == "taken":
            raise worker_taken(req.worker_id)
        if res[0] == "limit":
            raise limit_exceeded("workers", self.max_workers)
        return int(res[1])

    async def deregister_worker(self, worker_id: str, owner: str = "") -> None:
        """`owner`: the calling token's id, which must own the worker id
        ('' with auth off, and for an admin: any worker)."""
        (outcome,) = await self._call("deregister", worker_id, owner)
        if outcome == "not_found":
            raise NotFound("worker_not_found", f"no worker {worker_id!r}")
        if outcome == "taken":
            raise worker_taken(worker_id)

    async def prune_workers(self, unseen_for_secs: Optional[int] = None) -> tuple[list[str], bool]:
        """Removes (as deregister_worker does) the workers that show offline
        or lost, or with `unseen_for_secs` those not seen for that long:
        (their ids, whether more may match than one call removes). Judged
        here, removed by a script that spares any seen meanwhile."""
        chosen: list[tuple[str, int]] = []
        offset, seen_all = 0, False
        while offset < PRUNE_SCAN and len(chosen) <= PRUNE_LIMIT:
            now, page = await self._workers_page(_PAGE, offset)
            for w in page:
                gone = (now - w.last_seen_ms >= unseen_for_secs * 1000 if unseen_for_secs is not None
                        else w.status in ("offline", "lost"))
                if gone and w.status != "stopped":
                    chosen.append((w.worker_id, w.last_seen_ms))
            offset += _PAGE
            if len(page) < _PAGE:
                seen_all = True
                break
        more = len(chosen) > PRUNE_LIMIT or not seen_all
        args = [x for worker, seen in chosen[:PRUNE_LIMIT] for x in (worker, seen)]
        removed = await self._call("prune_workers", *args) if args else []
        return list(removed), more

    async def list_workers(self, limit: int = 100, offset: int = 0) -> list[WorkerOut]:
        """Most recently seen first; three pipelined round trips a page."""
        return (await self._workers_page(limit, offset))[1]

    async def _workers_page(self, limit: int, offset: int) -> tuple[int, list[WorkerOut]]:
        """(the server's time in ms, a page of workers)."""
        ids = await self.redis.zrevrange(self.key("workers"), offset, offset + limit - 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.hkeys(self.key("plabels"))
            for w in ids:
                pipe.hgetall(self.key("worker", w))
                pipe.smembers(self.key("wleases", w))
            (now_s, now_us), paused, *rows = await pipe.execute()
        now = now_s * 1000 + now_us // 1000
        lease_ids = sorted({lid for leases in rows[1::2] for lid in leases})
        jobs = dict(zip(lease_ids, await self._lease_jobs(lease_ids)))
        out = []
        for i, worker_id in enumerate(ids):
            info, leases = rows[2 * i], rows[2 * i + 1]
            if not info:
                continue
            current = [jobs[lid] for lid in sorted(leases) if jobs.get(lid)]
            last_seen = int(info.get("last_seen", 0))
            concurrency = _int_or_none(info.get("conc"))
            labels = [x for x in info.get("labels", "").split(",") if x]
            out.append(WorkerOut(
                worker_id=worker_id,
                labels=labels,
                registered_at_ms=int(info.get("registered", 0)),
                last_seen_ms=last_seen,
                status=_worker_status(info, bool(current), last_seen, now),
                current_jobs=current,
                last_heartbeat_ms=last_seen,
                current_job=current[0] if current else None,
                exclusive=info.get("excl") == "1",
                concurrency=concurrency,
                free_slots=None if concurrency is None else max(concurrency - len(current), 0),
                version=info.get("ver") or None,
                host=info.get("host") or None,
                paused_labels=[x for x in labels if x in paused],
            ))
        return now, out

    async def _lease_jobs(self, lease_ids: list[str]) -> list[Optional[str]]:
        """`wf/job` of each lease, None for one gone meanwhile."""
        if not lease_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for lid in lease_ids:
                pipe.hmget(self.key("lease", lid), ["wf", "job"])
            rows = await pipe.execute()
        return [f"{wf}/{job}" if wf else None for wf, job in rows]


def _int_or_none(value: Optional[str]) -> Optional[int]:
    return int(value) if value else None


def _worker_status(info: dict, busy: bool, last_seen_ms: int, now_ms: int) -> str:
    """An idle worker is seen at every long-poll (each claim_wait_secs), a
    busy one at every heartbeat (a third of its lease TTL): twice the longer
    of those, plus slack, unseen, and it is gone, offline or (still holding
    leases that will expire) lost. One whose lease expired since it was last
    seen is lost at once: a live worker would have renewed it (a kill -9
    would otherwise show idle, with free slots, once its leases were gone)."""
    # Stopped, unless seen since (a removed worker that is still running).
    if info.get("stopped") and int(info["stopped"]) >= last_seen_ms:
        return "stopped"
    if int(info.get("expired") or 0) > last_seen_ms:
        return "lost"
    wait, ttl = info.get("wait"), info.get("ttl")
    if wait or ttl:
        grace_ms = 2000 * max(float(wait or 0), float(ttl or 0) / 3) + 5000
    else:
        grace_ms = OFFLINE_AFTER_MS
    if now_ms - last_seen_ms <= grace_ms:
        return "busy" if busy else "idle"
    return "lost" if busy else "offline"
