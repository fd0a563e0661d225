"""Restep's trigger (seed 000: `POST /api/jobs/{job_id}/trigger
{input_params}`) and `input_mapping`, on both stores: a trigger is a start
of the workflow's run; a mapping is checked when the workflow is defined
and resolved into the job's inputs when it is claimed."""

from __future__ import annotations

from tests.test_api import assert_error
from tests.test_runs import YAML

DOC = b"""
name: user_data_pipeline
jobs:
  extract:
    run: extract
  transform:
    needs: extract
    input_mapping:
      data: extract.artifacts.data
      count: extract.artifacts.count
      ok: extract.result_data.ok
      config: job.input_params.transform_config
      format: job.input_params.transform_config.format
      missing: extract.artifacts.nothing
    run: transform
"""


async def claim(api) -> dict:
    got = (await api.post("/api/jobs/claim", json={"worker_id": "w1"})).json()
    assert got is not None
    return got


async def test_trigger_starts_a_run_with_input_params(api):
    assert (await api.put("/api/workflows/pipe", content=DOC, headers=YAML)).status_code == 201
    resp = await api.post("/api/jobs/pipe/trigger", json={"input_params": {
        "transform_config": {"format": "csv"}, "destination": "s3://bucket/final", "batch_size": 100}})
    assert resp.status_code == 201, resp.text
    data = resp.json()["data"]
    assert (data["job_id"], data["status"], data["run_number"]) == ("pipe", "pending", 1)
    run = (await api.get(f"/api/runs/{data['id']}")).json()
    assert run["triggered_by"] == "trigger"
    # the run keeps them as JSON values (a job sees each as ROTA_INPUT_<NAME> text)
    assert run["inputs"] == {"transform_config": {"format": "csv"}, "destination": "s3://bucket/final",
                             "batch_size": 100}
    assert (await api.post("/api/jobs/pipe/trigger")).status_code == 201  # no body: no parameters
    # an Idempotency-Key is honoured, as on the native start
    key = {"Idempotency-Key": "k1"}
    first = (await api.post("/api/jobs/pipe/trigger", json={}, headers=key)).json()["data"]["id"]
    again = await api.post("/api/jobs/pipe/trigger", json={}, headers=key)
    assert again.json()["data"]["id"] == first and again.headers["idempotent-replayed"] == "true"


async def test_trigger_refusals(api):
    assert_error(await api.post("/api/jobs/nope/trigger", json={}), 404, "workflow_not_found")
    assert (await api.put("/api/workflows/pipe", content=DOC, headers=YAML)).status_code == 201
    error = assert_error(await api.post("/api/jobs/pipe/trigger", json={"input_params": {"bad-name": 1}}), 422)
    assert error["details"]["field"].startswith("input_params")
    assert_error(await api.post("/api/jobs/pipe/trigger", json={"input_params": [1]}), 422, "invalid_body")
    assert_error(await api.post("/api/jobs/pipe/trigger", json={"other": 1}), 422, "invalid_body")


async def test_input_mapping_is_resolved_when_the_job_is_claimed(api):
    assert (await api.put("/api/workflows/pipe", content=DOC, headers=YAML)).status_code == 201
    resp = await api.post("/api/jobs/pipe/trigger", json={"input_params": {"transform_config": {"format": "csv"}}})
    first = await claim(api)
    lease = first["lease"]["lease_id"]
    # Restep's executor completes its step with artifacts (its checkpoint), and the job with outputs
    done = await api.post(f"/api/executions/{lease}/steps/s1/completed",
                          json={"artifacts": {"data": [1, 2], "count": 2}})
    assert done.status_code == 200, done.text
    await api.post(f"/api/jobs/{lease}/complete", json={"outputs": {"count": "from-outputs"},
                                                         "result_data": {"ok": True}})
    second = await claim(api)
    assert second["job"]["job_id"] == "transform"
    # each as an input's text; a path reaches into the run's JSON inputs
    assert second["job"]["inputs"] == {"transform_config": '{"format":"csv"}', "data": "[1,2]", "count": "2",
                                       "ok": "true", "config": '{"format":"csv"}', "format": "csv"}
    assert resp.status_code == 201


async def test_input_mapping_is_checked_when_defined(api):
    bad = b"""
name: bad
jobs:
  a:
    run: a
  b:
    run: b
    input_mapping:
      x: a.artifacts.x
      y: job.params.y
      9z: job.input_params.z
"""
    error = assert_error(await api.put("/api/workflows/bad", content=bad, headers=YAML), 422, "invalid_workflow")
    text = str(error)
    assert "must be job.input_params.FIELD" in text and "an input name is" in text
    unneeded = bad.replace(b"      y: job.params.y\n      9z: job.input_params.z\n", b"")
    error = assert_error(await api.put("/api/workflows/bad", content=unneeded, headers=YAML), 422)
    assert error["details"]["problems"][0]["message"] == "'a.artifacts.x' reads job 'a', which is not in this job's needs"
