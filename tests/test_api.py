"""The HTTP contract (DESIGN.md, seed 002): paths, bodies, status codes,
error shapes. Runs in-process through ASGI on both backends."""

from __future__ import annotations

import asyncio
import json

import pytest

SEED_WORKFLOW = {
    "name": "ci.yml",
    "trigger": "on: push",
    "jobs": [
        # A seed client sends full Job objects, status and all.
        {"id": "test", "name": "Test", "status": "queued", "command": "pytest", "duration_secs": None,
         "started_at": None, "depends_on": [], "output": None, "required_labels": [], "max_retries": 0,
         "attempt": 0, "metadata": {}},
        {"id": "build", "name": "Build", "command": "make", "depends_on": ["test"],
         "required_labels": ["docker"], "max_retries": 2},
    ],
}

YAML_WORKFLOW = b"""
name: CI
on: push
jobs:
  test:
    run: pytest -q
    retries: 2
    backoff: {exponential: {base_secs: 2, max_secs: 60}}
  build:
    needs: test
    labels: [linux]
    steps:
      - name: compile
        run: make
      - name: package
        run: make dist
"""


def assert_error(resp, status: int, code: str | None = None):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


async def create(api, doc=SEED_WORKFLOW, run=True):
    resp = await api.post("/api/workflows", params={"run": "true"} if run else None, json=doc)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_seed_worker_flow_end_to_end(api):
    wf = await create(api)
    assert wf["status"] == "queued" and [j["id"] for j in wf["jobs"]] == ["test", "build"]
    assert (await api.post("/api/workers/register", json={"worker_id": "w1", "labels": ["docker"]})).status_code == 200

    resp = await api.post("/api/jobs/claim", json={"worker_id": "w1", "labels": ["docker"], "lease_ttl_secs": 30})
    assert resp.status_code == 200
    claim = resp.json()
    assert set(claim) == {"job", "lease"}
    job, lease = claim["job"], claim["lease"]
    assert {"job_id", "workflow_id", "command", "required_labels", "retry_policy", "attempt",
            "upstream_outputs", "enqueued_at_ms", "delayed_until_ms"} <= set(job)
    assert job["retry_policy"] == {"max_retries": 0, "backoff": "None"}
    assert set(lease) == {"lease_id", "job_id", "workflow_id", "worker_id", "ttl_secs", "granted_at_ms", "run_token",
                          "run_id"}
    assert lease["run_token"].startswith("rotr_")
    assert (job["job_id"], lease["worker_id"], lease["ttl_secs"]) == ("test", "w1", 30)
    lid = lease["lease_id"]

    # The seed worker heartbeats with no body and no content type.
    hb = await api.post(f"/api/jobs/{lid}/heartbeat")
    assert hb.status_code == 200 and hb.json()["cancelled"] is False
    chunks = [{"workflow_id": wf["id"], "job_id": "test", "sequence": 0, "data": "ok\n",
               "timestamp_ms": 1710000000000, "stream": "stdout"}]
    assert (await api.post(f"/api/jobs/{lid}/logs", json={"chunks": chunks})).status_code == 200
    assert (await api.post(f"/api/jobs/{lid}/complete", json={"outputs": {"coverage": "94%"}})).status_code == 200

    logs = await api.get(f"/api/workflows/{wf['id']}/jobs/test/logs")
    assert logs.json() == [{**c, "attempt": 0} for c in chunks]  # the seed's chunk, plus its attempt

    claim2 = (await api.post("/api/jobs/claim", json={"worker_id": "w1", "labels": ["docker"]})).json()
    assert claim2["job"]["job_id"] == "build"
    assert claim2["job"]["upstream_outputs"] == {"test": {"coverage": "94%"}}
    assert claim2["job"]["retry_policy"]["max_retries"] == 2
    lid2 = claim2["lease"]["lease_id"]
    resp = await api.post(f"/api/jobs/{lid2}/fail", json={"error": "exit code 1", "retryable": False})
    assert resp.status_code == 200

    status = (await api.get(f"/api/workflows/{wf['id']}/status")).json()
    assert status["status"] == "failure"
    build = status["jobs"][1]
    assert (build["status"], build["error"], build["output"]) == ("failure", "exit code 1", "exit code 1")
    assert status["jobs"][0]["outputs"] == {"coverage": "94%"}

    empty = await api.post("/api/jobs/claim", json={"worker_id": "w1", "labels": ["docker"]})
    assert empty.status_code == 200 and empty.content == b"null"

    workers = (await api.get("/api/workers")).json()
    assert workers[0]["worker_id"] == "w1" and workers[0]["status"] == "idle"


