"""Strait's run-management API (seed 003) at its own paths, `/v1/runs...`,
onto rota's own run handlers and store calls: a Strait run is a rota run
(server/strait_view.py shows one as Strait does; docs/strait-restep.md
maps every field and status).

One table: each Strait path, its scope, and the native call it maps onto;
what a handler here adds is Strait's vocabulary (its statuses, its
filters, its answer shapes), never a second way to change a run."""

from __future__ import annotations

import datetime
import uuid
from urllib.parse import urlencode
from typing import Annotated, Any, Callable, Optional

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response

from .. import strait_view as view
from ..errors import ApiError, Conflict, NotFound, Unprocessable
from ..http import RESUME, JSON, Limit, decode_body, param
from ..limits import MAX_EPOCH_MS
from ..models import RunFilter, StateKey
from ..models.strait import (
    BulkCancelled, CancelAllFilter, CancelResult, DebugBundle, DebugSet, DependencyStatus, DlqReplay, DlqReplayed,
    KeyReset, ReplayIds, RunIds, StatusOk, StraitCheckpoint, StraitEvent, StraitOutput, StraitRun, StraitStatus,
    StraitToolCall, StraitUsage,
)
from ..models.runs import RunId, Trigger
from ..routing import Endpoint, Param
from ..store import Store
from . import runs, sdk

DEFAULT_PAGE, MAX_PAGE = 50, 100
# bulk-cancel-all cancels at most this many runs a call (then says `more`)
MAX_CANCEL_ALL = 10_000
_FILTER_TEXT = 4096  # payload_contains, as JSON text

# The query's parameters, each checked against its declared type (what
# /openapi.json shows).
_PROJECT = Param("project_id", Annotated[str, Meta(min_length=1, max_length=128)],
                 "required, as Strait requires it; rota has one project, which any value names", required=True)
_STATUS = Param("status", StraitStatus, "a Strait status")
_META_KEY = Param("metadata_key", StateKey, "runs whose metadata (their jobs' annotations) has this key")
_META_VALUE = Param("metadata_value", Annotated[str, Meta(max_length=1024)], "... with this value")
_TRIGGERED_BY = Param("triggered_by", Trigger, "api, cli, cron, retry, restart, spawn, continue, ...")
_BATCH = Param("batch_id", RunId, "runs one bulk-replay started")
_PAYLOAD = Param("payload_contains", Annotated[str, Meta(max_length=_FILTER_TEXT)],
                 "a JSON object the run's inputs contain (as PostgreSQL's @>)")
_LIMIT = Param("limit", Limit, f"at most this many (default {DEFAULT_PAGE}; above {MAX_PAGE} means {MAX_PAGE})")
_CURSOR = Param("cursor", Annotated[datetime.datetime, Meta(tz=True)],
                "the created_at of the last run of the page before (RFC 3339): runs created before it")
_PAGE = (_LIMIT, _CURSOR)


def _query(request: Request, query: str) -> None:
    """Gives the native handler this query instead of the caller's."""
    request.scope["query_string"] = query.encode()
    request.__dict__.pop("_query_params", None)  # (Starlette keeps the parsed one)


def _store(request: Request) -> Store:
    return request.app.state.store


def _run_id(request: Request) -> str:
    return request.path_params["run_id"]


async def views(store: Store, ids: list[str]) -> list[StraitRun]:
    """The Strait runs of these rota runs (those still kept), in order."""
    return [msgspec.convert(view.run(head, rows, meta), StraitRun) for head, rows, meta in await store.run_records(ids)]


async def one(store: Store, run: str) -> tuple[StraitRun, dict]:
    """A run as Strait shows it, and its head; 404 if there is none."""
    records = await store.run_records([run])
    if not records:
        raise NotFound("run_not_found", f"no run {run!r}")
    head, rows, meta = records[0]
    return msgspec.convert(view.run(head, rows, meta), StraitRun), head


# ---- listing -------------------------------------------------------------------------


def _project(request: Request) -> None:
    """Strait requires a project; rota has one, which every project_id names."""
    if param(request, _PROJECT) is None:
        raise Unprocessable("invalid_query", "project_id is required (rota has one project: any value names it)",
                            {"field": "project_id"})


def _limit(request: Request) -> int:
    return min(param(request, _LIMIT, DEFAULT_PAGE), MAX_PAGE)


def _cursor(request: Request) -> Optional[int]:
    """Strait's cursor: the created_at of the last run of the page before,
    as epoch ms (a time before any run: an empty page)."""
    when = param(request, _CURSOR)
    if when is None:
        return None
    return max(0, min(int(when.timestamp() * 1000), MAX_EPOCH_MS))


def _payload_filter(request: Request) -> Optional[dict]:
    raw = param(request, _PAYLOAD)
    if not raw:
        return None
    try:
        part = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        part = None
    if not isinstance(part, dict):
        raise Unprocessable("invalid_query", "payload_contains must be a JSON object", {"field": "payload_contains"})
    return part


