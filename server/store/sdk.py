"""The in-job SDK's state changes and reads: what a running job reports
(progress, log entries, steps, checkpoints, annotations, outputs, resource
samples), the run state its jobs share, the jobs it spawns, and its waits
for an event; and the operator's side: firing events, approving gates,
reading checkpoints, state and child runs.

Every call is scoped to one lease, checked in its script like a heartbeat
(an ended lease changes and reads nothing). Sizes are checked here, on the
encoded JSON, before any script runs; counts that depend on what is stored
(state keys, annotations, notes, a run's jobs) are checked in the script.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from .. import limits
from ..errors import Conflict, NotAllowed, NotFound, Unprocessable
from ..models import (
    CheckpointOut, ChildRun, JobSpec, LogEntry, Note, Payload, ProgressUpdate, ResourceSample, RunOut, StepUpdate,
    StructuredOutput,
)
from .base import StoreBase, check_size, digest, job_meta
from .leases import lease_refused
from .logs import LOG_LEVELS, log_full
from .starts import START_TRIES, When, checked_inputs, control_args, paused_refusal
from .views import WIRE_STATUS, outputs, run_out

_encode = msgspec.json.encode
_checkpoint_decoder = msgspec.json.Decoder(CheckpointOut)
_output_decoder = msgspec.json.Decoder(StructuredOutput)
_inputs_decoder = msgspec.json.Decoder(dict[str, Any])
# The checkpoint history's bounds, as the scripts take them.
_HISTORY = (limits.MAX_CHECKPOINTS_KEPT, limits.MAX_CHECKPOINT_HISTORY_BYTES)


def _sized(field: str, value: Any, limit: int = limits.MAX_REPORT_BYTES) -> bytes:
    """`value` as JSON ('' for None), refused when larger than `limit`."""
    if value is None:
        return b""
    data = _encode(value)
    check_size(field, data, limit)
    return data


# What each child-run limit refused says (start.lua names the limit).
_CHILD_LIMITS = {
    "MAX_CHILD_RUNS": "this run has started {} child runs, the most one run may",
    "MAX_RUN_DEPTH": "this run is {} levels of child runs deep already, the most allowed",
    "MAX_RUN_TREE": "{} runs descend from this run's root already, the most one root may have",
}


def _not_allowed(job: str, what: str, name: str, spawner: str, allowed: str) -> NotAllowed:
    """spawn.lua's refusal: new job `job` asked for `name` (a label or a
    workflow) in `what`, beyond what `spawner` may give (`allowed`)."""
    allowed = ", ".join(allowed.split(",")) if allowed else "none"
    if what == "spawn.workflows":
        return NotAllowed("spawn_not_allowed", f"job {job!r} may not list workflow {name!r} in its spawn:, as"
                          f" {spawner!r} does not (its spawn: workflows: {allowed})",
                          {"field": f"jobs.{job}.{what}", "job": job, "workflow_id": name})
    verb = "require" if what == "labels" else "allow"
    return NotAllowed("spawn_not_allowed", f"job {job!r} may not {verb} label {name!r}: jobs spawned by {spawner!r}"
                      f" take only the labels it requires or its spawn: labels allow ({allowed})",
                      {"field": f"jobs.{job}.{what}", "job": job, "label": name})


class SdkMixin(StoreBase):
    async def _update(self, lease_id: str, caller: str, op: str, *args: Any) -> int:
        res = await self._call("job_update", lease_id, caller, op, *args)
        if res[0] == "ok":
            return int(res[1])
        if res[0] in ("too_many", "too_large"):
            what, limit = res[1], int(res[2])
            raise Unprocessable("limit_exceeded", f"at most {limit} {what}", {"limit": limit})
        lease_refused(res[0], lease_id)
        raise AssertionError(res)

    async def _read(self, lease_id: str, caller: str, what: str, *args: Any) -> list:
        res = await self._call("job_read", lease_id, caller, what, *args)
        if res[0] != "ok":
            lease_refused(res[0], lease_id)
        return res[1:]

    # ---- reports --------------------------------------------------------------------

    async def report_progress(self, lease_id: str, caller: str, update: ProgressUpdate) -> None:
        def text(value: Any) -> str:
            return "" if value is None else str(value)

        meta = _sized("metadata", update.metadata)
        pct = "" if update.progress_percent is None else f"{update.progress_percent:g}"
        await self._update(lease_id, caller, "progress", pct,
                           text(update.current_step_name), text(update.current_step_index), meta)

    async def log_entries(self, lease_id: str, caller: str, entries: list[LogEntry]) -> tuple[int, int]:
        """(kept, dropped): entries share the attempt's log budget with its
        output (see store/logs.py); the call that fills it keeps those that
        fit, a later call is 413."""
        # A log entry's progress is the job's progress (Restep's), the last given winning.
        pct = next((f"{e.progress_percent:g}" for e in reversed(entries) if e.progress_percent is not None), "")
        levels = ["warn" if e.level == "warning" else e.level for e in entries]
        level = max(levels, key=lambda lv: LOG_LEVELS.index(lv) if lv in LOG_LEVELS else 1)
        args: list = [self.log_maxlen, self.log_max_bytes, pct, level]
        for i, e in enumerate(entries):
            chunk = {"data": e.message, "stream": "event", "level": "warn" if e.level == "warning" else e.level}
            if e.log_data is not None:
                chunk["log_data"] = e.log_data
            step = e.step or e.execution_step_id
            if step is not None:
                chunk["step"] = step
            field = f"logs[{i}]" if len(entries) > 1 else "log_data"
            encoded = _sized(field, chunk, limits.MAX_REPORT_BYTES + len(e.message.encode()))
            check_size(f"logs[{i}]" if len(entries) > 1 else "message", encoded, self.log_max_chunk_bytes)
            # the script adds the chunk's head (workflow, job, sequence, time)
            args += [encoded[1:], e.message]
        res = await self._call("job_update", lease_id, caller, "log", *args)
        if res[0] == "log_full":
            raise log_full(self.log_max_bytes)
        if res[0] != "ok":
            lease_refused(res[0], lease_id)
        return int(res[1]), int(res[2])

    async def report_step(self, lease_id: str, caller: str, step: str, state: str, update: StepUpdate) -> None:
        props: list = []
        for name in ("name", "error_message", "error_type", "error_stack"):
            value = getattr(update, name)
            if value is not None:
                props += [name, value]
        if update.exit_code is not None:
            props += ["exit_code", update.exit_code]
        if update.progress_percent is not None:
            props += ["progress_percent", update.progress_percent]
        for name in ("result_data", "artifacts", "metadata"):
            value = getattr(update, name)
            if value is not None:
                props += [name, _sized(name, value)]
        # Restep: a completed step's artifacts, or a step's checkpoint_data,
        # are saved as the job's checkpoint
        saved = update.checkpoint_data if update.checkpoint_data is not None else (
            update.artifacts if state == "completed" else None)
        checkpoint = _sized("checkpoint_data", saved, limits.MAX_CHECKPOINT_BYTES)
        await self._update(lease_id, caller, "step", step, state, checkpoint, *_HISTORY, *props)

    async def save_checkpoint(self, lease_id: str, caller: str, data: Any) -> None:
        await self._update(lease_id, caller, "checkpoint", _sized("data", data, limits.MAX_CHECKPOINT_BYTES) or b"null",
                           *_HISTORY)

    async def annotate(self, lease_id: str, caller: str, annotations: dict[str, str]) -> int:
        args: list = [limits.MAX_ANNOTATIONS, limits.MAX_RUN_METADATA_KEYS]
        for key, value in annotations.items():
            if len(value) > limits.MAX_ANNOTATION_VALUE_CHARS:
                raise Unprocessable("too_large", f"annotation {key!r} is longer than"
                                    f" {limits.MAX_ANNOTATION_VALUE_CHARS} characters", {"field": key})
            args += [key, value]
        return await self._update(lease_id, caller, "annotate", *args)

    async def add_note(self, lease_id: str, caller: str, note: Note) -> None:
        await self._update(lease_id, caller, "note", note.context, note.style, note.markdown, limits.MAX_NOTES)

    async def set_outputs(self, lease_id: str, caller: str, values: dict[str, str], max_bytes: int) -> int:
        size = sum(len(k.encode()) + len(v.encode()) for k, v in values.items())
        if size > max_bytes:
            raise Unprocessable("outputs_too_large", f"outputs are {size} bytes, more than MAX_OUTPUT_BYTES"
                                f" ({max_bytes})", {"field": "outputs", "limit": max_bytes, "size": size})
        args: list = [max_bytes]
        for key, value in values.items():
            args += [key, value]
        return await self._update(lease_id, caller, "output", *args)

    async def structured_output(self, lease_id: str, caller: str, key: str, value: Any, schema: Any) -> None:
        """Upserts a structured output of the lease's run (Strait's): any JSON
        value by key, with the JSON schema it was given (kept, not applied)."""
        encoded_value, encoded_schema = _encode(value), b"" if schema is None else _encode(schema)
        check_size("value", encoded_value + encoded_schema, limits.MAX_STRUCTURED_OUTPUT_BYTES)
        await self._update(lease_id, caller, "soutput", key, encoded_value, encoded_schema,
                           limits.MAX_STRUCTURED_OUTPUTS)

    async def structured_outputs(self, run: str) -> list[StructuredOutput]:
        """The run's structured outputs, oldest first."""
        await self.run_head(run)  # type: ignore[attr-defined]
        rows = await self.redis.hgetall(self.key("souts", run))
        return sorted((_output_decoder.decode(v) for v in rows.values()), key=lambda o: (o.created_at_ms, o.output_key))

    async def report_resources(self, lease_id: str, caller: str, sample: ResourceSample) -> None:
        await self._update(lease_id, caller, "resources",
                           "" if sample.cpu_percent is None else sample.cpu_percent,
                           "" if sample.memory_bytes is None else sample.memory_bytes,
                           _sized("extra", sample))

    async def typed_event(self, lease_id: str, caller: str, kind: str, body: dict) -> None:
        """Strait's usage, tool-call and stream reports: run events of that type."""
        await self._update(lease_id, caller, "typed", kind, _sized("body", body))

    # ---- run state --------------------------------------------------------------------

    async def state_all(self, lease_id: str, caller: str) -> dict[str, Any]:
        flat = await self._read(lease_id, caller, "state")
        return {flat[i]: msgspec.json.decode(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def state_get(self, lease_id: str, caller: str, key: str) -> Any:
        got = await self._read(lease_id, caller, "state_key", key)
        if not got:
            raise NotFound("state_key_not_found", f"no state key {key!r} in this run", {"key": key})
        return msgspec.json.decode(got[0])

    async def state_set(self, lease_id: str, caller: str, key: str, value: Any) -> None:
        await self._update(lease_id, caller, "state_set", key,
                           _sized("value", value, limits.MAX_STATE_VALUE_BYTES) or b"null", limits.MAX_STATE_KEYS)

    async def state_delete(self, lease_id: str, caller: str, key: str) -> bool:
        return await self._update(lease_id, caller, "state_del", key) > 0

    async def run_state(self, run: str) -> dict[str, Any]:
        await self.run_head(run)  # type: ignore[attr-defined]
        flat = await self.redis.hgetall(self.key("state", run))
        return {k: msgspec.json.decode(v) for k, v in flat.items()}

    # ---- the job's inputs, checkpoints ------------------------------------------------

    async def payload(self, lease_id: str, caller: str) -> Payload:
        inputs, ckpt, event, *ups = await self._read(lease_id, caller, "payload")
        return Payload(
            inputs=_inputs_decoder.decode(inputs) if inputs else {},
            upstream_outputs={ups[i]: outputs(ups[i + 1]) for i in range(0, len(ups), 2)},
            checkpoint=_checkpoint_decoder.decode(ckpt).data if ckpt else None,
            event=msgspec.json.decode(event) if event else None,
        )

    async def checkpoints(self, run: str, job: str) -> list[CheckpointOut]:
        """Every checkpoint the job saved and still kept, oldest first."""
        if not await self.redis.exists(self.key("rj", run, job)):
            raise NotFound("job_not_found", f"no job {job!r} in run {run!r}")
        return [_checkpoint_decoder.decode(v) for v in await self.redis.lrange(self.key("ckpts", run, job), 0, -1)]

    async def run_checkpoints(self, run: str) -> list[CheckpointOut]:
        """Every checkpoint kept of every job of the run, by sequence."""
        head = await self.run_head(run)  # type: ignore[attr-defined]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job in head["jobs"].split(","):
                pipe.lrange(self.key("ckpts", run, job), 0, -1)
            lists = await pipe.execute()
        found = [_checkpoint_decoder.decode(v) for rows in lists for v in rows]
        return sorted(found, key=lambda c: c.sequence or 0)

    # ---- spawning -----------------------------------------------------------------------

    async def lease_run(self, lease_id: str, caller: str) -> tuple[str, str, list[str]]:
        """(run, job, the run's jobs) of a live lease."""
        run, job, jobs = await self._read(lease_id, caller, "lease")
        return run, job, jobs.split(",")

    async def spawn_jobs(self, lease_id: str, caller: str, jobs: list[JobSpec], wait: bool) -> list[str]:
        """Adds `jobs` to the lease's run; the ids added (none when this job
        spawned the very same jobs before)."""
        args: list = [lease_id, caller, int(wait), limits.MAX_JOBS, len(jobs)]
        for job in jobs:
            args += [job.id, _encode(job), job_meta(job), ",".join(job.needs)]
        res = await self._call("spawn", *args)
        if res[0] == "ok":
            return [job.id for job in jobs] if int(res[1]) else []
        if res[0] == "exists":
            raise Conflict("job_exists", f"the run already has a job {res[1]!r}; spawned ids must be new",
                           {"field": f"jobs.{res[1]}"})
        if res[0] == "unknown":
            raise Unprocessable("unknown_need", f"job {res[1]!r} needs {res[2]!r}, which is not in the run",
                                {"field": f"jobs.{res[1]}.needs"})
        if res[0] == "cycle":
            raise Unprocessable("cycle", f"spawning these jobs would make a cycle through {res[1]!r}",
                                {"field": f"jobs.{res[1]}.needs"})
        if res[0] == "too_many":
            raise Unprocessable("limit_exceeded", f"a run holds at most {res[1]} jobs", {"field": "jobs"})
        if res[0] == "not_allowed":
            raise _not_allowed(*res[1:])
        lease_refused(res[0], lease_id)
        raise AssertionError(res)

    async def spawn_child(self, lease_id: str, caller: str, child: ChildRun) -> str:
        """Starts a run of another workflow as a child of the lease's run:
        first whether the job may (the same answer for a workflow that does
        not exist: a job learns nothing of others), then, its inputs checked
        against the version it may start, the start itself."""
        run = str(uuid.uuid4())
        # The request's digest: the same spawn by a retried job gets its first child run back.
        head = [child.workflow_id, run, "spawn"]
        tail = [self.retention_secs]
        # a child run's key is its spawner's, bounded with its run's children, not a token's keys: no owner
        ident = ["", digest(_encode(child)), self.idempotency_ttl_secs, lease_id, caller, limits.MAX_CHILD_RUNS,
                 limits.MAX_RUN_DEPTH, limits.MAX_RUN_TREE, "", self.max_idempotency_keys]
        for _ in range(START_TRIES):
            res = await self._call("start", *head, "{}", "{}", *tail, "check", *ident)
            if res[0] == "allowed":
                ver = res[1]
                definition = await self.definition(child.workflow_id, ver)
                inputs = checked_inputs(definition.inputs if definition else {}, child.inputs, child.workflow_id)
                res = await self._call("start", *head, _encode(inputs), _encode(child.tags), *tail, "new", *ident,
                                       ver, "", *When().args(), "", "", "", 0,
                                       *control_args(run, child.workflow_id, "spawn", inputs, child.tags,
                                                     definition))
                if res[0] == "changed":
                    continue
            spawned = self._spawned(res, run, lease_id, child)
            if res[0] == "ok":  # a new child run: its run-name, now that it has its number
                await self.name_run(spawned)  # type: ignore[attr-defined]
            return spawned
        raise Conflict("workflow_changing", f"workflow {child.workflow_id!r} was replaced {START_TRIES} times while"
                       " starting it; try again")

    def _spawned(self, res: list, run: str, lease_id: str, child: ChildRun) -> str:
        if res[0] == "replayed":
            return res[1]
        if res[0] == "not_allowed":
            raise NotAllowed("spawn_not_allowed", f"this job may not start runs of workflow {child.workflow_id!r}:"
                             " list it in the job's spawn: {workflows: [...]}",
                             {"field": "workflow_id", "workflow_id": child.workflow_id})
        if res[0] == "not_found":
            raise NotFound("workflow_not_found", f"no workflow {child.workflow_id!r}",
                           {"field": "workflow_id"})
        if res[0] == "limit":
            name, limit = res[1], int(res[2])
            raise Unprocessable("limit_exceeded", f"{_CHILD_LIMITS[name].format(limit)} ({name})",
                                {"field": "workflow_id", "limit": limit, "limit_name": name})
        refusal = paused_refusal(res, child.workflow_id)
        if refusal is not None:
            raise refusal
        if res[0] != "ok":
            lease_refused(res[0], lease_id)
        return run

    async def continue_run(self, lease_id: str, caller: str, inputs: dict[str, Any]) -> str:
        """Starts a continuation of the lease's run (Strait's `continue`): a
        new run of its workflow with these inputs, checked as a start's are;
        the one it has already, if it has one."""
        run, _, _ = await self.lease_run(lease_id, caller)
        wf = await self.redis.hget(self.key("run", run), "wf")
        new = str(uuid.uuid4())
        for _ in range(START_TRIES):
            ver, definition = await self.current_definition(wf)  # type: ignore[attr-defined]
            checked = checked_inputs(definition.inputs if definition else {}, inputs, wf)
            res = await self._call("start", wf, new, "continue", _encode(checked), b"{}", self.retention_secs,
                                   "continue", "", "", self.idempotency_ttl_secs, lease_id, caller,
                                   limits.MAX_LINEAGE_RUNS, 0, 0, "", 0, ver, "", *When().args(), "", "", "", 0,
                                   *control_args(new, wf, "continue", checked, {}, definition))
            if res[0] in ("ok", "replayed"):
                return res[1]
            refusal = paused_refusal(res, wf)
            if refusal is not None:
                raise refusal
            if res[0] == "changed":
                continue
            if res[0] == "not_found":
                raise NotFound("workflow_not_found", "this run's workflow is gone; nothing to continue")
            if res[0] == "limit":
                raise Unprocessable("limit_exceeded", f"a lineage holds at most {res[2]} runs ({res[1]})",
                                    {"limit": int(res[2]), "limit_name": res[1]})
            lease_refused(res[0], lease_id)
            raise AssertionError(res)
        raise Conflict("workflow_changing", f"workflow {wf!r} was replaced {START_TRIES} times while continuing"
                       " a run of it; try again")

    async def lineage(self, run: str) -> list[RunOut]:
        """The run's lineage: back to the run that continues none, then every
        continuation from there, in order (a lineage holds at most
        MAX_LINEAGE_RUNS runs)."""
        head = await self.run_head(run)  # type: ignore[attr-defined]
        for _ in range(limits.MAX_LINEAGE_RUNS):
            if not head.get("cont"):
                break
            prior = await self.redis.hgetall(self.key("run", head["cont"]))
            if not prior:  # purged: the lineage starts where what is kept starts
                break
            head = prior
        out = [run_out(head)]
        while len(out) < limits.MAX_LINEAGE_RUNS:
            nxt = await self.redis.zrange(self.key("conts", out[-1].run_id), 0, 0)
            following = await self.redis.hgetall(self.key("run", nxt[0])) if nxt else None
            if not following:
                break
            out.append(run_out(following))
        return out

    async def children(self, run: str) -> list[RunOut]:
        await self.run_head(run)  # type: ignore[attr-defined]
        ids = await self.redis.zrange(self.key("children", run), 0, -1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for child in ids:
                pipe.hgetall(self.key("run", child))
            heads = await pipe.execute()
        return [run_out(head) for head in heads if head]  # purged children are gone

    # ---- waiting for events --------------------------------------------------------------

    async def wait_for_event(self, lease_id: str, caller: str, key: str, timeout_secs: int) -> int:
        """Ends the attempt as `waiting`; returns when the wait times out (epoch ms)."""
        res = await self._call("wait_event", lease_id, caller, key, timeout_secs, self.result_replay_secs)
        if res[0] != "ok":
            lease_refused(res[0], lease_id)
        return int(res[1])

    async def fire_event(self, key: str, payload: Any) -> int:
        """Wakes every job waiting on `key`; how many."""
        res = await self._call("fire_event", key, _sized("payload", payload, limits.MAX_EVENT_PAYLOAD_BYTES) or b"null")
        return int(res[1])

    async def approve(self, run: str, job: str, payload: Any, who: str) -> None:
        """`who`: for the job's event (`approved by ...`)."""
        res = await self._call("approve", run, job,
                               _sized("payload", payload, limits.MAX_EVENT_PAYLOAD_BYTES) or b"null", who)
        if res[0] == "not_found":
            raise NotFound("job_not_found", f"no job {job!r} in run {run!r}")
        if res[0] == "not_waiting":
            status = WIRE_STATUS.get(res[1], res[1])
            raise Conflict("job_not_waiting", f"job {job!r} is not waiting for an event or an approval"
                           f" (it is {status})", {"status": status})

    async def cancel_own_job(self, lease_id: str, caller: str) -> tuple[str, str]:
        """A running job cancelling itself (Restep's executor cancel)."""
        res = await self._call("cancel_job", "lease", lease_id, caller)
        if res[0] in ("ok", "noop"):
            return res[1], res[2]
        lease_refused(res[0], lease_id)
        raise AssertionError(res)

