"""Workflow definitions: create (seed 002: a one-off, `?run=true` starts
it), put under a stable id, delete, show; and seed 002's workflow-scoped
calls, which mean the workflow's latest run (list, status, run, cancel)."""

from __future__ import annotations

import logging
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..auth import principal
from ..definitions import DefinitionError, parse_workflow
from ..errors import BadRequest, Unprocessable
from ..http import IDEMPOTENCY_KEY, JSON, page_params, param, too_deep, too_deep_error
from ..models import DefinitionOut, JobStatus, WorkflowDocument, WorkflowOut, WorkflowSpec
from ..routing import JSON_MEDIA, YAML_MEDIA, Endpoint, Param
from ..store import Store, definition_version
from ..store.starts import checked_inputs

journal = logging.getLogger("rota.events")

# A page of workflows stops before this many jobs in all (one workflow
# alone may have up to 1000): a page is a bounded amount of work.
MAX_PAGE_JOBS = 10_000


async def _document(request: Request) -> tuple[WorkflowSpec, str]:
    """The checked definition and the document's text, or 4xx."""
    body = await request.body()
    await request.app.state.auth.check_alive(principal(request))  # not revoked meanwhile
    if not body.strip():
        raise BadRequest("empty_body", "send a workflow document (JSON or YAML)")
    try:
        # Parsing a large document takes real CPU: keep it off the event loop.
        spec = await run_in_threadpool(parse_workflow, body, request.headers.get("content-type"))
    except DefinitionError as exc:
        if request.headers.get("content-type", "").startswith("application/json") and too_deep(body):
            raise too_deep_error() from None
        raise Unprocessable("invalid_workflow", str(exc), {"problems": exc.problems}) from None
    return spec, body.decode("utf-8-sig")


def _idempotency_key(request: Request, scope: str) -> str:
    key = param(request, IDEMPOTENCY_KEY, "")
    # Keys are per token: two teams' CI may well pick the same one.
    return f"{principal(request).token_id}:{scope}:{key}" if key else ""


async def create_workflow(request: Request) -> JSON:
    store: Store = request.app.state.store
    run = param(request, _RUN, False)
    key = _idempotency_key(request, "create")
    spec, text = await _document(request)
    if spec.schedules:
        # A one-off goes with its run's retention: nothing would be left to fire.
        raise Unprocessable("invalid_workflow", "on.schedule: a one-off workflow (POST /api/workflows) cannot have"
                            " a schedule; store it under an id (PUT /api/workflows/{id}, rota submit --id, or a file"
                            " in WORKFLOWS_DIR)", {"problems": [{"field": "on.schedule", "message": "a one-off"
                                                                 " workflow cannot have a schedule; PUT it under an"
                                                                 " id"}]})
    inputs = checked_inputs(spec.inputs, {}, spec.name) if run else {}
    defined = await store.define_workflow(
        spec, str(uuid.uuid4()), kind="oneoff", document=text, start_run=str(uuid.uuid4()) if run else None,
        inputs=inputs, idempotency_key=key, request_hash=f"{definition_version(spec)}:{int(run)}",
        owner=principal(request).token_id)
    headers = _idempotent(defined)
    workflow = await store.get_workflow(defined.workflow_id)
    if defined.outcome != "replayed":
        journal.info("workflow %s (%s) created%s", workflow.id, workflow.name,
                    f"; run {workflow.latest_run_id} started" if run else "")
    return JSON(workflow, status_code=201, headers=headers)


def _idempotent(defined) -> dict | None:
    """A replay's header; a key reused for another request is refused (nothing changed)."""
    if defined.outcome == "idem_reused":
        raise Unprocessable("idempotency_key_reused",
                            "this Idempotency-Key was used for a different request; use a new key",
                            {"field": "Idempotency-Key", "workflow_id": defined.workflow_id})
    return {"Idempotent-Replayed": "true"} if defined.outcome == "replayed" else None


async def put_workflow(request: Request) -> JSON:
    store: Store = request.app.state.store
    wf = request.path_params["wf"]
    # A CI step retried with the same key and document changes nothing; with
    # another document it is refused before anything is replaced.
    key = _idempotency_key(request, f"put:{wf}")
    spec, text = await _document(request)
    defined = await store.define_workflow(spec, wf, kind="put", document=text, idempotency_key=key,
                                          request_hash=definition_version(spec), owner=principal(request).token_id)
    headers = _idempotent(defined)
    status = 201 if defined.outcome == "created" else 200
    if defined.outcome in ("created", "updated"):
        journal.info("workflow %s (%s) %s", wf, spec.name, defined.outcome)
    return JSON(await store.get_workflow(wf), status_code=status, headers=headers)


