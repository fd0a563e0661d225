"""Strait's run-management API (seed 003) at its own paths, `/v1/runs...`,
onto rota's own run handlers and store calls: a Strait run is a rota run
(server/strait_view.py shows one as Strait does; docs/strait-restep.md
maps every field and status).

One table: each Strait path, its scope, and the native call it maps onto;
what a handler here adds is Strait's vocabulary (its statuses, its
filters, its answer shapes), never a second way to change a run."""

from __future__ import annotations

import uuid
from typing import Any, Optional
from urllib.parse import urlencode

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .. import strait_view as view
from ..errors import ApiError, Conflict, NotFound
from ..http import IDEMPOTENCY_KEY, JSON, RESUME, decode_body
from ..limits import MAX_EPOCH_MS
from ..models import RescheduleRequest, RestartRequest, RunFilter, RunOverrides
from ..models.strait import (
    BulkCancelled, CancelAllFilter, CancelResult, DebugBundle, DebugSet, DependencyStatus, DlqReplay, DlqReplayed,
    KeyReset, ReplayIds, RunIds, StatusOk, StraitCheckpoint, StraitEvent, StraitOutput, StraitReschedule,
    StraitRestart, StraitRun, StraitToolCall, StraitUsage,
)
from ..routing import Endpoint
from ..store import Store
from . import control, runs, sdk
from .strait_find import LIST_PARAMS, PAGE, PROJECT, list_dlq, list_runs, one, require_project, scan, views

# bulk-cancel-all cancels at most this many runs a call (then says `more`)
MAX_CANCEL_ALL = 10_000


def _query(request: Request, query: str) -> None:
    """Gives the native handler this query instead of the caller's."""
    request.scope["query_string"] = query.encode()
    request.__dict__.pop("_query_params", None)  # (Starlette keeps the parsed one)


def _store(request: Request) -> Store:
    return request.app.state.store


def _run_id(request: Request) -> str:
    return request.path_params["run_id"]


def _body(request: Request, body: msgspec.Struct) -> None:
    """Gives the native handler this body instead of the caller's (Strait's
    words for the same request)."""
    request._body = msgspec.json.encode(body)


async def _as_strait(request: Request, response: Response) -> JSON:
    """A native handler's answer (a run) as Strait's run, its status kept."""
    run = msgspec.json.decode(response.body)["run_id"]
    return JSON((await one(_store(request), run))[0], status_code=response.status_code,
                headers={k: v for k, v in response.headers.items() if k.lower() == "idempotent-replayed"})


# ---- one run ----------------------------------------------------------------------------


async def get_run(request: Request) -> JSON:
    return JSON((await one(_store(request), _run_id(request)))[0])


async def cancel_run(request: Request) -> JSON:
    store, run = _store(request), _run_id(request)
    got, head = await one(store, run)
    if head.get("state") == "done":
        raise Conflict("run_finished", f"run {run!r} has finished ({got.status}); there is nothing to cancel",
                       {"status": got.status})
    await runs.cancel_run(request)  # the native cancel
    return JSON((await one(store, run))[0])


async def _replay(store: Store, run: str, batch: str = "") -> str:
    got, _ = await one(store, run)
    if got.status not in view.REPLAYABLE:
        raise Conflict("run_not_replayable", f"run {run!r} is {got.status}; Strait replays a failed, timed_out,"
                       " crashed or system_failed run (a dead_letter one: dlq-replay)", {"status": got.status})
    # a replay is the native restart (a new run of the run's version, its
    # inputs, tags and overrides), as Strait says: triggered_by retry
    started = await store.restart_run(run, triggered_by="retry", keeps={"batch": batch} if batch else None)
    return started.run_id


async def replay(request: Request) -> JSON:
    store = _store(request)
    new = await _replay(store, _run_id(request))
    return JSON((await one(store, new))[0], status_code=201)


async def reschedule(request: Request) -> JSON:
    body = await decode_body(request, StraitReschedule)
    at = max(0, min(int(body.scheduled_at.timestamp() * 1000), MAX_EPOCH_MS))
    _body(request, RescheduleRequest(scheduled_at=at))
    return await _as_strait(request, await runs.reschedule_run(request))


async def restart(request: Request) -> JSON:
    body = await decode_body(request, StraitRestart, empty_ok=True)
    # a machine preset is the run's labels, as a per-run override
    overrides = RunOverrides(labels=[body.machine_preset]) if body.machine_preset else None
    _body(request, RestartRequest(overrides=overrides))
    return await _as_strait(request, await runs.restart_run(request))


