"""Runs: each start of a workflow, with its jobs, their attempts and its
events; cancelling and retrying them, and finding them (starting them is
starts.py's)."""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import msgspec

from .. import limits
from ..deciding.contexts import run_context, values
from ..errors import Conflict, NotFound
from ..expressions import EvaluationError
from ..expressions.resolve import Budget, Renderer
from ..limits import MAX_NAME_CHARS
from ..models import EventOut, JobOut, RunFilter, RunOut
from .base import StoreBase
from .views import attempts, decided_fields, has_reports, job_group, job_out, notes, run_out, run_status

log = logging.getLogger("rota.runs")
_event_decoder = msgspec.json.Decoder(dict)


def _event_out(eid: str, fields: dict) -> EventOut:
    record = _event_decoder.decode(fields["e"])
    raw = record.pop("raw", None)
    record.setdefault("level", _level(record))
    return EventOut(id=eid, data=msgspec.json.decode(raw) if raw else None, message=_message(record), **record)


# A filtered listing looks at most this many runs per call, then answers
# what it found with a cursor to go on from: a page is bounded work.
SCAN_LIMIT = 10_000


def _not_found(run: str) -> NotFound:
    return NotFound("run_not_found", f"no run {run!r}")


class RunsMixin(StoreBase):
    # ---- marks, naming, cancelling, retrying ---------------------------------------

    async def set_debug(self, run: str, on: bool) -> None:
        (outcome,) = await self._call("run_mark", run, "debug", int(on))
        if outcome == "not_found":
            raise _not_found(run)

    async def reset_idempotency_key(self, run: str) -> None:
        (outcome,) = await self._call("run_mark", run, "unidem")
        if outcome == "not_found":
            raise _not_found(run)
        if outcome == "no_key":
            raise Conflict("no_idempotency_key", f"run {run!r} was started without an Idempotency-Key")

    async def name_run(self, run: str) -> None:
        """Renders the run's run-name (its definition's) now that the run has
        a number; a name that cannot be rendered leaves the workflow's."""
        head = await self.redis.hgetall(self.key("run", run))
        d = await self.definition(head["wf"], head["ver"]) if head else None
        if d is None or not d.run_name:
            return
        try:
            name = Renderer({"inputs": values(head.get("inputs")), "run": run_context(head)}, Budget()).text(
                d.run_name)
        except EvaluationError as err:
            log.warning("run %s: its run-name cannot be rendered (%s); it keeps the workflow's name", run,
                        err.message)
            return
        name = " ".join(name.split()) or head.get("name", "")
        await self._call("name_run", run, name if len(name) <= MAX_NAME_CHARS else name[:MAX_NAME_CHARS - 1] + "…")

    async def cancel_run(self, run: str) -> bool:
        """True when something was cancelled; False for a finished run."""
        (outcome,) = await self._call("cancel_run", run)
        if outcome == "not_found":
            raise _not_found(run)
        return outcome == "ok"

    async def cancel_workflow(self, wf: str) -> bool:
        """Seed 002's cancel: the latest run's."""
        run = await self.latest_run(wf)  # type: ignore[attr-defined]
        return await self.cancel_run(run) if run else False

    async def cancel_job(self, run: str, job: str) -> bool:
        outcome = (await self._call("cancel_job", run, job))[0]
        if outcome == "not_found":
            raise NotFound("job_not_found", f"no job {job!r} in run {run!r}")
        return outcome == "ok"

    async def retry_run(self, run: str) -> int:
        """Jobs put back: the failed, cancelled and skipped ones of a finished run."""
        res = await self._call("retry_run", run)
        if res[0] == "not_found":
            raise _not_found(run)
        if res[0] == "active":
            raise Conflict("run_active", f"run {run!r} is still going; retry it once it has finished")
        return int(res[1]) if res[0] == "ok" else 0

    async def retry_job(self, run: str, job: str) -> int:
        res = await self._call("retry_job", run, job)
        if res[0] == "not_found":
            raise NotFound("job_not_found", f"no job {job!r} in run {run!r}")
        if res[0] == "active":
            raise Conflict("run_active", f"run {run!r} is still going; retry its jobs once it has finished")
        if res[0] == "not_retryable":
            raise Conflict("job_succeeded", f"job {job!r} succeeded; only failed, cancelled or skipped jobs retry",
                           {"status": res[1]})
        if res[0] == "blocked":
            raise Conflict("need_not_met", f"job {job!r} needs {res[1]!r}, which did not succeed ({res[2]});"
                           " retry that one (its skipped jobs follow)", {"need": res[1], "status": res[2]})
        return int(res[1])

    # ---- reading --------------------------------------------------------------------

    async def run_head(self, run: str) -> dict:
        head = await self.redis.hgetall(self.key("run", run))
        if not head:
            raise _not_found(run)
        return head

    async def get_run(self, run: str) -> RunOut:
        """The run, its jobs and their attempts: two pipelined round trips,
        a third when jobs reported steps or annotations or the run has notes."""
        head = await self.run_head(run)
        jobs = head["jobs"].split(",")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.key("wf", head["wf"]), "name")
            for job in jobs:
                pipe.hgetall(self.key("rj", run, job))
                pipe.hgetall(self.key("att", run, job))
            pipe.hgetall(self.key("rmeta", run))
            name, *rows, meta = await pipe.execute()
        specs = await self.run_specs(head)
        reports = await self._reports(run, {job: rows[2 * i] for i, job in enumerate(jobs)})
        decided = await self.decided(head)
        out = [job_out(job, rows[2 * i], specs.get(rows[2 * i].get("tpl") or job), attempts(rows[2 * i + 1], rows[2 * i]),
                       reports.get(job), decided.get(job), group=job_group(head, job))
               for i, job in enumerate(jobs)]
        found = run_out(head, out, await self._notes(head), meta)
        found.workflow_name = name
        return found

    async def run_records(self, runs: list[str]) -> list[tuple[dict, dict[str, dict], dict[str, str]]]:
        """(head, {job: its record}, metadata) of each run that exists, in
        two pipelined round trips however many runs: what a view of runs
        beyond their heads (Strait's) reads."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for run in runs:
                pipe.hgetall(self.key("run", run))
                pipe.hgetall(self.key("rmeta", run))
            got = await pipe.execute()
        found = [(head, meta) for head, meta in zip(got[::2], got[1::2]) if head]
        async with self.redis.pipeline(transaction=False) as pipe:
            for head, _ in found:
                for job in head["jobs"].split(","):
                    pipe.hgetall(self.key("rj", head["id"], job))
            rows = iter(await pipe.execute())
        return [(head, {job: next(rows) for job in head["jobs"].split(",")}, meta) for head, meta in found]

    async def decided(self, head: dict) -> dict:
        """The run's decided jobs' rendered fields (none read unless it has some)."""
        if not head.get("hdec"):
            return {}
        return decided_fields(await self.redis.hgetall(self.key("jdec", head["id"])))

    async def run_job(self, run: str, job: str) -> tuple[dict, JobOut]:
        """(what it read of the run's head: id, wf, ver, spawned; the job with
        its attempts and reports). One round trip, a second when the job
        reported steps or annotations: a thousand log tails ending at once
        each read this, so not the run's whole head (its list of jobs)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.key("run", run), ["wf", "ver", "spawned", "hdec", f"jg:{job}"])
            pipe.hgetall(self.key("rj", run, job))
            pipe.hgetall(self.key("att", run, job))
            (wf, ver, spawned, hdec, group), row, tries = await pipe.execute()
        if wf is None:
            raise _not_found(run)
        if not row:
            raise NotFound("job_not_found", f"no job {job!r} in run {run!r}")
        # a matrix combination's spec is its matrix job's
        spec = await self.job_spec(run, wf, ver, bool(spawned), row.get("tpl") or job)
        reports = await self._reports(run, {job: row})
        decided = None
        if hdec and row.get("dec"):
            raw = await self.redis.hget(self.key("jdec", run), job)
            decided = decided_fields({job: raw})[job] if raw else None
        head = {"id": run, "wf": wf, "ver": ver, "spawned": spawned or ""}
        if group:
            head[f"jg:{job}"] = group
        return head, job_out(job, row, spec, attempts(tries, row), reports.get(job), decided, group=job_group(head, job))

    async def _reports(self, run: str, rows: dict[str, dict]) -> dict[str, tuple[dict, dict]]:
        """The steps and annotations of the jobs that reported any."""
        jobs = [job for job, row in rows.items() if has_reports(row)]
        if not jobs:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.hgetall(self.key("steps", run, job))
                pipe.hgetall(self.key("ann", run, job))
            got = await pipe.execute()
        return {job: (got[2 * i], got[2 * i + 1]) for i, job in enumerate(jobs)}

    async def _notes(self, head: dict) -> list:
        return notes(await self.redis.hgetall(self.key("notes", head["id"]))) if head.get("hnotes") else []

    async def run_notes(self, head: dict) -> list:
        """The run's notes, oldest first (`head`: its run_head())."""
        return await self._notes(head)

    async def job_rows(self, run: str, jobs: list[str]) -> list[dict]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.hgetall(self.key("rj", run, job))
            return await pipe.execute()

    async def job_state(self, run: str, job: str) -> JobOut:
        """A job's state alone (what a log tail watches); identical reads in
        flight share one round trip."""
        key = self.key("rj", run, job)
        row = await self._reads.do(("hgetall", key), lambda: self.redis.hgetall(key))
        if not row:
            raise NotFound("job_not_found", f"no job {job!r} in run {run!r}")
        return job_out(job, row, None)

    async def lease_held(self, run: str, job: str) -> bool:
        """Whether a worker still holds the job's last lease (a cancelled job
        keeps it until its worker reports or the lease expires)."""
        lid = await self.redis.hget(self.key("rj", run, job), "lease")
        return bool(lid) and bool(await self.redis.exists(self.key("lease", lid)))

    async def is_cancelled(self, run: str, job: str) -> bool:
        st = await self.redis.hget(self.key("rj", run, job), "st")
        if st is None:
            raise NotFound("job_not_found", f"no job {job!r} in run {run!r}")
        return st == "cancelled"

    async def events(self, run: str, after: str = "0-0", count: int = 1000) -> list[EventOut]:
        return [_event_out(eid, fields) for eid, fields in await self._xread(self.key("ev", run), after, count)]

    async def events_page(self, run: str, after: str, max_bytes: int, count: int) -> tuple[list[EventOut], bool]:
        """A run's events after `after`, within `max_bytes` (see stream_page); and whether more follow."""
        entries, more = await self.stream_page(f"ev:{run}", "" if after == "0-0" else after, max_bytes=max_bytes,
                                               count=count, entry_bytes=limits.MAX_EVENT_PAYLOAD_BYTES)
        return [_event_out(eid, fields) for eid, fields in entries], more

    async def run_finished(self, run: str) -> bool:
        return await self.redis.hget(self.key("run", run), "state") == "done"

    # ---- listing ----------------------------------------------------------------------

    async def list_runs(
        self, flt: RunFilter, limit: int = 100, cursor: Optional[str] = None,
        keep: Optional[Callable[[dict], bool]] = None,
    ) -> tuple[list[RunOut], Optional[str]]:
        """Newest first, by a global sequence: a cursor is the sequence of the
        last run looked at, so runs created meanwhile never shift a page.
        Filters are applied while scanning; a call looks at SCAN_LIMIT runs
        at most, and answers a cursor to go on from. `keep`: a further test
        of each run's head (its metadata as `head["meta"]` when the filter
        names some)."""
        index = self.key("wfruns", flt.workflow_id) if flt.workflow_id else self.key("runs")
        by_meta = bool(flt.annotations) or flt.annotation_value is not None
        high: str = "+inf" if cursor is None else f"({int(cursor)}"
        found: list[RunOut] = []
        scanned = 0
        last_seq: Optional[int] = None
        while len(found) < limit and scanned < SCAN_LIMIT:
            batch = min(max(limit * 2, 100), SCAN_LIMIT - scanned)
            ids = await self.redis.zrevrangebyscore(index, high, "-inf", start=0, num=batch, withscores=True)
            if not ids:
                return await self._named(found), None
            async with self.redis.pipeline(transaction=False) as pipe:
                for run, _ in ids:
                    pipe.hgetall(self.key("run", run))
                    if by_meta:
                        pipe.hgetall(self.key("rmeta", run))
                rows = await pipe.execute()
            step = 2 if by_meta else 1
            heads = rows[::step]
            if by_meta:
                for head, meta in zip(heads, rows[1::2]):
                    head["meta"] = meta
            for (_, seq), head in zip(ids, heads):
                scanned += 1
                last_seq = int(seq)
                if head and _matches(head, flt) and (keep is None or keep(head)) \
                        and await self._matches_jobs(head, flt):
                    found.append(run_out(head))
                    if len(found) == limit:
                        break
            high = f"({last_seq}"
            if len(ids) < batch and len(found) < limit:
                return await self._named(found), None
        return await self._named(found), str(last_seq) if last_seq is not None else None

    async def _named(self, runs: list[RunOut]) -> list[RunOut]:
        """Each run with its workflow's name (a one-off's id is a UUID)."""
        wfs = sorted({r.workflow_id for r in runs})
        if wfs:
            async with self.redis.pipeline(transaction=False) as pipe:
                for wf in wfs:
                    pipe.hget(self.key("wf", wf), "name")
                names = dict(zip(wfs, await pipe.execute()))
            for r in runs:
                r.workflow_name = names.get(r.workflow_id)
        return runs

    async def _matches_jobs(self, head: dict, flt: RunFilter) -> bool:
        """The filters that read the run's definition (kept decoded per
        process, so a scan reads each version once)."""
        if flt.label is None and flt.q is None:
            return True
        d = await self.definition(head["wf"], head["ver"])
        specs = list(d.specs.values()) if d else []
        if flt.label is not None and not any(flt.label in spec.labels for spec in specs):
            return False
        if flt.q is not None:
            q = flt.q.lower()
            texts = [head["id"], head["wf"], d.name if d else ""]
            texts += [t for spec in specs for t in (spec.id, spec.name)]
            return any(q in t.lower() for t in texts)
        return True


