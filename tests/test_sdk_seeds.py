"""Executors written against the seeds' documents work against rota
unchanged: each executor below uses only the paths, bodies and answers its
seed documents (Restep's `/api/executions/{id}/...`, seed 000; Strait's
`/sdk/v1/runs/{id}/...`, seeds 001 and 004), with the lease id as its
execution or run id and the lease's run token as its bearer token."""

from __future__ import annotations

import httpx

from tests.test_api import assert_error
from tests.test_auth import bearer, make_token
from tests.test_runs import YAML

DOC = b"""
name: etl
jobs:
  extract:
    run: extract
    retries: 1
  load:
    needs: extract
    run: load
"""


async def lease_for_executor(api: httpx.AsyncClient) -> tuple[str, str, str, dict]:
    """A worker claims a job and hands an executor its lease: (the run id,
    the execution id, the executor's bearer token, the worker's headers)."""
    worker = bearer((await make_token(api, "worker", "submit", "read"))["token"])
    assert (await api.put("/api/workflows/etl", content=DOC, headers={**YAML, **worker})).status_code == 201
    run = (await api.post("/api/workflows/etl/runs", json={}, headers=worker)).json()["run_id"]
    claimed = (await api.post("/api/jobs/claim", json={"worker_id": "w1"}, headers=worker)).json()
    return run, claimed["lease"]["lease_id"], claimed["lease"]["run_token"], worker


async def restep_executor(api: httpx.AsyncClient, execution_id: str, api_key: str) -> list[dict]:
    """Seed 000's documented calls, in its order; returns the answers."""
    base = f"/api/executions/{execution_id}"
    auth = {"Authorization": f"Bearer {api_key}"}
    answers = []

    async def post(path: str, body: dict | None = None) -> dict:
        resp = await api.post(base + path, json=body, headers=auth)
        assert resp.status_code == 200, (path, resp.text)
        answers.append(resp.json())
        return resp.json()

    await post("/heartbeat")
    await post("/progress", {"progress_percent": 45, "current_step_name": "Processing batch 3",
                             "current_step_index": 2, "metadata": {"records_processed": 3000}})
    await post("/log", {"level": "info", "message": "Started processing user records",
                        "log_data": {"batch_size": 100}, "progress_percent": 10, "execution_step_id": "step-1"})
    await post("/log", {"logs": [{"level": "info", "message": "Connecting to database"},
                                 {"level": "debug", "message": "Query executed", "log_data": {"rows": 150}},
                                 {"level": "warn", "message": "Retry attempt 2 of 3", "progress_percent": 30}]})
    await post("/steps/step-1/running")
    await post("/steps/step-1/progress", {"progress_percent": 75, "metadata": {"current_record": 7500},
                                          "checkpoint_data": {"cursor": "offset-7500"}})
    await post("/steps/step-1/completed", {"result_data": {"rows_processed": 1500},
                                           "artifacts": {"output_file": "s3://bucket/output.csv"}})
    await post("/complete", {"result_data": {"records_processed": 10000, "summary": "done"}})
    return answers


async def test_a_restep_executor_completes_a_job(auth_api):
    run, execution_id, run_token, worker = await lease_for_executor(auth_api)
    answers = await restep_executor(auth_api, execution_id, run_token)
    heartbeat, progress, single, batch, running, step_progress, step_done, complete = answers
    assert heartbeat["message"] == "Heartbeat updated"
    assert (heartbeat["data"]["id"], heartbeat["data"]["status"]) == (execution_id, "running")
    assert progress["data"]["progress_percent"] == 45 and progress["message"] == "Progress updated"
    assert single["status"] == "ok" and batch == {"status": "ok", "count": 3}
    assert running == {"status": "ok", "step": {"id": "step-1", "status": "running"}}
    assert step_progress == {"status": "ok", "step": {"id": "step-1", "progress_percent": 75}}
    assert step_done["step"]["status"] == "completed"
    assert complete["data"]["status"] == "completed" and complete["message"] == "Execution marked as completed"

    job = (await auth_api.get(f"/api/runs/{run}/jobs/extract", headers=worker)).json()
    # progress is the last one reported: the batch's "Retry attempt 2 of 3" entry said 30
    assert (job["status"], job["result_data"], job["progress"]) == (
        "success", {"records_processed": 10000, "summary": "done"}, 30.0)
    assert [(s["id"], s["status"]) for s in job["steps"]] == [("step-1", "completed")]
    logs = (await auth_api.get(f"/api/runs/{run}/jobs/extract/logs", headers=worker)).json()
    assert [(c["level"], c["data"]) for c in logs][:2] == [
        ("info", "Started processing user records"), ("info", "Connecting to database")]
    assert logs[0]["step"] == "step-1"
    cps = (await auth_api.get(f"/api/runs/{run}/jobs/extract/checkpoints", headers=worker)).json()
    assert cps[-1]["data"] == {"output_file": "s3://bucket/output.csv"}  # artifacts saved as the checkpoint