async def _dlq_replay(store: Store, run: str) -> None:
    got, _ = await one(store, run)
    if got.status != "dead_letter":
        raise Conflict("run_not_dead_letter", f"run {run!r} is {got.status}, not dead_letter", {"status": got.status})
    await store.retry_run(run)  # the run's failed, cancelled and skipped jobs go again, in the same run


async def dlq_replay(request: Request) -> JSON:
    store, run = _store(request), _run_id(request)
    await _dlq_replay(store, run)
    return JSON((await one(store, run))[0])


async def children(request: Request) -> JSON:
    store = _store(request)
    return JSON(await views(store, [r.run_id for r in await store.children(_run_id(request))]))


async def lineage(request: Request) -> JSON:
    store = _store(request)
    return JSON(await views(store, [r.run_id for r in await store.lineage(_run_id(request))]))


async def _events(request: Request, kind: Optional[str] = None) -> list[dict]:
    """The run's events through the native events handler (its filters,
    `type` and `level`, and its bounds), as dicts."""
    if kind is not None:
        _query(request, f"type={kind}")
    response = await runs.events(request)
    return msgspec.json.decode(response.body)


async def events(request: Request) -> JSON:
    return JSON([msgspec.convert(view.event(e), StraitEvent) for e in await _events(request)])


async def _checkpoints(store: Store, run: str) -> list[StraitCheckpoint]:
    return [msgspec.convert(view.checkpoint(msgspec.structs.asdict(c), run), StraitCheckpoint)
            for c in await store.run_checkpoints(run)]


async def checkpoints(request: Request) -> JSON:
    return JSON(await _checkpoints(_store(request), _run_id(request)))


async def usage(request: Request) -> JSON:
    return JSON([msgspec.convert(view.usage(e), StraitUsage) for e in await _events(request, "usage")])


async def tool_calls(request: Request) -> JSON:
    return JSON([msgspec.convert(view.tool_call(e), StraitToolCall) for e in await _events(request, "tool_call")])


async def _outputs(store: Store, run: str) -> list[StraitOutput]:
    return [msgspec.convert(view.output(msgspec.structs.asdict(o), run), StraitOutput)
            for o in await store.structured_outputs(run)]


async def outputs(request: Request) -> JSON:
    return JSON(await _outputs(_store(request), _run_id(request)))


async def debug_bundle(request: Request) -> JSON:
    store, run = _store(request), _run_id(request)
    got, _ = await one(store, run)
    _query(request, "")
    raw = await _events(request)
    return JSON(DebugBundle(
        run=got, events=[msgspec.convert(view.event(e), StraitEvent) for e in raw],
        checkpoints=await _checkpoints(store, run),
        usage=[msgspec.convert(view.usage(e), StraitUsage) for e in raw if e["type"] == "usage"],
        tool_calls=[msgspec.convert(view.tool_call(e), StraitToolCall) for e in raw if e["type"] == "tool_call"],
        outputs=await _outputs(store, run)))


async def set_debug(request: Request) -> JSON:
    body = await decode_body(request, DebugSet, empty_ok=True)
    await _store(request).set_debug(_run_id(request), body.debug_mode)
    return JSON(StatusOk(status="ok"))


async def pause_run(request: Request) -> JSON:
    await control.pause_run(request)  # the native pause (a no-op on a paused or finished run)
    return JSON((await one(_store(request), _run_id(request)))[0])


async def resume_run(request: Request) -> JSON:
    await control.resume_run(request)
    return JSON((await one(_store(request), _run_id(request)))[0])


async def dependency_status(request: Request) -> JSON:
    got, _ = await one(_store(request), _run_id(request))
    # A rota run waits on no other run: its jobs' needs are inside it.
    return JSON(DependencyStatus(run_id=got.id, job_id=got.job_id, status=got.status))


async def reset_idempotency_key(request: Request) -> JSON:
    run = _run_id(request)
    await _store(request).reset_idempotency_key(run)
    return JSON(KeyReset(status="reset", run_id=run))


async def state(request: Request) -> Response:
    return await sdk.run_state(request)


async def stream_chunks(request: Request) -> Response:
    _query(request, urlencode({**request.query_params, "type": "stream"}))
    return await runs.events_stream(request)


# ---- many runs -----------------------------------------------------------------------------


async def _cancel_each(store: Store, ids: list[str]) -> BulkCancelled:
    results, canceled = [], 0
    for run in dict.fromkeys(ids):
        try:
            got, head = await one(store, run)
        except NotFound as exc:
            results.append(CancelResult(id=run, status="not_found", error=exc.message))
            continue
        if head.get("state") == "done":
            results.append(CancelResult(id=run, status=got.status, error="run already in a terminal state"))
            continue
        await store.cancel_run(run)
        results.append(CancelResult(id=run, status="canceled"))
        canceled += 1
    return BulkCancelled(results=results, total=len(results), canceled=canceled, failed=len(results) - canceled)