async def delete_workflow(request: Request) -> Response:
    await request.app.state.store.delete_workflow(request.path_params["wf"])
    journal.info("workflow %s deleted", request.path_params["wf"])
    return Response(status_code=204)


async def definition(request: Request) -> JSON:
    return JSON(await request.app.state.store.get_definition(request.path_params["wf"]))


async def list_workflows(request: Request) -> JSON:
    limit, offset = page_params(request)
    status = param(request, _STATUS)
    page = await request.app.state.store.list_workflows(limit, offset, status, max_jobs=MAX_PAGE_JOBS)
    # A page cut short by the job bound says where the next one starts.
    return JSON(page, headers={"X-Next-Offset": str(offset + len(page))})


async def workflow_status(request: Request) -> JSON:
    return JSON(await request.app.state.store.get_workflow(request.path_params["wf"]))


async def run_workflow(request: Request) -> JSON:
    store, wf = request.app.state.store, request.path_params["wf"]
    await store.run_workflow(wf)
    workflow = await store.get_workflow(wf)
    journal.info("run %s (%s #%s) started", workflow.latest_run_id,
                 workflow.name if workflow.kind == "oneoff" else wf, workflow.latest_run_number)
    return JSON(workflow, status_code=202)


async def cancel_workflow(request: Request) -> JSON:
    store, wf = request.app.state.store, request.path_params["wf"]
    await store.cancel_workflow(wf)
    return JSON(await store.get_workflow(wf), status_code=202)


_DOCUMENT = dict(body=WorkflowDocument, body_required=True, media=JSON_MEDIA + YAML_MEDIA)
_RUN = Param("run", bool, "start the workflow at once (true or false)")
_STATUS = Param("status", JobStatus, "only workflows whose latest run has a job in this status")
endpoints = [
    Endpoint("POST", "/api/workflows", create_workflow, "submit",
             "Create a one-off workflow from a JSON or YAML document; ?run=true starts it",
             status=201, response=WorkflowOut, errors=(400, 413, 415, 422, 429), tag="workflows", **_DOCUMENT,
             params=(_RUN, IDEMPOTENCY_KEY)),
    Endpoint("GET", "/api/workflows", list_workflows, "read",
             "List workflows with their latest run, newest first (a page stops before 10,000 jobs in all;"
             " X-Next-Offset says where the next page starts)",
             response=list[WorkflowOut], errors=(422,), tag="workflows",
             params=page_params.params + (_STATUS,)),
    Endpoint("PUT", "/api/workflows/{wf}", put_workflow, "submit",
             "Create or replace a definition under this id, without starting it (runs in progress keep the"
             " definition they started with); 201 when it created one", status=200, created=True,
             response=WorkflowOut,
             errors=(400, 409, 413, 415, 422, 429), tag="workflows", **_DOCUMENT),
    Endpoint("DELETE", "/api/workflows/{wf}", delete_workflow, "admin",
             "Delete a definition with its finished runs (409 while a run is active)", status=204,
             errors=(404, 409), tag="workflows"),
    Endpoint("GET", "/api/workflows/{wf}", workflow_status, "read",
             "A workflow and its latest run's jobs (`idle` if it never ran)", response=WorkflowOut,
             errors=(404,), tag="workflows"),
    Endpoint("GET", "/api/workflows/{wf}/status", workflow_status, "read",
             "A workflow and its latest run's jobs (`idle` if it never ran)", response=WorkflowOut,
             errors=(404,), tag="workflows"),
    Endpoint("GET", "/api/workflows/{wf}/definition", definition, "read",
             "The definition: its version and the document as submitted", response=DefinitionOut,
             errors=(404,), tag="workflows"),
    Endpoint("POST", "/api/workflows/{wf}/run", run_workflow, "submit",
             "Start a new run (seed 002: 409 while the latest run is still going)",
             status=202, response=WorkflowOut, errors=(404, 409), tag="workflows"),
    Endpoint("POST", "/api/workflows/{wf}/cancel", cancel_workflow, "submit",
             "Cancel the latest run's queued and running jobs", status=202, response=WorkflowOut, errors=(404,),
             tag="workflows"),
]
