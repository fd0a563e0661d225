"""Workflow definitions: create, replace, delete, and the seed's view of a
workflow (its definition with its latest run's state)."""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import dataclass
from typing import Any, Optional

import msgspec

from ..errors import Conflict, NotFound
from ..groups import has_groups, render_groups, run_contexts
from ..models import DefinitionOut, DispatchInputOut, Resolved, WorkflowOut, WorkflowSpec
from ..models.specs import ScheduleSpec
from .base import StoreBase, job_records, limit_exceeded, ms
from .views import INTERNAL_FOR, attempts, has_reports, idle_job, job_group, job_out, run_status

_encode = msgspec.json.encode
# An ambiguous name's refusal lists at most this many of its workflows.
NAMED_SHOWN = 10
# A document as submitted is kept for GET .../definition only, and a
# workflow's jobs repeat each other: deflated (as base64, the client reads
# text) it takes a fraction of the room in Redis. The mark cannot begin a
# document: JSON and YAML both refuse a NUL anywhere in their text.
PACKED = "\x00z"
PACK_FROM = 256  # shorter documents are kept as they came


def packed_document(text: str) -> str:
    if len(text) < PACK_FROM:
        return text
    packed = PACKED + base64.b64encode(zlib.compress(text.encode(), 6)).decode()
    return packed if len(packed) < len(text) else text


def unpacked_document(stored: str) -> str:
    """As submitted, whether kept packed or (by an older version, or short) as is."""
    if not stored.startswith(PACKED):
        return stored
    return zlib.decompress(base64.b64decode(stored[len(PACKED):])).decode()


# Fields added to WorkflowSpec after definitions were stored: left out of
# the hash while empty, so a definition without them keeps its version (a
# job's are left out by its spec's omit_defaults).
_LATER_FIELDS = ("schedules", "inputs", "env", "run_name", "concurrency")


def definition_version(spec: WorkflowSpec) -> str:
    """A definition's content hash: the same document is the same version."""
    fields = msgspec.structs.asdict(spec)  # the jobs stay structs, encoded as ever
    for name in _LATER_FIELDS:
        if not fields[name]:
            del fields[name]
    return hashlib.sha1(_encode(fields)).hexdigest()[:16]


def schedule_fields(entry: ScheduleSpec) -> dict:
    """A schedule as the scripts keep it (see _schedules.lua); `spec` is
    the entry as text, so a changed entry is told from an unchanged one."""
    return {"cron": entry.cron, "tz": entry.timezone, "cu": entry.catch_up, "ov": entry.overlap,
            "spec": f"{entry.cron}|{entry.timezone}|{entry.catch_up}|{entry.overlap}"}


@dataclass(frozen=True)
class Defined:
    outcome: str  # created | updated | unchanged | replayed | idem_reused
    workflow_id: str
    run_id: Optional[str]  # the run started with it, if one was