async def bulk_cancel(request: Request) -> JSON:
    body = await decode_body(request, RunIds)
    return JSON(await _cancel_each(_store(request), body.run_ids))


_ACTIVE = frozenset({"delayed", "queued", "dequeued", "executing", "waiting"})


async def bulk_cancel_all(request: Request) -> JSON:
    body = await decode_body(request, CancelAllFilter)
    require_project(request)
    flt = RunFilter(workflow_id=body.job_id, triggered_by=body.triggered_by, batch_id=body.batch_id)
    store = _store(request)
    if flt.workflow_id:
        await store.latest_run(flt.workflow_id)  # 404 for a workflow that does not exist
    wanted = (lambda st: st == body.status) if body.status else (lambda st: st in _ACTIVE)
    ids = await scan(store, flt, MAX_CANCEL_ALL + 1, wanted)
    answer = await _cancel_each(store, ids[:MAX_CANCEL_ALL])
    answer.more = len(ids) > MAX_CANCEL_ALL
    return JSON(answer)


async def bulk_replay(request: Request) -> JSON:
    body = await decode_body(request, ReplayIds)
    store, batch, new = _store(request), str(uuid.uuid4()), []
    for run in dict.fromkeys(body.run_ids):
        try:
            new.append(await _replay(store, run, batch))
        except ApiError:
            continue  # not found, not replayable: Strait skips it
    return JSON(await views(store, new))


async def bulk_dlq_replay(request: Request) -> JSON:
    body = await decode_body(request, DlqReplay)
    store = _store(request)
    ids = body.run_ids if body.run_ids is not None else \
        await scan(store, RunFilter(), body.limit, lambda st: st == "dead_letter")
    done = []
    for run in dict.fromkeys(ids):
        try:
            await _dlq_replay(store, run)
            done.append(run)
        except ApiError:
            continue
    if not done:
        raise Conflict("no_dead_letter_runs", "no dead_letter run to replay among those given")
    replayed = await views(store, done)
    return JSON(DlqReplayed(replayed=replayed, count=len(replayed)))


# ---- the table ------------------------------------------------------------------------------

_T = "strait runs"
_RUN = "/v1/runs/{run_id}"


def _e(method: str, path: str, handler, scope: str, summary: str, **more: Any) -> Endpoint:
    return Endpoint(method, path, handler, scope, f"Strait: {summary}", tag=_T, **more)