async def test_create_from_yaml(api):
    for ctype in ("application/yaml", "text/yaml", "application/x-yaml"):
        resp = await api.post("/api/workflows", content=YAML_WORKFLOW, headers={"content-type": ctype})
        assert resp.status_code == 201, resp.text
        wf = resp.json()
        assert (wf["name"], wf["trigger"]) == ("CI", "push")
        build = wf["jobs"][1]
        assert build["depends_on"] == ["test"] and build["required_labels"] == ["linux"]
        assert build["command"] == "make\nmake dist"


async def test_run_query_starts_at_once_and_without_it_nothing_runs(api):
    wf = await create(api, run=False)
    assert (await api.post("/api/jobs/claim", json={"worker_id": "w"})).content == b"null"
    resp = await api.post(f"/api/workflows/{wf['id']}/run")
    assert resp.status_code == 202 and resp.json()["id"] == wf["id"]
    assert (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["job"]["job_id"] == "test"
    assert_error(await api.post(f"/api/workflows/{wf['id']}/run"), 409, "workflow_active")


async def test_invalid_workflow_names_every_problem_and_creates_nothing(api):
    doc = {"name": "x", "jobs": [{"id": "a", "command": "true", "depends_on": ["nope"]},
                                 {"id": "a", "command": "true"}]}
    err = assert_error(await api.post("/api/workflows", json=doc), 422, "invalid_workflow")
    problems = json.dumps(err["details"]["problems"])
    assert "nope" in problems and "duplicate" in problems.lower()
    assert (await api.get("/api/workflows")).json() == []


async def test_yaml_syntax_error_has_line_and_column(api):
    bad = b"name: x\njobs:\n  a:\n    run: [unclosed\n"
    err = assert_error(await api.post("/api/workflows", content=bad, headers={"content-type": "application/yaml"}), 422)
    assert any("line" in p for p in err["details"]["problems"])


async def test_cycle_is_reported_with_its_path(api):
    doc = b"jobs:\n  a: {run: x, needs: c}\n  b: {run: x, needs: a}\n  c: {run: x, needs: b}\n"
    err = assert_error(await api.post("/api/workflows", content=doc, headers={"content-type": "text/yaml"}), 422)
    text = json.dumps(err)
    assert "cycle" in text and "->" in text


async def test_idempotency_key_returns_the_first_workflow(api):
    headers = {"Idempotency-Key": "build-1234"}
    first = await api.post("/api/workflows?run=true", json=SEED_WORKFLOW, headers=headers)
    second = await api.post("/api/workflows?run=true", json=SEED_WORKFLOW, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers.get("idempotent-replayed") == "true"
    assert len((await api.get("/api/workflows")).json()) == 1


async def test_list_paging_filter_and_validation(api):
    ids = [(await create(api, run=False))["id"] for _ in range(3)]
    listed = (await api.get("/api/workflows")).json()
    assert [w["id"] for w in listed] == ids[::-1]
    assert [w["id"] for w in (await api.get("/api/workflows?limit=1&offset=1")).json()] == [ids[1]]
    assert len((await api.get("/api/workflows?limit=5000")).json()) == 3, "limit is capped, not refused"
    assert (await api.get("/api/workflows?status=running")).json() == []
    assert_error(await api.get("/api/workflows?limit=abc"), 422, "invalid_query")
    assert_error(await api.get("/api/workflows?limit=0"), 422)
    assert_error(await api.get("/api/workflows?status=bogus"), 422)


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/workflows/nope/status"),
    ("POST", "/api/workflows/nope/run"),
    ("POST", "/api/workflows/nope/cancel"),
    ("GET", "/api/jobs/nope/job/cancelled"),
    ("GET", "/api/workflows/nope/jobs/a/logs"),
    ("GET", "/api/workflows/nope/jobs/a/logs/stream"),
    ("GET", "/api/no/such/route"),
])
async def test_unknown_things_are_404_with_an_error_body(api, method, path):
    assert_error(await api.request(method, path), 404)


async def test_lost_leases_are_409(api):
    for action in ("heartbeat", "complete", "fail"):
        assert_error(await api.post(f"/api/jobs/no-such-lease/{action}", json={}), 409, "lease_lost")
    wf = await create(api)
    lid = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]["lease_id"]
    assert (await api.post(f"/api/jobs/{lid}/complete", json={})).status_code == 200
    assert_error(await api.post(f"/api/jobs/{lid}/heartbeat"), 409, "lease_lost")
    chunk = {"workflow_id": wf["id"], "job_id": "test", "sequence": 1, "data": "x", "timestamp_ms": 1, "stream": "stdout"}
    assert_error(await api.post(f"/api/jobs/{lid}/logs", json={"chunks": [chunk]}), 409)


