"""The seeds' run-level paths against real processes: Restep's trigger
(seed 000) with its input_mapping run end to end by a real `rota worker`,
and the Strait-shaped management client (seed 003) against a real server
whose runs a real worker ran."""

from __future__ import annotations

import json
import sys

import httpx
import pytest
import yaml

from tests.procs import WorkerProc, wait_until
from tests.strait_client import RUN_FIELDS, StraitRuns

pytestmark = pytest.mark.slow

# A Restep executor inside a rota job: the lease id is its execution id,
# the run token its bearer. Completing a step with artifacts saves them
# (Restep's checkpoint), and dependent steps receive them through their
# input_mapping.
STEP_DONE = sys.executable + """ - <<'PY'
import json, os, urllib.request
artifacts = json.loads(os.environ["ARTIFACTS"])
req = urllib.request.Request(
    f"{os.environ['ROTA_SERVER']}/api/executions/{os.environ['ROTA_LEASE_ID']}/steps/s1/completed",
    data=json.dumps({"result_data": {"ok": True}, "artifacts": artifacts}).encode(), method="POST",
    headers={"Authorization": "Bearer " + os.environ["ROTA_RUN_TOKEN"], "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["status"])
PY
"""


def put(server, wf: str, doc: dict) -> None:
    resp = httpx.put(f"{server.url}/api/workflows/{wf}", content=yaml.safe_dump(doc),
                     headers={"content-type": "application/yaml"}, timeout=10)
    assert resp.status_code in (200, 201), resp.text


def run_of(server, run: str) -> dict:
    return httpx.get(f"{server.url}/api/runs/{run}", timeout=10).json()


def finished(server, run: str) -> dict:
    wait_until(lambda: run_of(server, run)["status"] in ("success", "failure", "cancelled"), f"run {run} to finish",
               timeout=60)
    return run_of(server, run)


def test_restep_trigger_with_input_mapping_end_to_end(server, tmp_path, label):
    put(server, f"pipeline-{label}", {"name": "user_data_pipeline", "jobs": {
        "extract": {"runs-on": [label], "env": {"ARTIFACTS": json.dumps({"data": ["a", "b"], "count": 2})},
                    "run": STEP_DONE},
        "transform": {"runs-on": [label], "needs": "extract",
                      "input_mapping": {"data": "extract.artifacts.data", "config": "job.input_params.transform_config",
                                        "ok": "extract.result_data.ok"},
                      "run": 'echo "data=$ROTA_INPUT_DATA config=$ROTA_INPUT_CONFIG"\n'
                             'echo "output=$ROTA_INPUT_DATA|$ROTA_INPUT_CONFIG" >> "$ROTA_OUTPUT"'},
        "load": {"runs-on": [label], "needs": "transform",
                 "input_mapping": {"transformed": "transform.artifacts.output",
                                   "destination": "job.input_params.destination"},
                 "run": 'printf "got=%s\\nto=%s\\n" "$ROTA_INPUT_TRANSFORMED" "$ROTA_INPUT_DESTINATION" >> "$ROTA_OUTPUT"'},
    }})
    worker = WorkerProc(server, tmp_path, f"w-{label}", "--labels", label)
    try:
        resp = httpx.post(f"{server.url}/api/jobs/pipeline-{label}/trigger", timeout=10, json={"input_params": {
            "transform_config": {"format": "csv"}, "destination": "s3://bucket/final"}})
        assert resp.status_code == 201, resp.text
        execution = resp.json()
        assert execution["message"] == "Job triggered" and execution["data"]["status"] == "pending"
        run = finished(server, execution["data"]["id"])
    finally:
        worker.stop()
    assert run["status"] == "success", json.dumps(run, indent=1)
    assert run["triggered_by"] == "trigger"
    jobs = {job["id"]: job for job in run["jobs"]}
    assert jobs["transform"]["outputs"] == {"output": '["a","b"]|{"format":"csv"}'}
    assert jobs["load"]["outputs"] == {"got": '["a","b"]|{"format":"csv"}', "to": "s3://bucket/final"}
    assert jobs["extract"]["result_data"] is None  # a step's result_data is the step's, not the job's


async def test_a_strait_client_against_a_real_server(server, tmp_path, label):
    wf = f"strait-{label}"
    put(server, wf, {"name": "strait", "jobs": {"work": {"runs-on": [label], "run": (
        'if [ "$ROTA_INPUT_MODE" = fail ]; then echo broken >&2; exit 3; fi\n'
        'if [ "$ROTA_INPUT_MODE" = continue ]; then\n'
        '  curl -sf -X POST -H "Authorization: Bearer $ROTA_RUN_TOKEN" -H "Content-Type: application/json"'
        ' -d \'{"payload": {"mode": "ok"}}\' "$ROTA_SERVER/sdk/v1/runs/$ROTA_LEASE_ID/continue" > /dev/null\n'
        'fi\n'
        'echo "done=$ROTA_INPUT_MODE" >> "$ROTA_OUTPUT"')}}})

    def start(mode: str) -> str:
        resp = httpx.post(f"{server.url}/api/workflows/{wf}/runs", json={"inputs": {"mode": mode}}, timeout=10)
        assert resp.status_code == 201, resp.text
        return resp.json()["run_id"]

    worker = WorkerProc(server, tmp_path, f"w-{label}", "--labels", label)
    try:
        ok, bad, chained = start("ok"), start("fail"), start("continue")
        for run in (ok, bad, chained):
            finished(server, run)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            strait = StraitRuns(http)
            following = (await strait.lineage(chained))[-1]
            finished(server, following["id"])
            listed = [r for r in await strait.list(limit=100) if r["job_id"] == wf]
            assert all(set(r) == RUN_FIELDS for r in listed)
            assert {r["id"]: r["status"] for r in listed} == {
                ok: "completed", bad: "dead_letter", chained: "completed", following["id"]: "completed"}
            assert (await strait.get(ok))["result"] == {"done": "ok"}
            assert [r["id"] for r in await strait.list(status="dead_letter") if r["job_id"] == wf] == [bad]
            again = await strait.dlq_replay(bad)
            assert again["status"] in ("queued", "dequeued", "executing", "dead_letter")
            finished(server, bad)
            assert [(r["id"], r["lineage_depth"]) for r in await strait.lineage(following["id"])] == [
                (chained, 0), (following["id"], 1)]
            bundle = await strait.debug_bundle(bad)
            assert bundle["run"]["id"] == bad and any(e["level"] == "error" for e in bundle["events"])
    finally:
        worker.stop()
    # with no worker, new runs wait: the client cancels them in bulk
    queued = [start("ok"), start("ok")]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        answer = await StraitRuns(http).bulk_cancel(queued)
    assert answer["canceled"] == 2 and all(run_of(server, r)["status"] == "cancelled" for r in queued)
