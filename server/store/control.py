"""Run control: pausing and resuming runs, workflows and labels (one script
each way), what is paused, the record of pauses, and the concurrency groups
in use (server/lua/_control.lua keeps them)."""

from __future__ import annotations

from typing import Optional

import msgspec

from ..errors import NotFound
from ..groups import group_name
from ..limits import MAX_RESUME_WAKES
from ..models import (
    ControlEvent,
    GroupMember,
    GroupOut,
    GroupPage,
    LabelPaused,
    Paused,
    PausedLabel,
    PausedWorkflow,
    RunPaused,
    WorkflowPaused,
)
from .base import StoreBase

_event_decoder = msgspec.json.Decoder(dict)
# Members of a group listed, each way; the counts say how many there are.
GROUP_MEMBERS_SHOWN = 100


def _run_not_found(run: str) -> NotFound:
    return NotFound("run_not_found", f"no run {run!r}")


def _workflow_not_found(wf: str) -> NotFound:
    return NotFound("workflow_not_found", f"no workflow {wf!r}")


class ControlMixin(StoreBase):
    # ---- runs ---------------------------------------------------------------------------

    async def pause_run(self, run: str, who: str = "") -> RunPaused:
        res = await self._call("pause_run", run, who)
        if res[0] == "not_found":
            raise _run_not_found(run)
        if res[0] == "ok":
            detail = f"paused: {int(res[1])} queued job(s) held; running jobs go on"
        elif res[1] == "paused":
            detail = "already paused (no-op)"
        else:
            detail = "the run has finished: nothing to pause (no-op)"
        return RunPaused(changed=res[0] == "ok", detail=detail, run=await self.get_run(run))  # type: ignore[attr-defined]

    async def resume_run(self, run: str, who: str = "") -> RunPaused:
        res = await self._call("resume_run", run, who)
        if res[0] == "not_found":
            raise _run_not_found(run)
        if res[0] == "ok":
            detail = "resumed: its held jobs are queued again"
        elif res[1] == "running":
            detail = "not paused: nothing to resume (no-op)"
        else:
            detail = "the run has finished: nothing to resume (no-op)"
        out = await self.get_run(run)  # type: ignore[attr-defined]
        if res[0] == "ok" and (out.waiting_for_group or out.waiting_for_workflow):
            detail += ", once the run gets past what it still waits for"
        return RunPaused(changed=res[0] == "ok", detail=detail, run=out)

    # ---- workflows ------------------------------------------------------------------------

    async def pause_workflow(self, wf: str, new_runs: str, who: str = "") -> WorkflowPaused:
        res = await self._call("pause_workflow", wf, new_runs, who)
        if res[0] == "not_found":
            raise _workflow_not_found(wf)
        what = "new runs wait for it to resume" if new_runs == "queue" else "new runs are refused"
        detail = f"paused: {what}" if res[0] == "ok" else f"already paused so ({what}): no-op"
        return WorkflowPaused(workflow_id=wf, paused=True, new_runs=new_runs,  # type: ignore[arg-type]
                              changed=res[0] == "ok", detail=detail)

    async def resume_workflow(self, wf: str, who: str = "") -> WorkflowPaused:
        res = await self._call("resume_workflow", wf, who)
        if res[0] == "not_found":
            raise _workflow_not_found(wf)
        if res[0] == "noop":
            return WorkflowPaused(workflow_id=wf, paused=False, changed=False,
                                  detail="not paused: nothing to resume (no-op)")
        started = int(res[1])
        return WorkflowPaused(workflow_id=wf, paused=False, changed=True, runs_released=started,
                              detail=f"resumed: {started} run(s) that waited for it started")

    # ---- labels ---------------------------------------------------------------------------

    async def pause_label(self, label: str, who: str = "") -> LabelPaused:
        res = await self._call("pause_label", label, who)
        if res[0] == "noop":
            return LabelPaused(label=label, paused=True, changed=False, detail="already paused (no-op)",
                               queued=await self._queued_behind(label))
        queued = int(res[2])
        return LabelPaused(label=label, paused=True, changed=True, queued=queued,
                           detail=f"paused: no worker takes a job needing {label}; {queued} queued job(s) held,"
                                  " running jobs go on")

    async def resume_label(self, label: str, who: str = "") -> LabelPaused:
        res = await self._call("resume_label", label, who, MAX_RESUME_WAKES)
        if res[0] == "noop":
            return LabelPaused(label=label, paused=False, changed=False, detail="not paused: nothing to resume"
                               " (no-op)")
        queued = int(res[1])
        return LabelPaused(label=label, paused=False, changed=True, queued=queued,
                           detail=f"resumed: {queued} queued job(s) may be taken again")

    async def paused_labels(self) -> dict[str, int]:
        """label -> when it was paused (epoch ms)."""
        return {label: int(at) for label, at in (await self.redis.hgetall(self.key("plabels"))).items()}

    async def _queued_behind(self, label: str) -> int:
        """Jobs queued in the paused label sets that need `label`."""
        sets = [lk for lk in await self.redis.smembers(self.key("plsets")) if label in lk.split(",")]
        if not sets:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for lk in sets:
                pipe.zcard(self.key("ready", lk))
            return sum(await pipe.execute())

    # ---- what is paused, and the record ----------------------------------------------------

    async def paused(self) -> Paused:
        """The paused workflows, in the order they were paused, and labels."""
        labels = await self.paused_labels()
        wfs = await self.redis.zrange(self.key("pwfs"), 0, -1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for wf in wfs:
                pipe.hmget(self.key("wf", wf), ["paused", "paused_ms"])
                pipe.zcard(self.key("wfheld", wf))
            rows = await pipe.execute()
        workflows = [PausedWorkflow(workflow_id=wf, new_runs=mode, paused_at_ms=int(at or 0),  # type: ignore[arg-type]
                                    waiting_runs=n)
                     for wf, (mode, at), n in zip(wfs, rows[::2], rows[1::2]) if mode]
        out_labels = [PausedLabel(label=label, paused_at_ms=at, queued=await self._queued_behind(label))
                      for label, at in sorted(labels.items())]
        return Paused(workflows=workflows, labels=out_labels)

    async def control_events(self, after: str = "0-0", count: int = 100) -> list[ControlEvent]:
        out = []
        for eid, fields in await self._xread(self.key("ctl"), after, count):
            record = _event_decoder.decode(fields["e"])
            out.append(ControlEvent(id=eid, **record))
        return out

    # ---- concurrency groups -----------------------------------------------------------------

    async def groups(self, limit: int = 100, cursor: Optional[str] = None, name: Optional[str] = None) -> GroupPage:
        """Groups in use, most recently entered first (or the one named)."""
        if name is not None:
            keys, next_cursor = [name.strip().casefold()], None
        else:
            high = "+inf" if cursor is None else f"({int(cursor)}"
            found = await self.redis.zrevrangebyscore(self.key("cgroups"), high, "-inf", start=0, num=limit + 1,
                                                      withscores=True)
            keys = [k for k, _ in found[:limit]]
            next_cursor = str(int(found[limit - 1][1])) if len(found) > limit else None
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrange(self.key("cgh", key), 0, GROUP_MEMBERS_SHOWN - 1, withscores=True)
                pipe.zrange(self.key("cgp", key), 0, GROUP_MEMBERS_SHOWN - 1)
            rows = await pipe.execute()
        groups = []
        for i, key in enumerate(keys):
            holding, waiting = rows[2 * i], rows[2 * i + 1]
            if not holding and not waiting:
                continue
            members = await self._members([m for m, _ in holding] + list(waiting))
            first = next((spec for _, spec in members.values() if spec), None)
            groups.append(GroupOut(
                group=group_name(first) or key,
                limit=int(first.split("\t")[1]) if first else 1,
                per_secs=int(first.split("\t")[4]) // 1000 or None if first else None,
                running=[_member(m, members[m][0], int(score)) for m, score in holding],
                waiting=[_member(m, members[m][0]) for m in waiting],
            ))
        return GroupPage(groups=groups, next_cursor=next_cursor)

    async def _members(self, members: list[str]) -> dict[str, tuple[Optional[str], Optional[str]]]:
        """member -> (its workflow, its group spec)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for m in members:
                run, _, job = m.partition(":")
                pipe.hmget(self.key("run", run), ["wf", f"jg:{job}" if job else "cg"])
            rows = await pipe.execute()
        return {m: (wf, spec) for m, (wf, spec) in zip(members, rows)}


def _member(m: str, workflow: Optional[str], since: Optional[int] = None) -> GroupMember:
    run, _, job = m.partition(":")
    return GroupMember(run_id=run, job_id=job or None, workflow_id=workflow, since_ms=since)