class WorkflowsMixin(StoreBase):
    async def define_workflow(
        self,
        spec: WorkflowSpec,
        workflow_id: str,
        *,
        kind: str = "oneoff",
        document: str = "",
        start_run: Optional[str] = None,
        triggered_by: str = "api",
        inputs: Optional[dict[str, Any]] = None,
        tags: Optional[dict[str, str]] = None,
        idempotency_key: str = "",
        request_hash: str = "",
        owner: str = "",
    ) -> Defined:
        """Creates or replaces a definition (kind: oneoff for a POSTed one,
        put, file); with `start_run` (a run id) also starts that run of it,
        in the same atomic step. An idempotency key matches a retry only of
        the same request (`request_hash`), and is kept only when the
        request created or changed something. `owner`: the calling API
        token's id ('' with auth off), whose caps a new one-off workflow and
        a kept key count against."""
        grouped = has_groups(spec.concurrency, spec.jobs)
        control = ""
        if start_run is not None and grouped:
            contexts = run_contexts(start_run, workflow_id, triggered_by, inputs or {}, tags or {})
            rendered = render_groups(spec.concurrency, {j.id: j for j in spec.jobs}, contexts)
            control = _encode(rendered).decode() if rendered else ""
        args: list = [
            workflow_id, spec.name, spec.trigger, definition_version(spec), kind, packed_document(document),
            idempotency_key, request_hash, self.idempotency_ttl_secs,
            int(start_run is not None), start_run or "", triggered_by,
            _encode(inputs or {}), _encode(tags or {}), self.retention_secs, len(spec.jobs),
            owner, self.max_oneoffs, self.max_idempotency_keys,
            _encode([schedule_fields(entry) for entry in spec.schedules]), _encode(spec.inputs),
            _encode(spec.env) if spec.env else "", spec.run_name or "",
            control, "1" if grouped else "", _encode(spec.concurrency) if spec.concurrency else "",
        ]
        res = await self._call("define", *args, *job_records(spec.jobs, bool(spec.env)))
        if res[0] == "limit":
            raise limit_exceeded(res[1], res[2])
        outcome, wf, run = res
        if outcome == "deleting":
            raise Conflict("workflow_deleting", f"workflow {workflow_id!r} is being deleted")
        if run and outcome not in ("replayed", "idem_reused"):
            await self.name_run(run)  # type: ignore[attr-defined]
        return Defined(outcome, wf, run or None)

    async def create_workflow(
        self, spec: WorkflowSpec, workflow_id: str, *, run: bool = False, idempotency_key: str = "",
        upsert: bool = False,
    ) -> tuple[str, str]:
        """The seed's create (a one-off, optionally started) or, with
        `upsert`, a WORKFLOWS_DIR file's. Returns (outcome, workflow id)."""
        import uuid

        defined = await self.define_workflow(
            spec, workflow_id, kind="file" if upsert else "oneoff",
            start_run=str(uuid.uuid4()) if run else None, idempotency_key=idempotency_key,
            request_hash=f"{definition_version(spec)}:{int(run)}")
        return defined.outcome, defined.workflow_id

    async def delete_workflow(self, wf: str) -> None:
        """Deletes a definition with its finished runs (a batch per script)."""
        while True:
            (outcome,) = await self._call("delete_workflow", wf, 100)
            if outcome == "not_found":
                raise NotFound("workflow_not_found", f"no workflow {wf!r}")
            if outcome == "active":
                raise Conflict("workflow_active", f"workflow {wf!r} has a run in progress; cancel it first")
            if outcome == "ok":
                return

    async def get_definition(self, wf: str) -> DefinitionOut:
        head = await self.redis.hgetall(self.key("wf", wf))
        if not head:
            raise NotFound("workflow_not_found", f"no workflow {wf!r}")
        document = unpacked_document(await self.redis.get(self.key("doc", wf, head["ver"])) or "")
        found = await self.definition(wf, head["ver"])
        inputs = [DispatchInputOut(name=name, type=spec.type, description=spec.description, required=spec.required,
                                   default=spec.default, options=list(spec.options))
                  for name, spec in (found.inputs if found else {}).items()]
        return DefinitionOut(id=wf, name=head["name"], version=head["ver"], kind=head["kind"],  # type: ignore[arg-type]
                             document=document, created_at_ms=int(head["created"]),
                             updated_at_ms=int(head.get("updated") or head["created"]), inputs=inputs)

    async def latest_run(self, wf: str) -> Optional[str]:
        """The workflow's latest run, None if it never ran; 404 if no such workflow."""
        head = await self.redis.hmget(self.key("wf", wf), ["ver", "last"])
        if head[0] is None:
            raise NotFound("workflow_not_found", f"no workflow {wf!r}")
        return head[1] or None

    async def resolve(self, ref: str) -> Resolved:
        """What `ref` names: a run, else a workflow (by id), else the one
        one-off workflow of that name. 404 for nothing; 409 for a name that
        several one-offs share."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.key("run", ref), "wf")
            pipe.hmget(self.key("wf", ref), ["ver", "last"])
            pipe.zrevrange(self.key("named", ref), 0, NAMED_SHOWN - 1)
            pipe.zcard(self.key("named", ref))
            run_wf, (ver, last), named, count = await pipe.execute()
        if run_wf is not None:
            return Resolved(kind="run", workflow_id=run_wf, run_id=ref, matched="run_id")
        if ver is not None:
            return Resolved(kind="workflow", workflow_id=ref, run_id=last or None, matched="workflow_id")
        if count > 1:
            shown = ", ".join(named) + (f" and {count - len(named)} more" if count > len(named) else "")
            raise Conflict("ambiguous_name", f"{count} one-off workflows are named {ref!r}: {shown};"
                           " name one by its id", {"workflow_ids": named, "count": count})
        if count == 1:
            (wf,) = named
            last = await self.redis.hget(self.key("wf", wf), "last")
            return Resolved(kind="workflow", workflow_id=wf, run_id=last or None, matched="name")
        raise NotFound("ref_not_found", f"no run or workflow {ref!r}, nor a one-off workflow of that name",
                       {"ref": ref})

    async def workflow_label(self, wf: str) -> str:
        """How log lines name a workflow: its id, or a one-off's name (its
        id is a UUID nobody reads)."""
        name, kind = await self.redis.hmget(self.key("wf", wf), ["name", "kind"])
        return name if kind == "oneoff" and name else wf

    async def get_workflow(self, wf: str) -> WorkflowOut:
        found = await self._load_workflows([wf])
        if not found:
            raise NotFound("workflow_not_found", f"no workflow {wf!r}")
        return found[0]

    async def _load_workflows(self, ids: list[str], max_jobs: Optional[int] = None) -> list[WorkflowOut]:
        """Three pipelined round trips for any number of workflows (a fourth
        when jobs reported steps or annotations); ids that no longer exist
        are left out. With `max_jobs`, the list stops before the workflow
        that would pass that many jobs in all (but always holds the first)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for wf in ids:
                pipe.hgetall(self.key("wf", wf))
            heads = [h for h in await pipe.execute() if h]
        async with self.redis.pipeline(transaction=False) as pipe:
            for head in heads:
                pipe.hgetall(self.key("run", head["last"])) if head.get("last") else pipe.exists("-")
            runs = [r if isinstance(r, dict) and r else None for r in await pipe.execute()]
        definitions = [await self.definition(head["id"], run["ver"] if run else head["ver"])
                       for head, run in zip(heads, runs)]
        spawned = {run["id"]: await self.run_specs(run) for run in runs if run and run.get("spawned")}
        decided = {run["id"]: await self.decided(run) for run in runs if run and run.get("hdec")}  # type: ignore[attr-defined]
        if max_jobs is not None:
            total = 0
            for i, d in enumerate(definitions):
                total += len(d.jobs) if d else 0
                if total > max_jobs and i > 0:
                    heads, runs, definitions = heads[:i], runs[:i], definitions[:i]
                    break
        # Each job's record and attempts, then the steps and annotations of
        # those that reported any: the jobs as the run's own view shows them.
        async with self.redis.pipeline(transaction=False) as pipe:
            for run in runs:
                for job in (run["jobs"].split(",") if run else []):
                    pipe.hgetall(self.key("rj", run["id"], job))
                    pipe.hgetall(self.key("att", run["id"], job))
            flat = await pipe.execute()
        rows = iter(zip(flat[::2], flat[1::2]))
        by_run = [{job: next(rows) for job in run["jobs"].split(",")} if run else {} for run in runs]
        reported = [(run["id"], job) for run, jobs in zip(runs, by_run) if run
                    for job, (row, _) in jobs.items() if has_reports(row)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id, job in reported:
                pipe.hgetall(self.key("steps", run_id, job))
                pipe.hgetall(self.key("ann", run_id, job))
            got = await pipe.execute() if reported else []
        found = {key: (got[2 * i], got[2 * i + 1]) for i, key in enumerate(reported)}
        out = []
        for head, run, d, jobs_of in zip(heads, runs, definitions, by_run):
            specs = spawned.get(run["id"], d.specs if d else {}) if run else (d.specs if d else {})
            if run is None:
                jobs = [idle_job(specs[j]) for j in (d.jobs if d else []) if j in specs]
            else:
                rendered = decided.get(run["id"], {})
                jobs = [job_out(j, row, specs.get(row.get("tpl") or j), attempts(tries, row), found.get((run["id"], j)),
                                rendered.get(j), group=job_group(run, j))
                        for j, (row, tries) in jobs_of.items()]
            out.append(WorkflowOut(
                id=head["id"], name=head["name"], trigger=head.get("trigger", ""),
                status=run_status(run) if run else "idle",  # type: ignore[arg-type]
                jobs=jobs, created_at_ms=int(head["created"]), runs=int(head.get("runs") or 0),
                started_at_ms=ms(run.get("started_ms")) if run else None,
                finished_at_ms=ms(run.get("finished_ms")) if run else None,
                version=head.get("ver"), kind=head.get("kind"),  # type: ignore[arg-type]
                latest_run_id=run["id"] if run else None,
                latest_run_number=int(run["num"]) if run else None,
                active_runs=int(head.get("active") or 0),
                updated_at_ms=ms(head.get("updated")),
                schedules=int(head.get("nsched") or 0),
                paused=head.get("paused") or None,  # type: ignore[arg-type]
                paused_at_ms=ms(head.get("paused_ms")),
            ))
        return out

    async def list_workflows(
        self, limit: int = 100, offset: int = 0, status: Optional[str] = None, max_jobs: Optional[int] = None
    ) -> list[WorkflowOut]:
        """Newest first. `status` (seed 002): a job of the latest run in it
        (`queued` also lists the workflows that never ran)."""
        if status is None:
            ids = await self.redis.zrevrange(self.key("wfs"), offset, offset + limit - 1)
        else:
            ids = await self._ids_with_job_status(status, limit, offset)
        return await self._load_workflows(ids, max_jobs)

    async def _ids_with_job_status(self, status: str, limit: int, offset: int) -> list[str]:
        fields = [f"n:{st}" for st in INTERNAL_FOR[status]]
        matched: list[str] = []
        start, page = 0, 500
        while len(matched) < offset + limit:
            ids = await self.redis.zrevrange(self.key("wfs"), start, start + page - 1)
            if not ids:
                break
            async with self.redis.pipeline(transaction=False) as pipe:
                for wf in ids:
                    pipe.hget(self.key("wf", wf), "last")
                lasts = await pipe.execute()
            async with self.redis.pipeline(transaction=False) as pipe:
                for last in lasts:
                    pipe.hmget(self.key("run", last or "-"), fields)
                counts = await pipe.execute()
            # A workflow that never ran shows its jobs queued (idle_job), so
            # the seed's filter lists it as queued too.
            matched += [wf for wf, last, c in zip(ids, lasts, counts)
                        if (not last and status == "queued") or sum(int(x or 0) for x in c) > 0]
            start += page
        return matched[offset:offset + limit]
