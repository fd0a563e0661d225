"""Run control: pause and resume a run, a workflow or a label's queues;
what is paused and the record of pauses; the concurrency groups in use."""

from __future__ import annotations

import logging
from typing import Annotated

from msgspec import Meta
from starlette.requests import Request

from ..auth import principal
from ..http import JSON, Limit, StreamId, decode_body, param
from ..limits import MAX_GROUP_CHARS
from ..models import (
    ControlEvent,
    GroupPage,
    LabelPaused,
    Paused,
    RunPaused,
    WorkflowPause,
    WorkflowPaused,
)
from ..models.core import Label
from ..models.specs import NOT_BLANK
from ..routing import Endpoint, Param

journal = logging.getLogger("rota.events")

MAX_GROUP_PAGE = 1000
MAX_EVENT_PAGE = 1000
_LABEL = Param("label", Label, "the label: letters, digits and _ . : / = + -, at most 64", where="path",
               error="invalid_label")
_EVENTS_AFTER = Param("after", StreamId, "only events after this id")
_EVENTS_LIMIT = Param("limit", Limit, f"at most this many (default 100; above {MAX_EVENT_PAGE} means"
                      f" {MAX_EVENT_PAGE})")
_GROUP = Param("group", Annotated[str, Meta(min_length=1, max_length=MAX_GROUP_CHARS, pattern=NOT_BLANK)],
               "only this group (by name, case ignored)")
_GROUPS_LIMIT = Param("limit", Limit, f"at most this many groups (default 100; above {MAX_GROUP_PAGE} means"
                      f" {MAX_GROUP_PAGE})")
# A cursor is when the last group listed was entered (as next_cursor gives it).
_GROUPS_CURSOR = Param("cursor", Annotated[str, Meta(pattern=r"^[0-9]{1,19}\Z")], "next_cursor of the previous page")


def _who(request: Request) -> str:
    return principal(request).token_id


def _label(request: Request) -> str:
    return param(request, _LABEL)


def _logged(answer, what: str) -> None:
    if answer.changed:
        journal.info("%s: %s", what, answer.detail)


async def pause_run(request: Request) -> JSON:
    run = request.path_params["run_id"]
    answer = await request.app.state.store.pause_run(run, _who(request))
    _logged(answer, f"run {run}")
    return JSON(answer)


async def resume_run(request: Request) -> JSON:
    run = request.path_params["run_id"]
    answer = await request.app.state.store.resume_run(run, _who(request))
    _logged(answer, f"run {run}")
    return JSON(answer)


async def pause_workflow(request: Request) -> JSON:
    body = await decode_body(request, WorkflowPause, empty_ok=True)
    wf = request.path_params["wf"]
    answer = await request.app.state.store.pause_workflow(wf, body.new_runs, _who(request))
    _logged(answer, f"workflow {wf}")
    return JSON(answer)


async def resume_workflow(request: Request) -> JSON:
    wf = request.path_params["wf"]
    answer = await request.app.state.store.resume_workflow(wf, _who(request))
    _logged(answer, f"workflow {wf}")
    return JSON(answer)


async def pause_label(request: Request) -> JSON:
    label = _label(request)
    answer = await request.app.state.store.pause_label(label, _who(request))
    _logged(answer, f"label {label}")
    return JSON(answer)


async def resume_label(request: Request) -> JSON:
    label = _label(request)
    answer = await request.app.state.store.resume_label(label, _who(request))
    _logged(answer, f"label {label}")
    return JSON(answer)


async def paused(request: Request) -> JSON:
    return JSON(await request.app.state.store.paused())


async def control_events(request: Request) -> JSON:
    after = param(request, _EVENTS_AFTER, "0-0")
    limit = min(param(request, _EVENTS_LIMIT, 100), MAX_EVENT_PAGE)
    return JSON(await request.app.state.store.control_events(after, limit))


async def groups(request: Request) -> JSON:
    limit = min(param(request, _GROUPS_LIMIT, 100), MAX_GROUP_PAGE)
    return JSON(await request.app.state.store.groups(limit, param(request, _GROUPS_CURSOR),
                                                     param(request, _GROUP)))


_RUN = dict(status=200, response=RunPaused, errors=(404,), tag="control")
endpoints = [
    Endpoint("POST", "/api/runs/{run_id}/pause", pause_run, "submit",
             "Pause a run: its queued jobs go to no worker until it resumes; running jobs finish", **_RUN),
    Endpoint("POST", "/api/runs/{run_id}/resume", resume_run, "submit",
             "Resume a paused run: its held jobs are queued again", **_RUN),
    Endpoint("POST", "/api/workflows/{wf}/pause", pause_workflow, "submit",
             "Pause a workflow: its new runs (schedule ticks too) wait for it (`new_runs: queue`) or are refused"
             " (`skip`); runs in progress go on", body=WorkflowPause, response=WorkflowPaused, errors=(404, 422),
             tag="control"),
    Endpoint("POST", "/api/workflows/{wf}/resume", resume_workflow, "submit",
             "Resume a paused workflow: the runs that waited for it start, in order", response=WorkflowPaused,
             errors=(404,), tag="control"),
    Endpoint("POST", "/api/labels/{label}/pause", pause_label, "admin",
             "Pause a label's queues: no worker takes a job needing the label (drain a fleet without stopping"
             " it); running jobs finish", response=LabelPaused, errors=(422,), tag="control", params=(_LABEL,)),
    Endpoint("POST", "/api/labels/{label}/resume", resume_label, "admin",
             "Resume a paused label: workers take its queued jobs again", response=LabelPaused, errors=(422,),
             tag="control", params=(_LABEL,)),
    Endpoint("GET", "/api/paused", paused, "read", "The paused workflows and labels", response=Paused,
             tag="control"),
    Endpoint("GET", "/api/paused/events", control_events, "read",
             "Every pause and resume (of runs, workflows and labels), oldest first: about the last 1,000",
             response=list[ControlEvent], errors=(422,), tag="control", params=(_EVENTS_AFTER, _EVENTS_LIMIT)),
    Endpoint("GET", "/api/concurrency-groups", groups, "read",
             "Concurrency groups in use, most recently entered first: the runs and jobs holding a place, and"
             " those waiting, in order (100 of each at most)", response=GroupPage, errors=(422,), tag="control",
             params=(_GROUP, _GROUPS_LIMIT, _GROUPS_CURSOR)),
]
