"""The in-job SDK: what a running job reports and asks of its server, each
call scoped to its lease (`/api/jobs/{lease_id}/...`, the lease's run token
or its worker's token); and the operator's side of it: events, approvals,
a run's state, checkpoints and child runs.

Restep's and Strait's executor paths map onto these same handlers
(routes/sdk_seeds.py)."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..auth import principal
from ..definitions import DefinitionError
from ..definitions.spawn import parse_spawn
from ..errors import BadRequest, Unprocessable
from ..http import JSON, decode_body, param
from ..models import (
    NOTE_FIELD, OUTPUT_KEY_FIELD, Accepted, Annotations, CheckpointOut, ChildRun, Continuation, EventKey, EventPost,
    LogAccepted, LogBody, LogEntry, Note, OutputValues, Payload, ProgressUpdate, Released, JobOut, ResourceSample,
    RunOut, Spawned, SpawnRequest, StateKey, StateSet, StepId, StepUpdate, StructuredOutput, StructuredOutputSet,
    WaitRequest, Waiting,
)
from ..routing import JSON_MEDIA, YAML_MEDIA, Endpoint, OneOf, Param, lease_calls

_OK = Accepted()
_annotations = msgspec.json.Decoder(Annotations)
_note = msgspec.json.Decoder(Note)
_child = msgspec.json.Decoder(ChildRun)
# Restep's and Strait's step states, and rota's own (rota worker reports a
# step whose if: is false, or that an earlier failure skips, as skipped).
SEED_STEP_STATES = ("running", "completed", "failed", "progress")
STEP_STATES = SEED_STEP_STATES + ("skipped",)
# Strait's typed reports, stored as run events of these types.
TYPED_EVENTS = {"usage": "usage", "tool-call": "tool_call", "stream": "stream"}

journal = logging.getLogger("rota.events")


def _lease(request: Request) -> tuple[Any, str, str]:
    """(the store, the lease id, who the lease scripts check it against)."""
    return request.app.state.store, request.path_params["lease_id"], principal(request).lease_caller


async def _json(request: Request) -> Any:
    """Any JSON body (what a checkpoint, an annotation, a spawn may be)."""
    return await decode_body(request, Any)


async def progress(request: Request) -> Response:
    update = await decode_body(request, ProgressUpdate, empty_ok=True)
    store, lease_id, caller = _lease(request)
    await store.report_progress(lease_id, caller, update)
    return JSON(_OK)


async def log(request: Request) -> Response:
    body = await decode_body(request, LogBody)
    if body.logs is not None:
        entries = body.logs
    else:  # (LogBody holds one or the other)
        entries = [LogEntry(level=body.level, message=body.message, log_data=body.log_data,
                            progress_percent=body.progress_percent, step=body.step,
                            execution_step_id=body.execution_step_id)]
    store, lease_id, caller = _lease(request)
    kept, dropped = await store.log_entries(lease_id, caller, entries)
    return JSON(LogAccepted(ok=True, count=kept, dropped=dropped))


_STEP = Param("step", StepId, "the step: its index in a `steps:` job, or the executor's own id", where="path")
_KEY = Param("key", StateKey, "a key of the run's state", where="path", error="invalid_key")
_EVENT_KEY = Param("event_key", EventKey, "the event's key", where="path", error="invalid_key")


def _step(state: str):
    async def step(request: Request) -> Response:
        step_id = param(request, _STEP)
        update = await decode_body(request, StepUpdate, empty_ok=True)
        store, lease_id, caller = _lease(request)
        await store.report_step(lease_id, caller, step_id, state, update)
        return JSON(_OK)

    return step


async def checkpoint(request: Request) -> Response:
    body = await _json(request)
    # {"data": X} saves X; any other body is saved whole (Strait's form)
    data = body["data"] if isinstance(body, dict) and set(body) == {"data"} else body
    store, lease_id, caller = _lease(request)
    await store.save_checkpoint(lease_id, caller, data)
    return JSON(_OK)


async def state_all(request: Request) -> Response:
    store, lease_id, caller = _lease(request)
    return JSON(await store.state_all(lease_id, caller))


def _state_key(request: Request) -> str:
    return param(request, _KEY)


async def state_get(request: Request) -> Response:
    store, lease_id, caller = _lease(request)
    key = _state_key(request)
    return JSON(StateSet(key=key, value=await store.state_get(lease_id, caller, key)))


class _Value(msgspec.Struct):
    value: Any


async def state_put(request: Request) -> Response:
    key = _state_key(request)
    body = await decode_body(request, _Value)
    store, lease_id, caller = _lease(request)
    await store.state_set(lease_id, caller, key, body.value)
    return JSON(_OK)


async def state_post(request: Request) -> Response:
    body = await decode_body(request, StateSet)
    store, lease_id, caller = _lease(request)
    await store.state_set(lease_id, caller, body.key, body.value)
    return JSON(_OK)


async def state_delete(request: Request) -> Response:
    key = _state_key(request)
    store, lease_id, caller = _lease(request)
    await store.state_delete(lease_id, caller, key)
    return JSON(_OK)


async def annotate(request: Request) -> Response:
    raw = await request.body()
    body = await _json(request)
    store, lease_id, caller = _lease(request)
    try:
        if isinstance(body, dict) and NOTE_FIELD in body:
            await store.add_note(lease_id, caller, _note.decode(raw))
            return JSON(Accepted(count=1))
        count = await store.annotate(lease_id, caller, _annotations.decode(raw))
    except msgspec.ValidationError as exc:
        raise Unprocessable("invalid_body", f"{exc}: send {{key: value}} strings, or a note"
                            ' {"markdown", "style", "context"}', {"field": str(exc).rpartition("`$.")[2].rstrip("`")}) \
            from None
    return JSON(Accepted(count=count))


async def output(request: Request) -> Response:
    store, lease_id, caller = _lease(request)
    body = await _json(request)
    if isinstance(body, dict) and OUTPUT_KEY_FIELD in body:
        # Strait's structured output: {output_key, value, schema?}
        got = await decode_body(request, StructuredOutputSet)
        await store.structured_output(lease_id, caller, got.output_key, got.value, got.schema)
        return JSON(Accepted(count=1))
    values = await decode_body(request, OutputValues)
    count = await store.set_outputs(lease_id, caller, values, request.app.state.settings.max_output_bytes)
    return JSON(Accepted(count=count))


async def spawn(request: Request) -> Response:
    raw = await request.body()
    store, lease_id, caller = _lease(request)
    if not raw.strip():
        raise BadRequest("empty_body", "send the jobs to add ({jobs: {id: job}}) or a workflow to start"
                                       ' ({"workflow_id", "inputs"})')
    content_type = request.headers.get("content-type")
    if (content_type or "").startswith("application/json"):
        body = await _json(request)
        if isinstance(body, dict) and "workflow_id" in body:
            try:
                child = _child.decode(raw)
            except msgspec.ValidationError as exc:
                raise Unprocessable("invalid_body", str(exc), {"field": str(exc).rpartition("`$.")[2].rstrip("`")}) \
                    from None
            return JSON(Spawned(child_run_id=await store.spawn_child(lease_id, caller, child)), status_code=201)
    _, _, existing = await store.lease_run(lease_id, caller)
    try:
        doc = await run_in_threadpool(parse_spawn, raw, content_type, existing)
    except DefinitionError as exc:
        raise Unprocessable("invalid_spawn", str(exc), {"problems": exc.problems}) from None
    added = await store.spawn_jobs(lease_id, caller, doc.jobs, doc.wait)
    return JSON(Spawned(jobs=added), status_code=201)


def _iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


async def wait_for_event(request: Request) -> Response:
    req = await decode_body(request, WaitRequest)
    store, lease_id, caller = _lease(request)
    until = await store.wait_for_event(lease_id, caller, req.event_key, req.timeout_secs)
    return JSON(Waiting(event_key=req.event_key, expires_at_ms=until, expires_at=_iso(until), trigger_id=lease_id))


async def resources(request: Request) -> Response:
    sample = await decode_body(request, ResourceSample, empty_ok=True)
    store, lease_id, caller = _lease(request)
    await store.report_resources(lease_id, caller, sample)
    return JSON(_OK)


async def payload(request: Request) -> Response:
    store, lease_id, caller = _lease(request)
    return JSON(await store.payload(lease_id, caller))


def _typed(kind: str):
    async def typed(request: Request) -> Response:
        body = await decode_body(request, dict[str, Any], empty_ok=True)
        store, lease_id, caller = _lease(request)
        await store.typed_event(lease_id, caller, kind, body)
        return JSON(_OK)

    return typed


async def continue_run(request: Request) -> Response:
    body = await decode_body(request, Continuation, empty_ok=True)
    store, lease_id, caller = _lease(request)
    run = await store.continue_run(lease_id, caller, body.payload or body.inputs or {})
    journal.info("lease %s: its run continues as run %s", lease_id, run)
    return JSON(await store.get_run(run), status_code=201)


async def cancel_own(request: Request) -> Response:
    store, lease_id, caller = _lease(request)
    run, job = await store.cancel_own_job(lease_id, caller)
    return JSON((await store.run_job(run, job))[1])


# ---- the operator's side -------------------------------------------------------


async def fire_event(request: Request) -> Response:
    body = await decode_body(request, EventPost, empty_ok=True)
    key = param(request, _EVENT_KEY)
    released = await request.app.state.store.fire_event(key, body.payload)
    journal.info("event %s fired: %d waiting job(s) released", key, released)
    return JSON(Released(event_key=key, released=released))


async def approve(request: Request) -> Response:
    body = await decode_body(request, EventPost, empty_ok=True)
    p = request.path_params
    store = request.app.state.store
    token = principal(request).token_id
    who = f"token {token}" if token else "an operator (auth off)"
    await store.approve(p["run_id"], p["job"], body.payload, who)
    journal.info("job %s/%s approved by %s", p["run_id"], p["job"], who)
    return JSON((await store.run_job(p["run_id"], p["job"]))[1], status_code=202)


async def run_state(request: Request) -> Response:
    return JSON(await request.app.state.store.run_state(request.path_params["run_id"]))


async def checkpoints(request: Request) -> Response:
    p = request.path_params
    return JSON(await request.app.state.store.checkpoints(p["run_id"], p["job"]))


async def children(request: Request) -> Response:
    return JSON(await request.app.state.store.children(request.path_params["run_id"]))


async def run_checkpoints(request: Request) -> Response:
    return JSON(await request.app.state.store.run_checkpoints(request.path_params["run_id"]))


async def structured_outputs(request: Request) -> Response:
    return JSON(await request.app.state.store.structured_outputs(request.path_params["run_id"]))


# What each in-job call is, by its path under a lease: shared with the seed
# path tables, which put Restep's and Strait's prefixes before the same
# suffixes.
_E = (401, 403, 409, 422)
CALLS: dict[tuple[str, str], dict] = {
    ("POST", "/progress"): dict(handler=progress, summary="Report progress: percent, current step",
                                body=ProgressUpdate, response=Accepted, errors=_E),
    ("POST", "/log"): dict(handler=log, summary="Log structured entries (one, or `logs`) beside the job's output;"
                           " they share the attempt's LOG_MAX_BYTES with its output (`dropped`, then 413)",
                           body=LogBody, body_required=True, response=LogAccepted, errors=(400, 413) + _E),
    **{("POST", f"/steps/{{step}}/{state}"): dict(
        handler=_step(state), summary=f"Report a step {state}", body=StepUpdate, response=Accepted, errors=_E,
        params=(_STEP,))
       for state in STEP_STATES},
    ("POST", "/checkpoint"): dict(handler=checkpoint, summary="Save a checkpoint for the job's next attempt"
                                  " ({data}, or any JSON object)", body=Any, body_required=True,
                                  response=Accepted, errors=(400,) + _E),
    ("GET", "/state"): dict(handler=state_all, summary="The run's state: every key and value",
                            response=dict[str, Any], errors=_E),
    ("POST", "/state"): dict(handler=state_post, summary="Set a key of the run's state ({key, value})",
                             body=StateSet, body_required=True, response=Accepted, errors=(400,) + _E),
    ("GET", "/state/{key}"): dict(handler=state_get, summary="One key of the run's state",
                                  response=StateSet, errors=(404,) + _E, params=(_KEY,)),
    ("PUT", "/state/{key}"): dict(handler=state_put, summary="Set one key of the run's state ({value})",
                                  body=_Value, body_required=True, response=Accepted, errors=(400,) + _E,
                                  params=(_KEY,)),
    ("DELETE", "/state/{key}"): dict(handler=state_delete, summary="Delete one key of the run's state",
                                     response=Accepted, errors=_E, params=(_KEY,)),
    ("POST", "/annotate"): dict(handler=annotate, summary="Annotate the job ({key: value}) or the run (a"
                                " Markdown note: {markdown, style, context})", body=OneOf((Annotations, Note)),
                                body_required=True, response=Accepted, errors=(400,) + _E),
    ("POST", "/output"): dict(handler=output, summary="Set outputs now ({key: value}); complete's win. Or a"
                              " structured output of the run: {output_key, value, schema?}",
                              body=OneOf((OutputValues, StructuredOutputSet)), body_required=True,
                              response=Accepted, errors=(400,) + _E),
    ("POST", "/continue"): dict(handler=continue_run, summary="Start a continuation of this run: a new run of its"
                                " workflow with these inputs (`payload` or `inputs`); a run continues once",
                                body=Continuation, status=201, response=RunOut, errors=(404,) + _E),
    ("POST", "/spawn"): dict(handler=spawn, summary="Add jobs to this run ({jobs, wait}, JSON or YAML), or start"
                             " a child run ({workflow_id, inputs})", body=OneOf((SpawnRequest, ChildRun)),
                             yaml=SpawnRequest, body_required=True, media=JSON_MEDIA + YAML_MEDIA, status=201,
                             response=Spawned,
                             errors=(400, 404) + _E),
    ("POST", "/wait-for-event"): dict(handler=wait_for_event, summary="End this attempt as waiting for an"
                                      " event; the job runs again when it comes", body=WaitRequest,
                                      body_required=True, response=Waiting, errors=(400,) + _E),
    ("POST", "/resources"): dict(handler=resources, summary="Report a resource sample (CPU, memory)",
                                 body=ResourceSample, response=Accepted, errors=_E),
    ("GET", "/payload"): dict(handler=payload, summary="The job's inputs, upstream outputs, checkpoint and event",
                              response=Payload, errors=_E),
    **{("POST", f"/{path}"): dict(handler=_typed(kind), summary=f"Record a `{kind}` run event",
                                  body=dict[str, Any], response=Accepted, errors=_E)
       for path, kind in TYPED_EVENTS.items()},
    ("POST", "/cancel"): dict(handler=cancel_own, summary="Cancel this job (its downstream is skipped)",
                              response=JobOut, errors=_E),
}


endpoints = lease_calls("/api/jobs/{lease_id}", "in-job sdk", CALLS) + [
    Endpoint("POST", "/api/events/{event_key}", fire_event, "submit",
             "Fire an event: every job waiting on its key runs again (a gate succeeds) with the payload",
             body=EventPost, response=Released, errors=(400, 422), tag="in-job sdk", params=(_EVENT_KEY,)),
    Endpoint("POST", "/api/runs/{run_id}/jobs/{job}/approve", approve, "submit",
             "Release one waiting job or approval gate, with an optional payload", body=EventPost,
             status=202, response=JobOut, errors=(400, 404, 409, 422), tag="runs"),
    Endpoint("GET", "/api/runs/{run_id}/state", run_state, "read", "The run's state, as its jobs set it",
             response=dict[str, Any], errors=(404,), tag="runs"),
    Endpoint("GET", "/api/runs/{run_id}/jobs/{job}/checkpoints", checkpoints, "read",
             "The job's checkpoints, every one kept, oldest first", response=list[CheckpointOut],
             errors=(404,), tag="runs"),
    Endpoint("GET", "/api/runs/{run_id}/checkpoints", run_checkpoints, "read",
             "Every checkpoint kept of the run's jobs, by sequence", response=list[CheckpointOut],
             errors=(404,), tag="runs"),
    Endpoint("GET", "/api/runs/{run_id}/outputs", structured_outputs, "read",
             "The run's structured outputs (JSON values by key, with their schemas)",
             response=list[StructuredOutput], errors=(404,), tag="runs"),
    Endpoint("GET", "/api/runs/{run_id}/children", children, "read", "Runs this run's jobs started",
             response=list[RunOut], errors=(404,), tag="runs"),
]
