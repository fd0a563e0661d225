"""Workflow management: create (JSON or YAML), list, status, run, cancel."""

from __future__ import annotations

import uuid

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from ..definitions import DefinitionError, parse_workflow
from ..errors import BadRequest, Unprocessable
from ..http import JSON, query_flag, query_int, stream_id
from ..models import JOB_STATUSES

MAX_LIST = 1000


async def create_workflow(request: Request) -> JSON:
    store = request.app.state.store
    body = await request.body()
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
        raise Unprocessable("invalid_workflow", str(exc), {"problems": exc.problems}) from None
    outcome, wf = await store.create_workflow(spec, str(uuid.uuid4()), run=run, idempotency_key=key)
    headers = {"Idempotent-Replayed": "true"} if outcome == "replayed" else None
    return JSON(await store.get_workflow(wf), status_code=201, headers=headers)


async def list_workflows(request: Request) -> JSON:
    limit = min(query_int(request, "limit", 100, minimum=1), MAX_LIST)
    offset = query_int(request, "offset", 0)
    status = request.query_params.get("status") or None
    if status is not None and status not in JOB_STATUSES:
        raise Unprocessable("invalid_query", f"status must be one of {', '.join(JOB_STATUSES)}",
                            {"field": "status"})
    return JSON(await request.app.state.store.list_workflows(limit, offset, status))


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


routes = [
    Route("/api/workflows", create_workflow, methods=["POST"]),
    Route("/api/workflows", list_workflows, methods=["GET"]),
    Route("/api/workflows/{wf}", workflow_status, methods=["GET"]),
    Route("/api/workflows/{wf}/status", workflow_status, methods=["GET"]),
    Route("/api/workflows/{wf}/run", run_workflow, methods=["POST"]),
    Route("/api/workflows/{wf}/cancel", cancel_workflow, methods=["POST"]),
    Route("/api/workflows/{wf}/events", workflow_events, methods=["GET"]),
]
