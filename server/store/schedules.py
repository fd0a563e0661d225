"""Schedules (`on: schedule:` of stored workflows): listing them, pausing
and resuming them, and what the scheduler reads and calls: the schedules
due, the claim-and-start of their ticks, and the pass over delayed and
expiring runs. See _schedules.lua for what each schedule keeps."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Optional

import msgspec

from .. import cron, limits
from ..errors import NotFound
from ..models import ScheduleOut
from .base import Definition, StoreBase, ms
from .starts import control_args

_encode = msgspec.json.encode


@dataclass(frozen=True)
class Due:
    """A schedule as the scheduler read it: what fire_schedule compares."""

    id: str
    workflow_id: str
    cron: str
    timezone: str
    catch_up: str
    spec: str
    last: str  # as stored: compared as text


def schedule_out(row: dict, now_ms: int, workflow_name: Optional[str] = None) -> ScheduleOut:
    paused = row.get("paused") == "1"
    nxt = None
    if not paused:
        # The scheduler's last pass kept the next tick after it: still ahead,
        # it is the answer; else (due now, or never computed) compute it.
        after = max(int(row.get("last") or 0), now_ms)
        nxt = int(row.get("next") or 0)
        if nxt <= after:
            nxt = cron.next_tick(row["cron"], row["tz"], after)
    return ScheduleOut(
        id=row["id"], workflow_id=row["wf"], workflow_name=workflow_name, index=int(row["n"]), cron=row["cron"], timezone=row["tz"],
        catch_up=row["cu"], overlap=row["ov"], paused=paused,  # type: ignore[arg-type]
        paused_at=ms(row.get("pausedat")), next_fire_at=nxt, last_fired_at=ms(row.get("ltick")),
        last_run_id=row.get("lastrun") or None, runs_started=int(row.get("fired") or 0),
        ticks_skipped=int(row.get("skipped") or 0), created_at=int(row.get("created") or 0),
    )


class SchedulesMixin(StoreBase):
    async def list_schedules(self, workflow_id: Optional[str] = None, limit: int = 100,
                             offset: int = 0) -> list[ScheduleOut]:
        """Oldest first; a workflow's in their order in its `on: schedule:`."""
        if workflow_id is not None:
            n = await self.redis.hget(self.key("wf", workflow_id), "nsched")
            if n is None and not await self.redis.exists(self.key("wf", workflow_id)):
                raise NotFound("workflow_not_found", f"no workflow {workflow_id!r}")
            ids = [f"{workflow_id}:{i}" for i in range(int(n or 0))][offset:offset + limit]
        else:
            ids = await self.redis.zrange(self.key("schedules"), offset, offset + limit - 1)
        return await self._schedules(ids)

    async def _schedules(self, ids: list[str]) -> list[ScheduleOut]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hgetall(self.key("sched", sid))
                # <workflow>:<index>; a workflow id holds no ':'
                pipe.hget(self.key("wf", sid.rpartition(":")[0]), "name")
            got = await pipe.execute()
        now = await self.now_ms()
        return [schedule_out(row, now, name) for row, name in zip(got[::2], got[1::2]) if row]

    async def get_schedule(self, sid: str) -> ScheduleOut:
        found = await self._schedules([sid])
        if not found:
            raise NotFound("schedule_not_found", f"no schedule {sid!r} (ids are <workflow>:<index>, e.g. nightly:0)")
        return found[0]

    async def pause_schedule(self, sid: str, pause: bool) -> bool:
        """True if it changed; False if it already was so."""
        (outcome,) = await self._call("pause_schedule", sid, "pause" if pause else "resume")
        if outcome == "not_found":
            raise NotFound("schedule_not_found", f"no schedule {sid!r} (ids are <workflow>:<index>, e.g. nightly:0)")
        return outcome == "ok"

    # ---- what the scheduler uses ------------------------------------------------------------

    async def due_schedules(self, now_ms: int, limit: int) -> list[Due]:
        """The unpaused schedules due at `now_ms` (or never computed yet)."""
        ids = await self.redis.zrangebyscore(self.key("schedq"), "-inf", now_ms, start=0, num=limit)
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hmget(self.key("sched", sid), ["wf", "cron", "tz", "cu", "spec", "last"])
            rows = await pipe.execute()
        return [Due(sid, *row) for sid, row in zip(ids, rows) if row[0] is not None]

    async def fire_schedule(self, due: Due, ticks: list[int], newlast: int, nxt: int, ver: str,
                            inputs: dict, definition: Optional[Definition] = None) -> Optional[list[tuple[str, int]]]:
        """Claims the ticks and starts a run for each (see fire_schedule.lua),
        each in its workflow's concurrency groups as rendered for `definition`
        (the version `ver`; a group that cannot be rendered raises
        Unprocessable, naming it); (run, tick) of the runs started (a tick
        of a paused workflow may start none), or None if another scheduler
        got there first or the schedule or its definition changed since it
        was read."""
        fires: list = []
        controls: list = []
        for tick in ticks:
            run = str(uuid.uuid4())
            fires += [tick, run]
            controls.append(control_args(run, due.workflow_id, "cron", inputs, {}, definition)[0])
        res = await self._call("fire_schedule", due.id, due.spec, due.last, newlast, nxt, len(ticks), *fires,
                               _encode(inputs), self.retention_secs, ver, limits.MAX_HELD_RUNS, *controls)
        if res[0] != "ok":
            return None
        for run in res[1:]:
            await self.name_run(run)  # type: ignore[attr-defined]
        tick_of = dict(zip(fires[1::2], ticks))
        return [(run, tick_of[run]) for run in res[1:]]

    async def due_runs(self, limit: int = 500) -> tuple[int, int]:
        """(delayed runs released, unstarted runs expired) now."""
        released, expired = await self._call("due_runs", limit, limits.MAX_HELD_RUNS)
        return int(released), int(expired)