def _run_filter(request: Request) -> RunFilter:
    key, value = param(request, _META_KEY), param(request, _META_VALUE)
    if value is not None and key is None:
        raise Unprocessable("invalid_query", "metadata_value needs metadata_key", {"field": "metadata_value"})
    return RunFilter(triggered_by=param(request, _TRIGGERED_BY), batch_id=param(request, _BATCH),
                     annotations={key: value} if key else {}, inputs_contain=_payload_filter(request))


async def _scan(store: Store, flt: RunFilter, limit: int, want: Optional[Callable[[str], bool]],
                before: Optional[int] = None) -> list[str]:
    """Run ids, newest first, created before `before` (epoch ms), whose
    Strait status `want` accepts: the head tells most statuses, a running
    run's jobs tell executing from dequeued, so those are read for it."""
    if before is not None:
        flt = msgspec.structs.replace(flt, created_before=before)
    coarse: Optional[Callable[[dict], bool]] = None
    if want is not None:
        def coarse(head: dict) -> bool:
            st = view.status(head, {})
            # a running job makes a run executing or dequeued: decided below
            return want(st) or (int(head.get("n:running") or 0) > 0 and (want("executing") or want("dequeued")))
    found: list[str] = []
    cursor = None
    while len(found) < limit:
        page, cursor = await store.list_runs(flt, limit, cursor, coarse)
        ids = [r.run_id for r in page]
        if want is not None and ids:
            records = await store.run_records(ids)
            ids = [head["id"] for head, rows, _ in records if want(view.status(head, rows))]
        found.extend(ids[:limit - len(found)])
        if cursor is None:
            break
    return found


async def list_runs(request: Request) -> JSON:
    _project(request)
    status = param(request, _STATUS)
    ids = await _scan(_store(request), _run_filter(request), _limit(request),
                      (lambda st: st == status) if status else None, _cursor(request))
    return JSON(await views(_store(request), ids))


async def list_dlq(request: Request) -> JSON:
    _project(request)
    ids = await _scan(_store(request), RunFilter(), _limit(request), lambda st: st == "dead_letter", _cursor(request))
    return JSON(await views(_store(request), ids))


# ---- one run ----------------------------------------------------------------------------


async def get_run(request: Request) -> JSON:
    return JSON((await one(_store(request), _run_id(request)))[0])


async def cancel_run(request: Request) -> JSON:
    store, run = _store(request), _run_id(request)
    got, head = await one(store, run)
    if head.get("state") != "active":
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
    return JSON((await one(store, new))[0])


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
        if head.get("state") != "active":
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
    _project(request)
    if body.job_id is None and body.batch_id is None and body.triggered_by is None and body.status is None:
        raise Unprocessable("invalid_body", "give at least one filter: job_id, batch_id, triggered_by, status",
                            {"field": "$"})
    try:
        flt = msgspec.convert({"workflow_id": body.job_id, "triggered_by": body.triggered_by,
                               "batch_id": body.batch_id}, RunFilter)
    except msgspec.ValidationError:
        raise Unprocessable("invalid_body", "job_id is not a workflow id", {"field": "$.job_id"}) from None
    store = _store(request)
    if flt.workflow_id:
        await store.latest_run(flt.workflow_id)  # 404 for a workflow that does not exist
    wanted = (lambda st: st == body.status) if body.status else (lambda st: st in _ACTIVE)
    ids = await _scan(store, flt, MAX_CANCEL_ALL + 1, wanted)
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
    if (body.run_ids is None) == (body.project_id is None):
        raise Unprocessable("invalid_body", "give either run_ids or project_id", {"field": "$"})
    store = _store(request)
    ids = body.run_ids if body.run_ids is not None else \
        await _scan(store, RunFilter(), body.limit, lambda st: st == "dead_letter")
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
       errors=(422,), params=(_PROJECT, _STATUS, _META_KEY, _META_VALUE, _TRIGGERED_BY, _BATCH, _PAYLOAD) + _PAGE),
    _e("GET", "/v1/runs/dlq", list_dlq, "read", "Runs whose status is dead_letter, newest first",
       response=list[StraitRun], errors=(422,), params=(_PROJECT,) + _PAGE),
    _e("POST", "/v1/runs/bulk-cancel", bulk_cancel, "submit", "Cancel runs by id (as POST /api/runs/cancel)",
       body=RunIds, body_required=True, response=BulkCancelled, errors=(422,)),
    _e("POST", "/v1/runs/bulk-cancel-all", bulk_cancel_all, "admin",
       f"Cancel every going run matching the filters, at most {MAX_CANCEL_ALL:,} a call (`more`: call again)",
       body=CancelAllFilter, body_required=True, response=BulkCancelled, errors=(404, 422), params=(_PROJECT,)),
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
       response=StraitRun, errors=(404, 409)),
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
    _e("GET", _RUN + "/state", state, "read", "The run's state (as GET /api/runs/{run_id}/state)",
       response=dict[str, Any], errors=(404,)),
]
