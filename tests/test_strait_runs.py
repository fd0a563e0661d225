"""Strait's run-management API (seed 003) at /v1/runs: a management
client written against Strait's documentation (tests/strait_client.py,
seed 003's paths and fields only) lists, filters, replays, cancels and
reads the debug bundle and lineage of rota's runs, on both stores; the
runs are made and driven with rota's own API, as a worker would."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from server.limits import MAX_CHECKPOINTS_KEPT
from tests.helpers import expire
from tests.strait_client import PROJECT, RUN_FIELDS, StraitError, StraitRuns
from tests.test_api import assert_error
from tests.test_auth import ADMIN, bearer, make_token
from tests.test_runs import YAML

DOC = b"""
name: etl
jobs:
  load:
    run: load
"""


async def define(api: httpx.AsyncClient, wf: str = "etl", doc: bytes = DOC) -> None:
    assert (await api.put(f"/api/workflows/{wf}", content=doc, headers=YAML)).status_code == 201


async def start(api: httpx.AsyncClient, wf: str = "etl", headers: dict | None = None, **body) -> str:
    resp = await api.post(f"/api/workflows/{wf}/runs", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()["run_id"]


async def claim(api: httpx.AsyncClient, worker: str = "w1") -> dict:
    got = (await api.post("/api/jobs/claim", json={"worker_id": worker, "lease_ttl_secs": 600})).json()
    assert got is not None
    return got


async def call(api: httpx.AsyncClient, claimed: dict, path: str, body=None) -> httpx.Response:
    resp = await api.post(f"/api/jobs/{claimed['lease']['lease_id']}/{path}", json=body)
    assert resp.status_code < 300, (path, resp.text)
    return resp


async def runs_in_every_state(api: httpx.AsyncClient, store) -> dict[str, str]:
    """One run per outcome a worker can give, run by run: {what: run id}."""
    await define(api)
    made = {}
    made["completed"] = await start(api, inputs={"region": "eu"}, tags={"team": "data"})
    c = await claim(api)
    await call(api, c, "annotate", {"owner": "ann"})
    await call(api, c, "usage", {"provider": "openai", "model": "gpt", "prompt_tokens": 10, "completion_tokens": 5})
    await call(api, c, "tool-call", {"tool_name": "search", "input": {"q": "x"}, "output": {"hits": 3},
                                     "duration_ms": 12, "status": "ok"})
    await call(api, c, "checkpoint", {"data": {"cursor": 1}})
    await call(api, c, "checkpoint", {"data": {"cursor": 2}})
    await call(api, c, "output", {"output_key": "summary", "value": {"rows": 3},
                                  "schema": {"type": "object", "required": ["rows"]}})
    await call(api, c, "log", {"level": "warn", "message": "disk nearly full"})
    await call(api, c, "complete", {"result": {"rows": 3}})

    made["dead_letter"] = await start(api, inputs={"region": "us"})
    await call(api, await claim(api), "fail", {"error": "boom", "retryable": True})

    made["timed_out"] = await start(api, inputs={"region": "ap"})
    await call(api, await claim(api), "fail", {"error": "timed out after 5s", "error_type": "timeout",
                                               "retryable": True})

    made["crashed"] = await start(api, inputs={"region": "sa"})
    lost = await claim(api)
    await expire(store, lost["lease"]["lease_id"])
    await store._call("reap", 100, 100, 3_600_000)

    made["executing"] = await start(api, inputs={"region": "af"})
    busy = await claim(api)
    made["dequeued"] = await start(api, inputs={"region": "oc"})
    await claim(api, "w2")  # leased, never heard from
    await call(api, busy, "heartbeat")

    made["queued"] = await start(api, inputs={"region": "eu", "tier": "gold"})
    return made


async def test_a_strait_client_lists_and_filters_runs(api, store):
    made = await runs_in_every_state(api, store)
    strait = StraitRuns(api)
    listed = await strait.list()
    assert [r["id"] for r in listed] == list(reversed(made.values()))  # newest first
    assert all(set(r) == RUN_FIELDS for r in listed)
    by_id = {r["id"]: r for r in listed}
    assert {what: by_id[run]["status"] for what, run in made.items()} == {what: what for what in made}

    done = await strait.get(made["completed"])
    assert done["job_id"] == "etl" and done["project_id"] == "default" and done["attempt"] == 1
    assert done["payload"] == {"region": "eu"} and done["tags"] == {"team": "data"}
    assert done["result"] == {"rows": 3} and done["metadata"] == {"owner": "ann"}
    assert done["triggered_by"] == "api" and done["error"] is None
    assert done["started_at"] <= done["finished_at"] and done["created_at"].endswith("Z")
    assert done["execution_trace"]["total_ms"] >= done["execution_trace"]["queue_wait_ms"] >= 0
    failed = await strait.get(made["dead_letter"])
    assert failed["error"] == "boom" and failed["result"] is None
    # rota's own view tells the outcomes apart too: its attempts, and how the run failed
    for what, attempt, kind in (("dead_letter", "failure", "failure"), ("timed_out", "timed_out", "timed_out"),
                                ("crashed", "lost", "lost")):
        native = (await api.get(f"/api/runs/{made[what]}")).json()
        assert native["jobs"][0]["attempts"][-1]["status"] == attempt, what
        assert (native["status"], native["failure"]["kind"], native["failure"]["job_id"]) == ("failure", kind, "load")
        assert native["dead_letters"] == 1
    assert (await strait.get(made["executing"]))["heartbeat_at"] is not None

    for status in ("queued", "timed_out", "crashed", "dead_letter", "executing", "dequeued"):
        assert [r["id"] for r in await strait.list(status=status)] == [made[status]], status
    assert await strait.list(status="expired") == []
    assert [r["id"] for r in await strait.list(metadata_key="owner")] == [made["completed"]]
    assert [r["id"] for r in await strait.list(metadata_key="owner", metadata_value="ann")] == [made["completed"]]
    assert await strait.list(metadata_key="owner", metadata_value="bob") == []
    # a value alone: any key of the run's metadata holding it
    assert [r["id"] for r in await strait.list(metadata_value="ann")] == [made["completed"]]
    assert await strait.list(metadata_value="owner") == []
    assert [r["id"] for r in await strait.list(payload_contains='{"region": "eu"}')] == [
        made["queued"], made["completed"]]
    assert [r["id"] for r in await strait.list(payload_contains='{"region": "eu", "tier": "gold"}')] == [
        made["queued"]]
    assert len(await strait.list(triggered_by="api")) == len(made)
    assert await strait.list(triggered_by="cron") == []
    # paging by Strait's cursor (the last run's created_at) walks every run once
    assert [r["id"] for r in await strait.list_all(page=2)] == [r["id"] for r in listed]


async def test_list_refuses_what_it_cannot_filter_by(api):
    for params, field in (({}, "project_id"), ({"project_id": PROJECT, "status": "sleeping"}, "status"),
                          ({"project_id": PROJECT, "payload_contains": "[1]"}, "payload_contains"),
                          ({"project_id": PROJECT, "payload_contains": "{nope"}, "payload_contains"),
                          ({"project_id": PROJECT, "cursor": "yesterday"}, "cursor"),
                          ({"project_id": PROJECT, "triggered_by": "Bad Value"}, "triggered_by"),
                          ({"project_id": PROJECT, "limit": "0"}, "limit")):
        error = assert_error(await api.get("/v1/runs", params=params), 422, "invalid_query")
        assert error["details"]["field"] == field, params
    assert_error(await api.get("/v1/runs/dlq"), 422, "invalid_query")
    assert_error(await api.get("/v1/runs/nope"), 404, "run_not_found")
    # the description says payload_contains is a JSON object, as a client sends it
    spec = (await api.get("/openapi.json")).json()
    described = {p["name"]: p for p in spec["paths"]["/v1/runs"]["get"]["parameters"]}
    assert described["payload_contains"]["content"]["application/json"]["schema"]["type"] == "object"
    assert described["project_id"]["required"] is True


async def test_replay_dlq_and_bulk_calls(api, store):
    made = await runs_in_every_state(api, store)
    strait = StraitRuns(api)

    # replay: a new run, triggered_by retry, of a failed run only
    again = await strait.replay(made["timed_out"])
    assert again["id"] != made["timed_out"] and again["triggered_by"] == "retry"
    assert again["status"] == "queued" and again["payload"] == {"region": "ap"}
    with pytest.raises(StraitError) as refused:
        await strait.replay(made["completed"])
    assert refused.value.status == 409

    # the dead letter queue, and a replay in place
    assert [r["id"] for r in await strait.dlq()] == [made["dead_letter"]]
    with pytest.raises(StraitError):
        await strait.dlq_replay(made["crashed"])
    back = await strait.dlq_replay(made["dead_letter"])
    assert back["id"] == made["dead_letter"] and back["status"] == "queued" and back["attempt"] == 2
    assert await strait.dlq() == []

    # bulk replay: new runs sharing one batch, found by it
    replayed = await strait.bulk_replay([made["crashed"], made["completed"], "no-such-run"])
    assert len(replayed) == 1 and replayed[0]["batch_id"]
    assert [r["id"] for r in await strait.list(batch_id=replayed[0]["batch_id"])] == [replayed[0]["id"]]

    # bulk cancel: one outcome per id
    answer = await strait.bulk_cancel([made["queued"], made["completed"], "no-such-run"])
    assert (answer["total"], answer["canceled"], answer["failed"]) == (3, 1, 2)
    assert {r["id"]: r["status"] for r in answer["results"]} == {
        made["queued"]: "canceled", made["completed"]: "completed", "no-such-run": "not_found"}
    assert (await strait.get(made["queued"]))["status"] == "canceled"
    await strait.cancel(made["executing"])
    assert (await strait.get(made["executing"]))["status"] == "canceled"
    with pytest.raises(StraitError) as refused:
        await strait.cancel(made["completed"])
    assert refused.value.status == 409

    # cancel everything still queued: the two replays and the run back from the DLQ
    everything = await strait.bulk_cancel_all(status="queued")
    assert everything["canceled"] == 3 and everything["failed"] == 0
    assert await strait.list(status="queued") == []
    assert_error(await api.post("/v1/runs/bulk-cancel-all", params={"project_id": PROJECT}, json={}), 422)


async def test_bulk_dlq_replay(api, store):
    await define(api)
    first = await start(api)
    await call(api, await claim(api), "fail", {"error": "one", "retryable": True})
    second = await start(api)
    await call(api, await claim(api), "fail", {"error": "two", "retryable": True})
    strait = StraitRuns(api)
    answer = await strait.bulk_dlq_replay([first, second])
    assert answer["count"] == 2 and {r["id"] for r in answer["replayed"]} == {first, second}
    assert all(r["status"] == "queued" for r in answer["replayed"])
    with pytest.raises(StraitError) as refused:
        await strait.bulk_dlq_replay([first])
    assert refused.value.status == 409
    by_project = await api.post("/v1/runs/bulk-dlq-replay", json={"project_id": PROJECT, "limit": 10})
    assert_error(by_project, 409, "no_dead_letter_runs")


async def test_debug_bundle_events_and_records(api, store):
    made = await runs_in_every_state(api, store)
    strait = StraitRuns(api)
    run = made["completed"]
    bundle = await strait.debug_bundle(run)
    assert set(bundle) == {"run", "events", "checkpoints", "usage", "tool_calls", "outputs"}
    assert bundle["run"] == await strait.get(run)
    assert [(c["sequence"], c["source"], c["state"]) for c in bundle["checkpoints"]] == [
        (1, "checkpoint", {"cursor": 1}), (2, "checkpoint", {"cursor": 2})]
    assert bundle["checkpoints"] == await strait.checkpoints(run)
    usage, = bundle["usage"]
    assert (usage["provider"], usage["model"], usage["total_tokens"]) == ("openai", "gpt", 15)
    assert bundle["usage"] == await strait.usage(run)
    tool, = bundle["tool_calls"]
    assert (tool["tool_name"], tool["output"], tool["duration_ms"], tool["status"]) == ("search", {"hits": 3}, 12, "ok")
    assert bundle["tool_calls"] == await strait.tool_calls(run)
    output, = bundle["outputs"]
    assert (output["output_key"], output["value"], output["schema"]) == (
        "summary", {"rows": 3}, {"type": "object", "required": ["rows"]})
    assert bundle["outputs"] == await strait.outputs(run)
    events = bundle["events"]
    assert {"id", "run_id", "type", "level", "message", "data", "created_at"} == set(events[0])
    warned = await strait.events(run, level="warn")
    assert [e["message"] for e in warned] == ["disk nearly full"]
    assert [e["type"] for e in await strait.events(run, type="usage")] == ["usage"]
    errors = await strait.events(made["dead_letter"], level="error")
    assert errors and all(e["level"] == "error" for e in errors) and "boom" in errors[0]["message"]

    await strait.set_debug(run, True)
    assert (await strait.get(run))["debug_mode"] is True
    status = await strait.dependency_status(run)
    assert status == {"run_id": run, "job_id": "etl", "status": "completed", "dependencies": [],
                      "dependencies_satisfied": True}
    assert await strait.state(run) == {}
    assert await strait.children(run) == []


async def test_lineage_of_continuations(api, store):
    await define(api)
    first = await start(api, inputs={"page": "1"})
    c = await claim(api)
    token = c["lease"]["run_token"]
    cont = await api.post(f"/sdk/v1/runs/{c['lease']['lease_id']}/continue", json={"payload": {"page": 2}},
                          headers={"Authorization": f"Bearer {token}"})
    assert cont.status_code == 201, cont.text
    second = cont.json()
    assert set(second) == RUN_FIELDS and second["continuation_of"] == first and second["lineage_depth"] == 1
    assert second["payload"] == {"page": 2} and second["triggered_by"] == "continue"
    # asked again, the run continues as the same run
    again = await api.post(f"/sdk/v1/runs/{c['lease']['lease_id']}/continue", json={"payload": {"page": 3}})
    assert again.json()["id"] == second["id"]
    await call(api, c, "complete")
    c2 = await claim(api)
    third = (await call(api, c2, "continue", {"inputs": {"page": "3"}})).json()
    strait = StraitRuns(api)
    for run in (first, second["id"], third["run_id"]):
        chain = await strait.lineage(run)
        assert [(r["id"], r["lineage_depth"]) for r in chain] == [(first, 0), (second["id"], 1), (third["run_id"], 2)]


async def test_many_continues_at_once_start_one_continuation(api):
    await define(api)
    first = await start(api)
    c = await claim(api)
    lease = c["lease"]["lease_id"]
    answers = await asyncio.gather(*(api.post(f"/api/jobs/{lease}/continue", json={"inputs": {"n": str(i)}})
                                     for i in range(12)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["run_id"] for a in answers}) == 1
    assert len([r for r in (await api.get("/api/runs")).json()["runs"] if r["continuation_of"] == first]) == 1


async def test_idempotency_key_reset(api):
    await define(api)
    key = {"Idempotency-Key": "nightly-2026-01-01"}
    run = await start(api, headers=key)
    assert await start(api, headers=key) == run
    strait = StraitRuns(api)
    assert (await strait.get(run))["idempotency_key"] == "nightly-2026-01-01"
    assert await strait.reset_idempotency_key(run) == {"status": "reset", "run_id": run}
    assert (await strait.get(run))["idempotency_key"] is None
    assert await start(api, headers=key) != run
    assert_error(await api.delete(f"/v1/runs/{run}/idempotency-key"), 409, "no_idempotency_key")


async def test_checkpoint_history_is_bounded(api):
    await define(api)
    run = await start(api)
    c = await claim(api)
    for n in range(MAX_CHECKPOINTS_KEPT + 5):
        await call(api, c, "checkpoint", {"data": {"n": n}})
    kept = await StraitRuns(api).checkpoints(run)
    assert len(kept) == MAX_CHECKPOINTS_KEPT
    assert [k["sequence"] for k in kept] == list(range(6, MAX_CHECKPOINTS_KEPT + 6))
    assert kept[-1]["state"] == {"n": MAX_CHECKPOINTS_KEPT + 4}


async def test_scopes_of_the_strait_paths(auth_api):
    reader = bearer((await make_token(auth_api, "read"))["token"])
    submitter = bearer((await make_token(auth_api, "submit"))["token"])
    ok = await auth_api.get("/v1/runs", params={"project_id": PROJECT}, headers=reader)
    assert ok.status_code == 200 and ok.json() == []
    assert_error(await auth_api.post("/v1/runs/bulk-cancel", json={"run_ids": ["x"]}, headers=reader), 403)
    assert (await auth_api.post("/v1/runs/bulk-cancel", json={"run_ids": ["x"]}, headers=submitter)).status_code == 200
    # cancelling by filter, everyone's runs at once, is an admin's
    everything = {"status": "queued"}
    assert_error(await auth_api.post("/v1/runs/bulk-cancel-all", params={"project_id": PROJECT}, json=everything,
                                     headers=submitter), 403)
    done = await auth_api.post("/v1/runs/bulk-cancel-all", params={"project_id": PROJECT}, json=everything,
                               headers=ADMIN)
    assert done.status_code == 200 and done.json()["canceled"] == 0


async def test_a_run_a_continue_on_error_failure_did_not_fail_is_completed(api):
    """The workflow language's continue-on-error (issue 16): the job's
    failure fails no run, in Strait's view as in rota's."""
    await define(api, "lenient", b"jobs:\n  lint:\n    continue-on-error: true\n    run: lint\n")
    run = await start(api, "lenient")
    claimed = await claim(api)
    resp = await api.post(f"/api/jobs/{claimed['lease']['lease_id']}/fail", json={"error": "style"})
    assert resp.status_code == 200, resp.text
    mine = (await api.get(f"/api/runs/{run}")).json()
    assert (mine["status"], mine["failure"]) == ("success", None)
    assert (await StraitRuns(api).get(run))["status"] == "completed"
