"""Deciding jobs: the server's half of the cascade. A script that settles a
job's last need puts a job that must be decided (an if:, a matrix,
expressions in its job-level fields) in `deciding` and hands it back
(scripts.py's DECIDE); the process that ran it decides it here, with the
expression package, and the `decide` script records the verdict, which
may hand back more. The reaper decides what a process that died left there
(DECIDE_GRACE_MS). Deciding twice is harmless: `decide` acts only on a job
still deciding, and a cancel since the decision makes it decide again."""

from __future__ import annotations

import logging
from typing import Optional

import msgspec
from redis.exceptions import RedisError

from ..deciding import verdict as verdicts
from ..deciding.contexts import job_contexts, result, upstream_why
from ..expressions import Status
from ..limits import DECIDE_GRACE_MS, MAX_JOBS
from ..models import JobSpec
from .base import StoreBase, label_key

log = logging.getLogger("rota.deciding")
_encode = msgspec.json.encode
_spec_decoder = msgspec.json.Decoder(JobSpec)
# A decision made stale by a cancel is made again, this many times at most
# (a run cancelled twice in a row); the reaper takes it from there.
_ATTEMPTS = 3


class DecidingMixin(StoreBase):
    async def decide_all(self, pairs: list[tuple[str, str]]) -> None:
        """Decides each job, and those their verdicts hand back, in order.
        A Redis failure leaves the rest to the reaper."""
        queue = list(pairs)
        try:
            while queue:
                run, job = queue.pop(0)
                queue.extend(await self.decide_job(run, job))
        except RedisError as exc:
            log.warning("deciding %d job(s) stopped (%s); the reaper decides them within %ds",
                        len(queue) + 1, exc, DECIDE_GRACE_MS // 1000 + 1)

    async def decide_overdue(self, limit: int = 100) -> int:
        """Decides the jobs left deciding past DECIDE_GRACE_MS (their
        process died between the two scripts); returns how many."""
        now = await self.now_ms()
        members = await self.redis.zrangebyscore(self.key("deciding"), "-inf", now - DECIDE_GRACE_MS,
                                                 start=0, num=limit)
        for m in members:
            run, _, job = m.partition(":")
            try:
                pending = await self.decide_job(run, job, overdue=True)
            except RedisError as exc:
                log.warning("deciding %s/%s: %s", run, job, exc)
                continue
            await self.decide_all(pending)
        return len(members)

    async def decide_job(self, run: str, job: str, overdue: bool = False) -> list[tuple[str, str]]:
        """One job's decision. Returns the jobs its verdict leaves to decide.
        `overdue`: found in `deciding` by the reaper (the script drops a job
        no longer deciding from it)."""
        for _ in range(_ATTEMPTS):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(self.key("run", run))
                pipe.hgetall(self.key("rj", run, job))
                head, row = await pipe.execute()
            if row.get("st") != "deciding" or not head:
                if overdue:
                    await self.scripts.call_deciding("decide", run, job, 0, "none")
                return []
            cancelled = head.get("cancelled") == "1"
            args = await self._verdict(run, job, head, row, cancelled)
            reply, more = await self.scripts.call_deciding("decide", run, job, int(cancelled), *args)
            if reply[0] != "stale":
                return more
        return []

    async def _verdict(self, run: str, job: str, head: dict, row: dict, cancelled: bool) -> list:
        spec, workflow_env = await self._spec(head, job)
        if spec is None:
            return ["fail", f"job {job!r} has no spec in its run (its definition is gone)"]
        needs = [n for n in row.get("needs", "").split(",") if n]
        async with self.redis.pipeline(transaction=False) as pipe:
            for need in needs:
                pipe.hmget(self.key("rj", run, need), ["st", "out", "cf"])
            rows = await pipe.execute()
        contexts = job_contexts(head, {need: (result(st, cf), out) for need, (st, out, cf) in zip(needs, rows)})
        up = row.get("up", "")
        status = Status(success=not up and not cancelled, failure="f" in up, cancelled=cancelled)
        try:
            verdict = verdicts.decide(spec, contexts, status, workflow_env=workflow_env,
                                      taken=frozenset(head.get("jobs", "").split(",")),
                                      upstream=upstream_why(up, cancelled))
        except Exception as exc:  # a bug must fail the job, not leave it deciding forever
            log.exception("deciding %s/%s", run, job)
            verdict = verdicts.Fail(f"internal error while deciding the job: {type(exc).__name__}")
        return self._arguments(verdict)

    async def _spec(self, head: dict, job: str) -> tuple[Optional[JobSpec], dict[str, str]]:
        d = await self.definition(head["wf"], head["ver"])
        if d is not None and job in d.specs:
            return d.specs[job], d.env
        raw = await self.redis.hget(self.key("rdef", head["id"]), f"s:{job}")
        return (_spec_decoder.decode(raw) if raw else None), {}

    def _arguments(self, verdict: verdicts.Verdict) -> list:
        if isinstance(verdict, verdicts.Skip):
            return ["skip", verdict.why]
        if isinstance(verdict, verdicts.Fail):
            return ["fail", verdict.error]
        if isinstance(verdict, verdicts.Run):
            decided = verdict.decided
            return ["run", _encode(decided), label_key(decided.labels), "1" if decided.continue_on_error else ""]
        args: list = ["expand", MAX_JOBS, self.max_output_bytes, int(verdict.fail_fast), verdict.max_parallel,
                      len(verdict.combinations)]
        for job_id, decided in verdict.combinations:
            args += [job_id, _encode(decided), label_key(decided.labels), "1" if decided.continue_on_error else ""]
        return args
