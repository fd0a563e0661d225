"""The seeds' executor paths, onto rota's own handlers: an executor written
against Restep (`/api/executions/{id}/...`, seed 000) or Strait
(`/sdk/v1/runs/{id}/...`, seeds 001 and 004) works unchanged, with the
lease id as its execution or run id and the lease's run token as its
bearer token.

One table per seed, of path suffixes onto the native calls; Restep's
answers are wrapped as its document shows (`{"data": ..., "message": ...}`
and `{"status": "ok", "step": ...}`); Strait's are rota's own. Both seeds
expect a failure to retry while the job's retry budget lasts."""

from __future__ import annotations

import datetime
from typing import Any, Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .. import limits
from ..errors import Unprocessable
from ..http import IDEMPOTENCY_KEY, JSON, decode_body
from ..models import CompleteRequest, FailRequest, Inputs, RunCreate
from ..routing import Endpoint, Handler, lease_calls
from ..models.strait import StraitRun
from . import runs, sdk, strait_find, worker_protocol

CALLS = {**worker_protocol.LEASE_CALLS, **sdk.CALLS}

STRAIT = [
    ("POST", "/heartbeat"), ("POST", "/progress"), ("POST", "/log"), ("POST", "/annotate"), ("POST", "/checkpoint"),
    ("POST", "/output"), ("POST", "/complete"), ("POST", "/fail"), ("POST", "/spawn"), ("GET", "/state"),
    ("POST", "/state"), ("GET", "/state/{key}"), ("DELETE", "/state/{key}"), ("POST", "/wait-for-event"),
    ("POST", "/resources"), ("GET", "/payload"), ("POST", "/usage"), ("POST", "/tool-call"), ("POST", "/stream"),
    ("POST", "/continue"),
]

RESTEP = [
    ("POST", "/heartbeat"), ("POST", "/progress"), ("POST", "/log"), ("POST", "/complete"), ("POST", "/fail"),
    ("POST", "/cancel"), *(("POST", f"/steps/{{step}}/{state}") for state in sdk.SEED_STEP_STATES),
]


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(raw: bytes) -> dict:
    """A request's JSON object fields, once its handler has accepted them."""
    body = msgspec.json.decode(raw) if raw.strip() else {}
    return body if isinstance(body, dict) else {}


# Restep's answer per call: (message, the execution fields it shows).
def _execution(answer: dict, fields: dict, request: Request, suffix: str) -> dict:
    lease_id = request.path_params["lease_id"]
    if suffix == "/heartbeat":
        return {"id": lease_id, "status": "cancelled" if answer.get("cancelled") else "running",
                "last_heartbeat_at": _now_iso()}
    if suffix == "/progress":
        return {"id": lease_id, "status": "running", **{k: v for k, v in fields.items() if k in (
            "progress_percent", "current_step_name", "current_step_index", "metadata")}}
    if suffix == "/complete":
        return {"id": lease_id, "status": "completed", "completed_at": _now_iso(),
                "result_data": fields.get("result_data")}
    if suffix == "/fail":
        return {"id": lease_id, "status": "failed", "error_message": fields.get("error_message"),
                "error_type": fields.get("error_type"), "will_retry": answer.get("outcome") == "retrying"}
    return {"id": lease_id, "status": answer.get("status", "cancelled"), "completed_at": _now_iso()}


_MESSAGES = {"/heartbeat": "Heartbeat updated", "/progress": "Progress updated",
             "/complete": "Execution marked as completed", "/fail": "Execution marked as failed",
             "/cancel": "Execution cancelled"}


# The seeds' results take their own fields only, not rota's `next` claim
# (their answers have no place for the leases it would take).
_SEED_BODIES = {"/complete": CompleteRequest, "/fail": FailRequest}


def _seed_body(suffix: str, spec: dict) -> dict:
    return {**spec, "body": _SEED_BODIES[suffix]} if suffix in _SEED_BODIES else spec