_WARNED = ("retrying", "handed back")


def _level(e: dict) -> str:
    """An event's level (a log entry's is its own, kept with it)."""
    if e.get("status") == "failure":
        return "error"
    if e.get("status") in ("skipped", "cancelled") or str(e.get("detail", "")).startswith(_WARNED):
        return "warn"
    return "info"


def _message(e: dict) -> str:
    kind, detail = e.get("type"), e.get("detail") or ""
    if kind in ("job", "run"):
        who = f"job {e.get('job_id')}" if kind == "job" else "run"
        return f"{who} {e.get('status')}" + (f": {detail}" if detail else "")
    return detail or str(kind)


def _decode_map(raw: Optional[str]) -> dict:
    return msgspec.json.decode(raw) if raw else {}


def contains(doc: Any, part: Any) -> bool:
    """JSON containment, as PostgreSQL's jsonb `@>` (Strait's
    payload_contains): an object contains each key of `part` with a value
    that contains that key's; an array contains each element of `part`
    somewhere in it; anything else is equal."""
    if isinstance(part, dict):
        return isinstance(doc, dict) and all(k in doc and contains(doc[k], v) for k, v in part.items())
    if isinstance(part, list):
        return isinstance(doc, list) and all(any(contains(d, p) for d in doc) for p in part)
    if isinstance(part, bool) or isinstance(doc, bool):
        return doc is part
    return doc == part and type(doc) in (int, float, str, type(None)) and type(part) in (int, float, str, type(None))


def _matches(head: dict, flt: RunFilter) -> bool:
    if flt.triggered_by and head.get("by") != flt.triggered_by:
        return False
    if flt.batch_id and head.get("batch") != flt.batch_id:
        return False
    if flt.annotations or flt.annotation_value is not None:
        meta = head.get("meta") or {}
        if any(k not in meta or (v is not None and meta[k] != v) for k, v in flt.annotations.items()):
            return False
        if flt.annotation_value is not None and flt.annotation_value not in meta.values():
            return False
    if flt.inputs_contain is not None and not contains(_decode_map(head.get("inputs")), flt.inputs_contain):
        return False
    created = int(head.get("created") or 0)
    if flt.created_after is not None and created <= flt.created_after:
        return False
    if flt.created_before is not None and created >= flt.created_before:
        return False
    if flt.status and run_status(head) != flt.status:
        return False
    if flt.tags:
        tags = msgspec.json.decode(head["tags"]) if head.get("tags") else {}
        if any(tags.get(k) != v for k, v in flt.tags.items()):
            return False
    return True