async def test_a_restep_failure_retries_while_the_budget_lasts_and_cancel_ends_it(auth_api):
    run, execution_id, run_token, worker = await lease_for_executor(auth_api)
    auth = bearer(run_token)
    failed = await auth_api.post(f"/api/executions/{execution_id}/fail", headers=auth, json={
        "error_message": "Database connection timeout", "error_type": "TimeoutError", "error_stack": "at db.js:45"})
    assert failed.status_code == 200, failed.text
    assert failed.json()["message"] == "Execution marked as failed"
    assert failed.json()["data"]["will_retry"] is True  # Restep: retried while attempts remain
    again = (await auth_api.post("/api/jobs/claim", json={"worker_id": "w1"}, headers=worker)).json()
    second = again["lease"]
    cancelled = await auth_api.post(f"/api/executions/{second['lease_id']}/cancel",
                                    headers=bearer(second["run_token"]))
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["data"]["status"], cancelled.json()["message"]) == ("cancelled", "Execution cancelled")
    view = (await auth_api.get(f"/api/runs/{run}", headers=worker)).json()
    assert {j["id"]: j["status"] for j in view["jobs"]} == {"extract": "cancelled", "load": "skipped"}
    # the first lease is over: its token reaches nothing
    assert_error(await auth_api.post(f"/api/executions/{execution_id}/heartbeat", headers=auth), 409)


async def strait_executor(api: httpx.AsyncClient, run_id: str, run_token: str) -> dict:
    """Seeds 001/004's documented calls; returns what it read back."""
    base = f"/sdk/v1/runs/{run_id}"
    auth = {"Authorization": f"Bearer {run_token}"}
    seen = {}

    async def call(method: str, path: str, body: dict | None = None) -> httpx.Response:
        resp = await api.request(method, base + path, json=body, headers=auth)
        assert resp.status_code < 300, (path, resp.text)
        return resp

    seen["payload"] = (await call("GET", "/payload")).json()
    await call("POST", "/heartbeat")
    await call("POST", "/progress", {})
    await call("POST", "/log", {"level": "info", "message": "hello"})
    await call("POST", "/annotate", {"property1": "string", "property2": "string"})
    await call("POST", "/checkpoint", {})
    await call("POST", "/usage", {"provider": "string", "model": "string"})
    await call("POST", "/tool-call", {})
    await call("POST", "/stream", {})
    await call("POST", "/resources", {})
    await call("POST", "/state", {"key": "cursor", "value": 7})
    seen["state"] = (await call("GET", "/state")).json()
    seen["key"] = (await call("GET", "/state/cursor")).json()
    await call("DELETE", "/state/cursor")
    await call("POST", "/output", {"rows": "10"})
    await call("POST", "/complete", {})
    return seen


async def test_a_strait_executor_completes_a_job(auth_api):
    run, run_id, run_token, worker = await lease_for_executor(auth_api)
    seen = await strait_executor(auth_api, run_id, run_token)
    assert seen["payload"] == {"inputs": {}, "upstream_outputs": {}, "checkpoint": None, "event": None}
    assert seen["state"] == {"cursor": 7} and seen["key"] == {"key": "cursor", "value": 7}
    job = (await auth_api.get(f"/api/runs/{run}/jobs/extract", headers=worker)).json()
    assert (job["status"], job["outputs"], job["annotations"]) == (
        "success", {"rows": "10"}, {"property1": "string", "property2": "string"})
    events = (await auth_api.get(f"/api/runs/{run}/events", headers=worker)).json()
    typed = [(e["type"], e["data"]) for e in events if e["type"] in ("usage", "tool_call", "stream")]
    assert typed == [("usage", {"provider": "string", "model": "string"}), ("tool_call", {}), ("stream", {})]
    usage = (await auth_api.get(f"/api/runs/{run}/events", params={"type": "usage"}, headers=worker)).json()
    assert len(usage) == 1


async def test_a_strait_executor_waits_for_an_event(auth_api):
    run, run_id, run_token, worker = await lease_for_executor(auth_api)
    resp = await auth_api.post(f"/sdk/v1/runs/{run_id}/wait-for-event", json={"event_key": "string"},
                               headers=bearer(run_token))
    assert resp.status_code == 200, resp.text
    assert {"status", "event_key", "expires_at", "trigger_id"} <= set(resp.json())
    assert resp.json()["status"] == "waiting"
    fired = await auth_api.post("/api/events/string", json={"payload": {"ok": True}}, headers=worker)
    assert fired.json()["released"] == 1
    again = (await auth_api.post("/api/jobs/claim", json={"worker_id": "w1"}, headers=worker)).json()
    payload = await auth_api.get(f"/sdk/v1/runs/{again['lease']['lease_id']}/payload",
                                 headers=bearer(again["lease"]["run_token"]))
    assert payload.json()["event"] == {"ok": True}