endpoints = [
    _e("GET", "/v1/runs", list_runs, "read", "Runs, newest first, filtered (as GET /api/runs)", response=list[StraitRun],
       errors=(422,), params=LIST_PARAMS),
    _e("GET", "/v1/runs/dlq", list_dlq, "read", "Runs whose status is dead_letter, newest first",
       response=list[StraitRun], errors=(422,), params=(PROJECT,) + PAGE),
    _e("POST", "/v1/runs/bulk-cancel", bulk_cancel, "submit", "Cancel runs by id (as POST /api/runs/cancel)",
       body=RunIds, body_required=True, response=BulkCancelled, errors=(422,)),
    _e("POST", "/v1/runs/bulk-cancel-all", bulk_cancel_all, "admin",
       f"Cancel every going run matching the filters, at most {MAX_CANCEL_ALL:,} a call (`more`: call again)",
       body=CancelAllFilter, body_required=True, response=BulkCancelled, errors=(404, 422), params=(PROJECT,)),
    _e("POST", "/v1/runs/bulk-replay", bulk_replay, "submit",
       "Replay runs by id, each as a new run, all with one batch_id", body=ReplayIds, body_required=True,
       response=list[StraitRun], errors=(422,)),
    _e("POST", "/v1/runs/bulk-dlq-replay", bulk_dlq_replay, "submit",
       "Replay dead_letter runs in place (as POST /api/runs/{run_id}/retry): these ids, or up to `limit` of the"
       " newest", body=DlqReplay, body_required=True, response=DlqReplayed, errors=(409, 422)),
    _e("GET", _RUN, get_run, "read", "A run (as GET /api/runs/{run_id})", response=StraitRun, errors=(404,)),
    _e("DELETE", _RUN, cancel_run, "submit", "Cancel a going run (as POST /api/runs/{run_id}/cancel)",
       response=StraitRun, errors=(404, 409)),
    _e("POST", _RUN + "/replay", replay, "submit",
       "Replay a failed, timed_out, crashed or system_failed run as a new run (as POST /api/runs/{run_id}/restart,"
       " triggered_by retry)",
       status=201, response=StraitRun, errors=(404, 409)),
    _e("POST", _RUN + "/dlq-replay", dlq_replay, "submit",
       "Replay a dead_letter run in place (as POST /api/runs/{run_id}/retry)", response=StraitRun,
       errors=(404, 409)),
    _e("GET", _RUN + "/stream", runs.events_stream, "read",
       "Server-Sent Events of the run (as GET /api/runs/{run_id}/events/stream)", stream=True,
       errors=(400, 404, 503), params=runs.EVENT_FILTERS + RESUME),
    _e("GET", _RUN + "/stream/chunks", stream_chunks, "read",
       "Server-Sent Events of the run's stream reports (events of type stream)", stream=True,
       errors=(400, 404, 503), params=RESUME),
    _e("GET", _RUN + "/children", children, "read", "The runs this run's jobs started (as"
       " GET /api/runs/{run_id}/children)", response=list[StraitRun], errors=(404,)),
    _e("GET", _RUN + "/events", events, "read", "The run's events, oldest first (as GET /api/runs/{run_id}/events)",
       response=list[StraitEvent], errors=(404, 422),
       params=tuple(p for p in runs.EVENT_FILTERS if p.name in ("type", "level"))),
    _e("GET", _RUN + "/checkpoints", checkpoints, "read", "Every checkpoint kept of the run (as"
       " GET /api/runs/{run_id}/checkpoints)", response=list[StraitCheckpoint], errors=(404,)),
    _e("GET", _RUN + "/usage", usage, "read", "The run's usage reports (its events of type usage)",
       response=list[StraitUsage], errors=(404,)),
    _e("GET", _RUN + "/tool-calls", tool_calls, "read", "The run's tool calls (its events of type tool_call)",
       response=list[StraitToolCall], errors=(404,)),
    _e("GET", _RUN + "/outputs", outputs, "read", "The run's structured outputs (as GET /api/runs/{run_id}/outputs)",
       response=list[StraitOutput], errors=(404,)),
    _e("GET", _RUN + "/debug-bundle", debug_bundle, "read",
       "The run with its events, checkpoints, usage, tool calls and outputs", response=DebugBundle, errors=(404,)),
    _e("POST", _RUN + "/debug", set_debug, "submit", "Turn debug mode on or off (as PUT /api/runs/{run_id}/debug)",
       body=DebugSet, response=StatusOk, errors=(404, 422)),
    _e("GET", _RUN + "/lineage", lineage, "read", "The run's lineage of continuations (as"
       " GET /api/runs/{run_id}/lineage)", response=list[StraitRun], errors=(404,)),
    _e("GET", _RUN + "/dependency-status", dependency_status, "read",
       "What the run waits on before it may start: in rota, no other run", response=DependencyStatus,
       errors=(404,)),
    _e("DELETE", _RUN + "/idempotency-key", reset_idempotency_key, "submit",
       "Forget the run's Idempotency-Key (as DELETE /api/runs/{run_id}/idempotency-key)", response=KeyReset,
       errors=(404, 409)),
    _e("POST", _RUN + "/reschedule", reschedule, "submit",
       "Move a delayed run's start to scheduled_at (as POST /api/runs/{run_id}/reschedule); a time past starts"
       " it now",
       body=StraitReschedule, body_required=True, response=StraitRun, errors=(400, 404, 409, 422)),
    _e("POST", _RUN + "/restart", restart, "submit",
       "A new run of the run's definition version, its inputs, tags and overrides (as POST"
       " /api/runs/{run_id}/restart); a machine_preset runs its jobs on workers with that label",
       body=StraitRestart, status=201, response=StraitRun, errors=(404, 422, 429), params=(IDEMPOTENCY_KEY,)),
    _e("POST", _RUN + "/pause", pause_run, "submit",
       "Pause a run: its queued jobs go to no worker until it resumes, running ones finish; its status stays"
       " (as POST /api/runs/{run_id}/pause; a paused or finished run is answered as it is)", response=StraitRun,
       errors=(404,)),
    _e("POST", _RUN + "/resume", resume_run, "submit",
       "Resume a paused run: its held jobs are queued again (as POST /api/runs/{run_id}/resume)",
       response=StraitRun, errors=(404,)),
    _e("GET", _RUN + "/state", state, "read", "The run's state (as GET /api/runs/{run_id}/state)",
       response=dict[str, Any], errors=(404,)),
]
