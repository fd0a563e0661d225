"""Schedules: the `on: schedule:` entries of stored workflows, with their
next fire time; pausing and resuming one."""

from __future__ import annotations

from starlette.requests import Request

from ..http import JSON, page_params
from ..models import ScheduleOut
from ..routing import Endpoint, Param


async def list_schedules(request: Request) -> JSON:
    limit, offset = page_params(request)
    workflow_id = request.query_params.get("workflow_id") or None
    return JSON(await request.app.state.store.list_schedules(workflow_id, limit, offset))


async def get_schedule(request: Request) -> JSON:
    return JSON(await request.app.state.store.get_schedule(request.path_params["sid"]))


async def _pause(request: Request, pause: bool) -> JSON:
    store, sid = request.app.state.store, request.path_params["sid"]
    await store.pause_schedule(sid, pause)  # the script's note logs it, once
    return JSON(await store.get_schedule(sid))


async def pause_schedule(request: Request) -> JSON:
    return await _pause(request, True)


async def resume_schedule(request: Request) -> JSON:
    return await _pause(request, False)


endpoints = [
    Endpoint("GET", "/api/schedules", list_schedules, "read",
             "Every schedule (`on: schedule:` of stored workflows), oldest first, with its next fire time",
             response=list[ScheduleOut], errors=(404, 422), tag="schedules",
             params=page_params.params + (Param("workflow_id", str, "only this workflow's, in its order"),)),
    Endpoint("GET", "/api/schedules/{sid}", get_schedule, "read",
             "One schedule (`<workflow>:<index>`)", response=ScheduleOut, errors=(404,), tag="schedules"),
    Endpoint("POST", "/api/schedules/{sid}/pause", pause_schedule, "submit",
             "Pause a schedule: its ticks start nothing until it is resumed (a no-op if paused)",
             response=ScheduleOut, errors=(404,), tag="schedules"),
    Endpoint("POST", "/api/schedules/{sid}/resume", resume_schedule, "submit",
             "Resume a schedule: ticks from now on fire; those it slept through are not caught up",
             response=ScheduleOut, errors=(404,), tag="schedules"),
]
