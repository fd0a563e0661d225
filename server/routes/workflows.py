"""Workflow management: create (JSON or YAML), list, status, run, cancel."""

from __future__ import annotations

import uuid

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..auth import principal
from ..definitions import DefinitionError, parse_workflow
from ..errors import BadRequest, Unprocessable
from ..http import JSON, page_params, query_flag, stream_id, too_deep, too_deep_error
from ..models import JOB_STATUSES, EventEntry, JobStatus, WorkflowDocument, WorkflowOut
from ..routing import JSON_MEDIA, YAML_MEDIA, Endpoint, Param

# A page of workflows stops before this many jobs in all (one workflow
# alone may have up to 1000): a page is a bounded amount of work.
MAX_PAGE_JOBS = 10_000


async def create_workflow(request: Request) -> JSON:
    store = request.app.state.store
    body = await request.body()
    await request.app.state.auth.check_alive(principal(request))  # not revoked meanwhile
    if not body.strip():
        raise BadRequest("empty_body", "send a workflow document (JSON or YAML)")
    run = query_flag(request, "run")
    key = request.headers.get("idempotency-key", "")
    if len(key) > 200:
        raise Unprocessable("invalid_header", "Idempotency-Key is longer than 200 characters",
                            {"field": "Idempotency-Key"})
    try:
        # Parsing a large document takes real CPU: keep it off the event loop.
        spec = await run_in_threadpool(parse_workflow, body, request.headers.get("content-type"))
    except DefinitionError as exc:
        if request.headers.get("content-type", "").startswith("application/json") and too_deep(body):
            raise too_deep_error() from None
        raise Unprocessable("invalid_workflow", str(exc), {"problems": exc.problems}) from None
    if key:
        # Keys are per token: two teams' CI may well pick the same one.
        key = f"{principal(request).token_id}:{key}"
    outcome, wf = await store.create_workflow(spec, str(uuid.uuid4()), run=run, idempotency_key=key)
    if outcome == "idem_reused":
        raise Unprocessable("idempotency_key_reused",
                            "this Idempotency-Key was used for a different request; use a new key",
                            {"field": "Idempotency-Key", "workflow_id": wf})
    headers = {"Idempotent-Replayed": "true"} if outcome == "replayed" else None
    return JSON(await store.get_workflow(wf), status_code=201, headers=headers)


async def list_workflows(request: Request) -> JSON:
    limit, offset = page_params(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in JOB_STATUSES:
        raise Unprocessable("invalid_query", f"status must be one of {', '.join(JOB_STATUSES)}",
                            {"field": "status"})
    page = await request.app.state.store.list_workflows(limit, offset, status, max_jobs=MAX_PAGE_JOBS)
    # A page cut short by the job bound says where the next one starts.
    return JSON(page, headers={"X-Next-Offset": str(offset + len(page))})


async def workflow_status(request: Request) -> JSON:
    return JSON(await request.app.state.store.get_workflow(request.path_params["wf"]))


async def run_workflow(request: Request) -> JSON:
    store, wf = request.app.state.store, request.path_params["wf"]
    await store.run_workflow(wf)
    return JSON(await store.get_workflow(wf), status_code=202)


async def cancel_workflow(request: Request) -> JSON:
    store, wf = request.app.state.store, request.path_params["wf"]
    await store.cancel_workflow(wf)
    return JSON(await store.get_workflow(wf), status_code=202)


async def workflow_events(request: Request) -> JSON:
    store, wf = request.app.state.store, request.path_params["wf"]
    await store.get_workflow(wf)  # 404 for an unknown workflow
    after = stream_id(request.query_params.get("after", "0-0"), "after")
    events = await store.workflow_events(wf, after)
    return JSON([{"id": eid, "event": msgspec.Raw(e.encode())} for eid, e in events])


_AFTER = Param("after", str, "only entries after this stream id (e.g. 1710000000000-0)")
endpoints = [
    Endpoint("POST", "/api/workflows", create_workflow, "submit",
             "Create a workflow from a JSON or YAML document; ?run=true starts it",
             body=WorkflowDocument, body_required=True, media=JSON_MEDIA + YAML_MEDIA, status=201,
             response=WorkflowOut, errors=(400, 413, 415, 422), tag="workflows",
             params=(Param("run", bool, "start the workflow at once"),
                     Param("Idempotency-Key", str, "a retried submission with the same key and document"
                           " returns the first workflow (kept 24 h, per token)", where="header"))),
    Endpoint("GET", "/api/workflows", list_workflows, "read",
             "List workflows, newest first (a page stops before 10,000 jobs in all; X-Next-Offset says"
             " where the next page starts)",
             response=list[WorkflowOut], errors=(422,), tag="workflows",
             params=page_params.params + (Param("status", JobStatus, "only workflows with a job in this status"),)),
    Endpoint("GET", "/api/workflows/{wf}", workflow_status, "read", "A workflow and every job's state",
             response=WorkflowOut, errors=(404,), tag="workflows"),
    Endpoint("GET", "/api/workflows/{wf}/status", workflow_status, "read", "A workflow and every job's state",
             response=WorkflowOut, errors=(404,), tag="workflows"),
    Endpoint("POST", "/api/workflows/{wf}/run", run_workflow, "submit", "Start (or re-run) a workflow",
             status=202, response=WorkflowOut, errors=(404, 409), tag="workflows"),
    Endpoint("POST", "/api/workflows/{wf}/cancel", cancel_workflow, "submit",
             "Cancel a workflow's queued and running jobs", status=202, response=WorkflowOut, errors=(404,),
             tag="workflows"),
    Endpoint("GET", "/api/workflows/{wf}/events", workflow_events, "read",
             "A workflow's job state changes, oldest first, up to 1000 per call",
             response=list[EventEntry], params=(_AFTER,), errors=(400, 404), tag="workflows"),
]
