"""Dead letters: jobs that failed for good (their retries used up, a lease
expiry included, or a failure not worth retrying), newest first, until
replayed or dismissed or their run is purged."""

from __future__ import annotations

from typing import Optional

from ..errors import ApiError, NotFound
from ..models import DeadLetter, DeadLetterFilter, ReplayOutcome
from .base import StoreBase
from .runs import SCAN_LIMIT


class DeadLettersMixin(StoreBase):
    async def list_dead_letters(
        self, flt: DeadLetterFilter, limit: int = 100, cursor: Optional[str] = None
    ) -> tuple[list[DeadLetter], Optional[str]]:
        """Newest first. Dead letters are scored by a sequence: a cursor is
        the sequence of the last one looked at, exact however many failed at
        once."""
        high = "+inf" if cursor is None else f"({int(cursor)}"
        found: list[DeadLetter] = []
        scanned = 0
        last: Optional[int] = None
        while len(found) < limit and scanned < SCAN_LIMIT:
            batch = min(max(limit * 2, 100), SCAN_LIMIT - scanned)
            entries = await self.redis.zrevrangebyscore(self.key("dead"), high, "-inf", start=0, num=batch,
                                                        withscores=True)
            if not entries:
                return found, None
            async with self.redis.pipeline(transaction=False) as pipe:
                for m, _ in entries:
                    run, _, job = m.partition(":")
                    pipe.hget(self.key("run", run), "wf")
                    pipe.hmget(self.key("rj", run, job), ["lk", "err", "att", "end"])
                rows = await pipe.execute()
            for i, (m, seq) in enumerate(entries):
                scanned += 1
                last = int(seq)
                wf, (lk, err, att, end) = rows[2 * i], rows[2 * i + 1]
                labels = [x for x in (lk or "").split(",") if x]
                if wf is None or (flt.workflow_id and wf != flt.workflow_id) \
                        or (flt.label and flt.label not in labels) or (flt.error and flt.error not in (err or "")):
                    continue
                run, _, job = m.partition(":")
                found.append(DeadLetter(run_id=run, job_id=job, workflow_id=wf, failed_at_ms=int(end or 0),
                                        attempt=int(att or 0), error=err or "", required_labels=labels))
                if len(found) == limit:
                    break
            high = f"({last}"
            if len(entries) < batch and len(found) < limit:
                return found, None
        return found, str(last) if last is not None else None

    async def dismiss_dead_letter(self, run: str, job: str) -> None:
        (outcome,) = await self._call("dismiss_dead", run, job)
        if outcome == "not_found":
            raise NotFound("dead_letter_not_found", f"no dead letter for job {job!r} of run {run!r}")

    async def replay_dead_letters(self, items: list[tuple[str, str]]) -> list[ReplayOutcome]:
        """Each as the per-job retry; one whose run is going again is
        reported, not retried."""
        outcomes = []
        for run, job in items:
            try:
                await self.retry_job(run, job)  # type: ignore[attr-defined]
                outcomes.append(ReplayOutcome(run_id=run, job_id=job, outcome="retried"))
            except ApiError as exc:
                kind = {"run_active": "active", "job_succeeded": "not_retryable", "need_not_met": "blocked",
                        "job_not_found": "not_found", "run_not_found": "not_found"}.get(exc.code, "not_found")
                outcomes.append(ReplayOutcome(run_id=run, job_id=job, outcome=kind, detail=exc.message))  # type: ignore[arg-type]
        return outcomes