def _restep(method: str, suffix: str, handler: Handler, spec: dict) -> tuple[Handler, dict]:
    async def wrapped(request: Request) -> Response:
        request.scope["rota.retry_by_default"] = True
        request.scope["rota.seed_path"] = True
        # Restep's executors heartbeat every 30-60 s: longer than a 30 s lease.
        request.scope["rota.min_lease_secs"] = limits.RESTEP_LEASE_SECS
        response = await handler(request)  # checks the body first
        fields = _fields(await request.body())  # (Starlette keeps the body read)
        answer = msgspec.json.decode(response.body) if response.body else {}
        if suffix == "/log":
            return JSON({"status": "ok", "count": answer.get("count", 0)})
        if suffix.startswith("/steps/"):
            state = suffix.rsplit("/", 1)[1]
            step: dict[str, Any] = {"id": request.path_params["step"]}
            if state == "progress":
                step["progress_percent"] = fields.get("progress_percent")
            else:
                step["status"] = state
            return JSON({"status": "ok", "step": step})
        return JSON({"data": _execution(answer, fields, request, suffix), "message": _MESSAGES[suffix]})

    # Restep's answers are its own shapes, not the native types.
    return wrapped, {**_seed_body(suffix, spec), "response": None, "summary": f"Restep: {spec['summary']}"}


def _strait(method: str, suffix: str, handler: Handler, spec: dict) -> tuple[Handler, dict]:
    async def wrapped(request: Request) -> Response:
        request.scope["rota.retry_by_default"] = True
        request.scope["rota.seed_path"] = True
        response = await handler(request)
        if suffix == "/continue":
            # Strait answers the continuation as a run of its own API
            run = msgspec.json.decode(response.body)["run_id"]
            return JSON((await strait_find.one(request.app.state.store, run))[0], status_code=response.status_code)
        return response

    if suffix == "/continue":
        spec = {**spec, "response": StraitRun}
    return wrapped, {**_seed_body(suffix, spec), "summary": f"Strait: {spec['summary']}"}


def _table(prefix: str, tag: str, paths: list[tuple[str, str]],
           wrap: Callable[[str, str, Handler, dict], tuple[Handler, dict]]) -> list:
    return lease_calls(prefix, tag, {key: CALLS[key] for key in paths}, wrap)


class TriggerRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Restep's trigger: the job's parameters (JSON values, checked as a
    start's inputs are)."""

    input_params: Inputs = {}


async def trigger(request: Request) -> Response:
    """Restep's `POST /api/jobs/{job_id}/trigger` onto rota's start of a run:
    its job is a rota workflow, its `input_params` the run's inputs."""
    body = await decode_body(request, TriggerRequest, empty_ok=True)
    # the native start's body
    request._body = msgspec.json.encode(RunCreate(inputs=body.input_params, triggered_by="trigger"))
    request.path_params["wf"] = request.path_params["job_id"]
    try:
        response = await runs.start_run(request)
    except Unprocessable as exc:
        _named_as_restep(exc)
        raise
    run = msgspec.json.decode(response.body)
    execution = {"id": run["run_id"], "job_id": run["workflow_id"], "status": "pending",
                 "input_params": body.input_params, "created_at": _iso(run["created_at"]),
                 "run_number": run["number"]}
    return JSON({"data": execution, "message": "Job triggered"}, status_code=response.status_code,
                headers={k: v for k, v in response.headers.items() if k.lower() == "idempotent-replayed"})


def _named_as_restep(exc: Unprocessable) -> None:
    """A refused input, named as the caller sent it: `input_params.X`."""
    field = exc.details.get("field") if isinstance(exc.details, dict) else None
    if isinstance(field, str) and (field == "inputs" or field.startswith("inputs.")):
        exc.details["field"] = "input_params" + field[len("inputs"):]
        exc.message = exc.message.replace("inputs.", "input_params.")
        exc.args = (exc.message,)


def _iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


endpoints = (_table("/api/executions/{lease_id}", "restep executor", RESTEP, _restep)
             + _table("/sdk/v1/runs/{lease_id}", "strait executor", STRAIT, _strait)
             + [Endpoint("POST", "/api/jobs/{job_id}/trigger", trigger, "submit",
                         "Restep: trigger a job (a rota workflow) with input_params: a new run whose inputs they are"
                         " (as POST /api/workflows/{wf}/runs; Idempotency-Key honoured)", body=TriggerRequest,
                         status=201, errors=(404, 422, 429), tag="restep executor", params=(IDEMPOTENCY_KEY,))])
