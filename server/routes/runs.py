"""Runs: start, list, inspect, cancel, retry; their events as JSON and as
Server-Sent Events; bulk cancel and retry."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Annotated, Literal, Optional

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response

from .. import limits, sse, timespec
from ..auth import principal
from ..errors import ApiError, NotFound, Unprocessable
from ..http import IDEMPOTENCY_KEY, JSON, RESUME, Limit, StreamId, decode_body, param, stream_id
from ..models import (
    BulkAnswer,
    BulkOutcome,
    BulkRequest,
    EventOut,
    RescheduleRequest,
    RestartRequest,
    RunCreate,
    RunFilter,
    RunJobOut,
    RunOut,
    RunPage,
    encoder,
)
from ..models.core import Id, Label, RunStatus
from ..models.runs import MAX_TAGS, EpochMs, SearchText, TagFilter, Trigger
from ..routing import Endpoint, Param
from ..store import LOG_LEVELS, Store, When
from ..store.views import run_out
from .jobview import job_view
from .resolve import for_latest_run

journal = logging.getLogger("rota.events")

MAX_RUN_PAGE = 1000


# The query's filters, each of a RunFilter field's type: what /openapi.json
# shows is what is checked.
_STATUS = Param("status", RunStatus, "the run's status")
_TRIGGERED_BY = Param("triggered_by", Trigger, "api, cli, retry, ...")
_TAG = Param("tag", Annotated[list[TagFilter], Meta(max_length=MAX_TAGS)], "key:value; repeat it: all must match")
_AFTER = Param("created_after", EpochMs, "created after this (epoch ms)")
_BEFORE = Param("created_before", EpochMs, "created before this (epoch ms)")
_WORKFLOW = Param("workflow_id", Id, "only this workflow's")
_LABEL = Param("label", Label, "only runs with a job (of the run's definition) that needs this label")
_SEARCH = Param("q", SearchText, "text in the run id, the workflow's id or name, or a job's id or name (any case)")
_FILTERS = (_STATUS, _TRIGGERED_BY, _TAG, _AFTER, _BEFORE, _LABEL, _SEARCH)
_LIMIT = Param("limit", Limit, f"at most this many runs (default 100; above {MAX_RUN_PAGE} means {MAX_RUN_PAGE})")
# A cursor is a run's sequence number (as next_cursor gives it).
_CURSOR = Param("cursor", Annotated[str, Meta(pattern=r"^[0-9]{1,19}\Z")], "next_cursor of the previous page")
_PAGING = (_LIMIT, _CURSOR)


def _filter(request: Request, workflow_id: Optional[str] = None) -> RunFilter:
    tags = dict(pair.split(":", 1) for pair in param(request, _TAG, []))
    return RunFilter(workflow_id=workflow_id or param(request, _WORKFLOW), status=param(request, _STATUS),
                     triggered_by=param(request, _TRIGGERED_BY), tags=tags,
                     created_after=param(request, _AFTER), created_before=param(request, _BEFORE),
                     label=param(request, _LABEL), q=param(request, _SEARCH))


async def _page(request: Request, workflow_id: Optional[str] = None) -> JSON:
    flt = _filter(request, workflow_id)
    limit = min(param(request, _LIMIT, 100), MAX_RUN_PAGE)
    runs, next_cursor = await request.app.state.store.list_runs(flt, limit, param(request, _CURSOR))
    return JSON(RunPage(runs=runs, next_cursor=next_cursor))


async def list_runs(request: Request) -> JSON:
    return await _page(request)


async def list_workflow_runs(request: Request) -> JSON:
    wf = request.path_params["wf"]
    await request.app.state.store.latest_run(wf)  # 404 for an unknown workflow
    return await _page(request, wf)


def _iso(ms: Optional[int]) -> str:
    return datetime.fromtimestamp((ms or 0) / 1000, timezone.utc).isoformat(timespec="seconds")


def when(body) -> When:
    """When a run starts and until when it may, from a start's or restart's body."""
    sat, delay = timespec.one_of(body.scheduled_at, body.delay, "scheduled_at", "delay")
    exp, ttl = timespec.one_of(body.expires_at, body.expires_in, "expires_at", "expires_in")
    return When(sat, delay, exp, ttl)


def _key(request: Request, scope: str) -> str:
    key = param(request, IDEMPOTENCY_KEY, "")
    return f"{principal(request).token_id}:{scope}:{key}" if key else ""


def _keeps(request: Request) -> Optional[dict[str, str]]:
    """What a new run keeps of its request: the client's own key, shown
    on the run (Strait's idempotency_key) until it is reset."""
    key = param(request, IDEMPOTENCY_KEY, "")
    return {"idemk": key} if key else None


async def start_run(request: Request) -> JSON:
    body = await decode_body(request, RunCreate, empty_ok=True)
    store: Store = request.app.state.store
    wf = request.path_params["wf"]
    key = _key(request, f"run:{wf}")
    started = await store.start_run(wf, triggered_by=body.triggered_by, inputs=body.inputs, tags=body.tags,
                                    idempotency_key=key, request_hash=msgspec.json.encode(body).hex()[:64],
                                    when=when(body), overrides=body.overrides, owner=principal(request).token_id,
                                    keeps=_keeps(request), concurrency_key=body.concurrency_key)
    headers = {"Idempotent-Replayed": "true"} if started.replayed else None
    run = await store.get_run(started.run_id)
    if not started.replayed and journal.isEnabledFor(logging.INFO):
        later = f", delayed until {_iso(run.scheduled_at)}" if run.status == "delayed" else ""
        journal.info("run %s (%s #%d) started by %s%s", run.run_id, await store.workflow_label(wf), run.number,
                     run.triggered_by, later)
    return JSON(run, status_code=201, headers=headers)


async def restart_run(request: Request) -> JSON:
    body = await decode_body(request, RestartRequest, empty_ok=True)
    store: Store = request.app.state.store
    original = request.path_params["run_id"]
    started = await store.restart_run(original, overrides=body.overrides, tags=body.tags, when=when(body),
                                      idempotency_key=_key(request, f"restart:{original}"),
                                      request_hash=msgspec.json.encode(body).hex()[:64],
                                      owner=principal(request).token_id, keeps=_keeps(request))
    run = await store.get_run(started.run_id)
    if not started.replayed:
        journal.info("run %s restarted as run %s (#%d)", original, run.run_id, run.number)
    return JSON(run, status_code=201, headers={"Idempotent-Replayed": "true"} if started.replayed else None)


async def reschedule_run(request: Request) -> JSON:
    body = await decode_body(request, RescheduleRequest)
    store: Store = request.app.state.store
    run = request.path_params["run_id"]
    sat, delay = timespec.one_of(body.scheduled_at, body.delay, "scheduled_at", "delay")
    if sat is None and delay is None:
        raise Unprocessable("invalid_body", "give scheduled_at or delay", {"field": "scheduled_at"})
    at = await store.reschedule_run(run, When(sat, delay))
    journal.info("run %s rescheduled to %s", run, _iso(at))
    return JSON(await store.get_run(run))


async def get_run(request: Request) -> JSON:
    return JSON(await request.app.state.store.get_run(request.path_params["run_id"]))


async def get_job(request: Request) -> JSON:
    return JSON(await job_view(request.app.state.store, request.path_params["run_id"], request.path_params["job"]))


async def cancel_run(request: Request) -> JSON:
    store, run = request.app.state.store, request.path_params["run_id"]
    await store.cancel_run(run)
    journal.info("run %s: cancel requested", run)
    return JSON(await store.get_run(run), status_code=202)


async def cancel_job(request: Request) -> JSON:
    store, p = request.app.state.store, request.path_params
    await store.cancel_job(p["run_id"], p["job"])
    journal.info("job %s/%s: cancel requested", p["run_id"], p["job"])
    return JSON(await store.get_run(p["run_id"]), status_code=202)


async def retry_run(request: Request) -> JSON:
    store, run = request.app.state.store, request.path_params["run_id"]
    await store.retry_run(run)
    journal.info("run %s: retry of its failed, cancelled and skipped jobs", run)
    return JSON(await store.get_run(run), status_code=202)


class DebugMode(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    debug_mode: bool


async def set_debug(request: Request) -> JSON:
    body = await decode_body(request, DebugMode)
    store, run = request.app.state.store, request.path_params["run_id"]
    await store.set_debug(run, body.debug_mode)
    return JSON(await store.get_run(run))


async def reset_idempotency_key(request: Request) -> JSON:
    store, run = request.app.state.store, request.path_params["run_id"]
    await store.reset_idempotency_key(run)
    journal.info("run %s: idempotency key reset", run)
    return JSON(await store.get_run(run))


async def lineage(request: Request) -> JSON:
    return JSON(await request.app.state.store.lineage(request.path_params["run_id"]))


async def retry_job(request: Request) -> JSON:
    store, p = request.app.state.store, request.path_params
    await store.retry_job(p["run_id"], p["job"])
    journal.info("job %s/%s: retry requested", p["run_id"], p["job"])
    return JSON(await store.get_run(p["run_id"]), status_code=202)


EVENT_FILTERS = (Param("job_id", Id, "only this job's events"),
                  Param("type", Annotated[str, Meta(min_length=1, max_length=64)], "only this type of event"),
                  Param("level", Literal["debug", "info", "warn", "warning", "error"],
                        "only events of this level or above (warning: warn)"))
_EVENTS_LIMIT = Param("limit", Limit, f"at most this many (default and maximum {MAX_RUN_PAGE})")


def _event_filter(request: Request):
    job_id, kind, level = (param(request, p) for p in EVENT_FILTERS)
    least = LOG_LEVELS.index("warn" if level == "warning" else level) if level else 0
    return lambda e: ((job_id is None or e["job_id"] == job_id) and (kind is None or e["type"] == kind)
                      and (level is None or (e["level"] in LOG_LEVELS and LOG_LEVELS.index(e["level"]) >= least)))


async def events(request: Request) -> JSON:
    store, run = request.app.state.store, request.path_params["run_id"]
    await store.run_head(run)  # 404 for an unknown run
    after = stream_id(request.query_params.get("after", "0-0"), "after")
    limit = min(param(request, _EVENTS_LIMIT, MAX_RUN_PAGE), MAX_RUN_PAGE)
    keep = _event_filter(request)
    found = [e for e in await store.events(run, after, limit) if keep(msgspec.structs.asdict(e))]
    return JSON(found)


class RunEvents:
    """A run's event stream, finished once the run is."""

    event_name = "event"

    def __init__(self, store: Store, run: str, keep):
        self.store, self.run, self.keep = store, run, keep

    async def read(self, after: str):
        found, more = await self.store.events_page(self.run, after, limits.SSE_BATCH_BYTES, limits.SSE_BATCH_ENTRIES)
        return [(e.id, encoder.encode(e) if self.keep(msgspec.structs.asdict(e)) else None) for e in found], more

    async def finished(self, only_appends: bool) -> Optional[bytes]:
        if not await self.store.run_finished(self.run):
            return None
        return encoder.encode(run_out(await self.store.run_head(self.run)))


async def events_stream(request: Request) -> Response:
    store, run = request.app.state.store, request.path_params["run_id"]
    await store.run_head(run)  # 404 before any streaming starts
    return sse.start(request, store.run_channel(run), RunEvents(store, run, _event_filter(request)))


async def _bulk(request: Request, act) -> JSON:
    req = await decode_body(request, BulkRequest)
    store: Store = request.app.state.store
    more = False
    if req.run_ids is not None:
        runs = list(dict.fromkeys(req.run_ids))
    else:
        found, cursor = await store.list_runs(req.filter, 1000)
        runs, more = [r.run_id for r in found], cursor is not None
    outcomes = [await act(store, run) for run in runs]
    return JSON(BulkAnswer(outcomes=outcomes, more=more))


async def _cancel_one(store: Store, run: str) -> BulkOutcome:
    try:
        return BulkOutcome(run_id=run, outcome="cancelled" if await store.cancel_run(run) else "noop")
    except NotFound as exc:
        return BulkOutcome(run_id=run, outcome="not_found", detail=exc.message)


async def _retry_one(store: Store, run: str) -> BulkOutcome:
    try:
        n = await store.retry_run(run)
        return BulkOutcome(run_id=run, outcome="retried" if n else "noop", detail=f"{n} job(s)")
    except ApiError as exc:
        return BulkOutcome(run_id=run, outcome="active" if exc.code == "run_active" else "not_found",
                           detail=exc.message)


async def bulk_cancel(request: Request) -> JSON:
    return await _bulk(request, _cancel_one)


async def bulk_retry(request: Request) -> JSON:
    return await _bulk(request, _retry_one)


endpoints = [
    Endpoint("POST", "/api/workflows/{wf}/runs", start_run, "submit",
             "Start a new run of the workflow's current definition, now or delayed (scheduled_at, delay), with"
             " its inputs checked against the declared ones and optional per-run overrides (Idempotency-Key"
             " honoured)",
             body=RunCreate, status=201, response=RunOut, errors=(404, 409, 422, 429), tag="runs",
             params=(IDEMPOTENCY_KEY,)),
    Endpoint("GET", "/api/workflows/{wf}/runs", list_workflow_runs, "read", "A workflow's runs, newest first",
             response=RunPage, params=_PAGING + _FILTERS, errors=(404, 422), tag="runs"),
    Endpoint("GET", "/api/runs", list_runs, "read", "Runs, newest first, filtered, cursor-paged",
             response=RunPage, params=_PAGING + _FILTERS + (_WORKFLOW,),
             errors=(422,), tag="runs"),
    Endpoint("GET", "/api/runs/{run_id}", get_run, "read", "A run, its jobs and their attempts",
             response=RunOut, errors=(404,), tag="runs"),
    Endpoint("GET", "/api/runs/{run_id}/jobs/{job}", get_job, "read",
             "One job of a run, with its attempts and why it is not running (blocked_by)",
             response=RunJobOut, errors=(404,), tag="runs"),
    Endpoint("POST", "/api/runs/{run_id}/cancel", cancel_run, "submit", "Cancel a run's queued and running jobs",
             status=202, response=RunOut, errors=(404,), tag="runs"),
    Endpoint("POST", "/api/runs/{run_id}/jobs/{job}/cancel", cancel_job, "submit",
             "Cancel one job; its downstream is skipped, the rest of the run goes on", status=202,
             response=RunOut, errors=(404,), tag="runs"),
    Endpoint("POST", "/api/runs/{run_id}/restart", restart_run, "submit",
             "Start a new run (triggered_by: restart) of this run's definition version with its inputs and tags;"
             " overrides merge over its own (Idempotency-Key honoured)", body=RestartRequest, status=201,
             response=RunOut, errors=(404, 422, 429), tag="runs",
             params=(IDEMPOTENCY_KEY,)),
    Endpoint("POST", "/api/runs/{run_id}/reschedule", reschedule_run, "submit",
             "Move a delayed run's start (scheduled_at or delay); now or past starts it at once",
             body=RescheduleRequest, body_required=True, response=RunOut, errors=(400, 404, 409, 422), tag="runs"),
    Endpoint("POST", "/api/runs/{run_id}/retry", retry_run, "submit",
             "Re-run a finished run's failed, cancelled and skipped jobs as new attempts; successful jobs keep"
             " their outputs", status=202, response=RunOut, errors=(404, 409), tag="runs"),
    Endpoint("PUT", "/api/runs/{run_id}/debug", set_debug, "submit", "Turn the run's debug mode on or off (a mark"
             " on the run and an event)", body=DebugMode, body_required=True, response=RunOut, errors=(404, 422),
             tag="runs"),
    Endpoint("DELETE", "/api/runs/{run_id}/idempotency-key", reset_idempotency_key, "submit",
             "Forget the run's Idempotency-Key: a start with that key starts a new run", response=RunOut,
             errors=(404, 409), tag="runs"),
    Endpoint("GET", "/api/runs/{run_id}/lineage", lineage, "read",
             "The run's lineage of continuations, from the run that continues none", response=list[RunOut],
             errors=(404,), tag="runs"),
    Endpoint("POST", "/api/runs/{run_id}/jobs/{job}/retry", retry_job, "submit",
             "Retry one job of a finished run and its skipped downstream", status=202, response=RunOut,
             errors=(404, 409), tag="runs"),
    Endpoint("GET", "/api/runs/{run_id}/events", events, "read", "A run's events, oldest first",
             response=list[EventOut], errors=(400, 404, 422), tag="runs",
             params=EVENT_FILTERS + (Param("after", StreamId, "only events after this id"), _EVENTS_LIMIT)),
    Endpoint("GET", "/api/runs/{run_id}/events/stream", events_stream, "read",
             "Server-Sent Events: the run's events so far, then live (`event`), then `end` with the run",
             stream=True, errors=(400, 404, 503), tag="runs",
             params=EVENT_FILTERS + RESUME),
    Endpoint("POST", "/api/runs/cancel", bulk_cancel, "submit",
             "Cancel runs by id or by filter, at most 1,000 a call; one outcome per run", body=BulkRequest,
             body_required=True, response=BulkAnswer, errors=(422,), tag="runs"),
    Endpoint("POST", "/api/runs/retry", bulk_retry, "submit",
             "Retry runs by id or by filter, at most 1,000 a call; one outcome per run", body=BulkRequest,
             body_required=True, response=BulkAnswer, errors=(422,), tag="runs"),
    # seed 002's workflow-scoped events, of the latest run
    Endpoint("GET", "/api/workflows/{wf}/events", for_latest_run(events), "read",
             "The events of the workflow's latest run", response=list[EventOut], errors=(400, 404, 422),
             tag="runs", params=EVENT_FILTERS + (Param("after", StreamId, "only events after this id"),)),
]