@pytest.mark.parametrize("path,body,field", [
    ("/api/jobs/claim", {"labels": []}, "worker_id"),
    ("/api/jobs/claim", {"worker_id": "w", "labels": "linux"}, "labels"),
    ("/api/jobs/claim", {"worker_id": "w", "lease_ttl_secs": "30"}, "lease_ttl_secs"),
    ("/api/jobs/claim", {"worker_id": "w", "lease_ttl_secs": 0}, "lease_ttl_secs"),
    ("/api/jobs/claim", {"worker_id": "w", "labels": ["has,comma"]}, "labels"),
    ("/api/workers/register", {"worker_id": "w", "labels": [1]}, "labels"),
])
async def test_bad_worker_requests_are_422_naming_the_field(api, path, body, field):
    err = assert_error(await api.post(path, json=body), 422, "invalid_body")
    assert field in err["message"] and field in err["details"]["field"]


async def test_bad_result_bodies_are_422_and_change_nothing(api):
    wf = await create(api)
    lid = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]["lease_id"]
    assert_error(await api.post(f"/api/jobs/{lid}/complete", json={"outputs": {"n": 1}}), 422)
    assert_error(await api.post(f"/api/jobs/{lid}/fail", json={"error": "x", "retryable": "yes"}), 422)
    assert_error(await api.post(f"/api/jobs/{lid}/logs", json={"chunks": [{"data": "x"}]}), 422)
    wrong_job = {"workflow_id": wf["id"], "job_id": "build", "sequence": 0, "data": "x",
                 "timestamp_ms": 1, "stream": "stdout"}
    assert_error(await api.post(f"/api/jobs/{lid}/logs", json={"chunks": [wrong_job]}), 422, "chunk_mismatch")
    assert_error(await api.post(f"/api/jobs/{lid}/complete", content=b"{not json", headers={"content-type": "application/json"}), 400, "malformed_json")
    status = (await api.get(f"/api/workflows/{wf['id']}/status")).json()
    assert status["jobs"][0]["status"] == "running"
    assert (await api.get(f"/api/workflows/{wf['id']}/jobs/test/logs")).json() == []


async def test_body_over_the_limit_is_413(redis, tmp_path):
    import httpx

    from server.app import create_app
    from server.settings import Settings

    app = create_app(Settings(workflows_dir=None, max_body_bytes=2048), redis=redis)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as api:
            big = {"name": "x", "jobs": [{"id": "a", "command": "x" * 4096}]}
            assert_error(await api.post("/api/workflows", json=big), 413, "body_too_large")
            assert (await api.get("/api/workflows")).json() == []


async def test_cancel_contract(api):
    wf = await create(api)
    claim = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()
    lid = claim["lease"]["lease_id"]
    resp = await api.post(f"/api/workflows/{wf['id']}/cancel")
    assert resp.status_code == 202 and resp.json()["status"] == "cancelled"
    assert (await api.get(f"/api/jobs/{wf['id']}/test/cancelled")).json() is True
    assert (await api.post(f"/api/jobs/{lid}/heartbeat")).json()["cancelled"] is True
    assert_error(await api.post(f"/api/jobs/{lid}/complete", json={}), 409, "job_cancelled")
    again = await api.post(f"/api/workflows/{wf['id']}/cancel")
    assert again.status_code == 202, "cancel of a finished workflow is a no-op"
    rerun = await api.post(f"/api/workflows/{wf['id']}/run")
    assert rerun.status_code == 202 and rerun.json()["status"] == "queued"


async def test_long_poll_claim_returns_when_a_job_arrives(api):
    waiting = asyncio.create_task(api.post("/api/jobs/claim", json={"worker_id": "w", "wait_secs": 10}))
    await asyncio.sleep(0.2)
    assert not waiting.done(), "the claim waits for work"
    wf = await create(api)
    resp = await asyncio.wait_for(waiting, 5)
    assert resp.json()["job"]["workflow_id"] == wf["id"]


async def test_long_poll_ignores_jobs_it_cannot_run(api):
    waiting = asyncio.create_task(api.post("/api/jobs/claim", json={"worker_id": "w", "wait_secs": 0.5}))
    await asyncio.sleep(0.1)
    await create(api, {"name": "g", "jobs": [{"id": "g", "command": "x", "required_labels": ["gpu"]}]})
    assert (await waiting).content == b"null"


async def test_long_poll_returns_null_when_the_wait_ends(api):
    resp = await api.post("/api/jobs/claim", json={"worker_id": "w", "wait_secs": 0.3})
    assert resp.status_code == 200 and resp.content == b"null"


async def test_long_poll_wait_above_the_cap_is_clamped_not_refused(api):
    await create(api)
    resp = await api.post("/api/jobs/claim", json={"worker_id": "w", "wait_secs": 3600})
    assert resp.json()["job"]["job_id"] == "test"


async def test_long_poll_picks_up_a_backoff_job_when_it_is_due(api):
    doc = {"name": "b", "jobs": [{"id": "a", "command": "x", "max_retries": 1,
                                  "backoff": {"Fixed": {"delay_secs": 1}}}]}
    await create(api, doc)
    lid = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]["lease_id"]
    await api.post(f"/api/jobs/{lid}/fail", json={"error": "x", "retryable": True})
    resp = await api.post("/api/jobs/claim", json={"worker_id": "w", "wait_secs": 10})
    assert resp.json()["job"]["attempt"] == 1


async def test_long_polls_that_park_after_shutdown_began_answer_at_once(app, api):
    """SIGTERM wakes the long-polls parked then; one that parks later (or a
    heartbeat, which a wake-up used to send back to wait) must not wait out
    its minute, past the server's grace period (slow twin in
    test_server_processes). The 60 s waits are far beyond these deadlines."""
    wf = await create(api)
    lid = (await api.post("/api/jobs/claim", json={"worker_id": "holder"})).json()["lease"]["lease_id"]
    app.state.notifier.begin_shutdown()
    claim = api.post("/api/jobs/claim", json={"worker_id": "late", "wait_secs": 60})
    assert (await asyncio.wait_for(claim, 30)).content == b"null"
    beat = await asyncio.wait_for(api.post(f"/api/jobs/{lid}/heartbeat", json={"wait_secs": 60}), 30)
    assert beat.status_code == 200 and beat.json()["cancelled"] is False
    tail = await asyncio.wait_for(api.get(f"/api/workflows/{wf['id']}/jobs/test/logs/stream"), 30)
    assert tail.status_code == 200 and "event: end" not in tail.text  # closed: the client reconnects elsewhere


async def test_healthz(api):
    body = (await api.get("/healthz")).json()
    assert body["ok"] is True and body["reaper"] is True


async def test_bad_stream_ids_are_400_not_a_store_error(api):
    wf = await create(api)
    assert_error(await api.get(f"/api/workflows/{wf['id']}/events?after=bogus"), 400, "invalid_after")
    events = (await api.get(f"/api/workflows/{wf['id']}/events")).json()
    assert [(e["type"], e["status"]) for e in events] == [("run", "queued")]
    later = (await api.get(f"/api/workflows/{wf['id']}/events", params={"after": events[0]["id"]})).json()
    assert later == []



@pytest.mark.parametrize("path,code", [
    ("/api/workflows?offset=9223372036854775807", 422),
    ("/api/workflows?limit=99999999999999999999", 422),
])
async def test_out_of_range_query_values_are_4xx(api, path, code):
    assert_error(await api.get(path), code, "invalid_query")


async def test_stream_ids_beyond_64_bits_are_400(api):
    wf = await create(api)
    huge = "99999999999999999999999-0"
    assert_error(await api.get(f"/api/workflows/{wf['id']}/events", params={"after": huge}), 400, "invalid_after")
    assert_error(await api.get(f"/api/workflows/{wf['id']}/jobs/test/logs/stream", params={"after": huge}), 400)


async def test_lone_surrogates_are_422_not_a_crash(api):
    body = b'{"name": "\\ud800", "jobs": [{"id": "a", "command": "true"}]}'
    err = assert_error(await api.post("/api/workflows", content=body, headers={"content-type": "application/json"}), 422, "invalid_workflow")
    assert "Unicode" in err["message"]
    assert (await api.get("/api/workflows")).json() == []
    lid_body = b'{"error": "\\udc00", "retryable": true}'
    assert_error(await api.post("/api/jobs/any/fail", content=lid_body, headers={"content-type": "application/json"}), 400, "malformed_json")


async def test_log_sequence_above_2_pow_53_is_422(api):
    wf = await create(api)
    lid = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]["lease_id"]
    chunk = {"workflow_id": wf["id"], "job_id": "test", "sequence": 2**53 + 1, "data": "x",
             "timestamp_ms": 1, "stream": "stdout"}
    assert_error(await api.post(f"/api/jobs/{lid}/logs", json={"chunks": [chunk]}), 422, "invalid_body")
