"""The server log at INFO says what happened, one line each: workflows
created, runs started and finished (status, duration), jobs retried or
failed for good, leases expired, workers registered and stopped, requests
refused with a 4xx. And LOG_FORMAT=json gives one JSON object per line."""

from __future__ import annotations

import json
import logging

import pytest

from server import logconfig
from server.reaper import reap_once
from tests.test_runs import claim, finish, put, start

RETRIED = """
name: flaky
jobs:
  build:
    run: make
    retries: 1
"""


@pytest.fixture
def info(caplog):
    caplog.set_level(logging.INFO, logger="rota")
    return caplog


def lines(caplog, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


async def test_a_run_from_creation_to_its_end(api, info):
    await put(api, "flaky", RETRIED)
    run = (await start(api, "flaky"))["run_id"]
    await finish(api, await claim(api), ok=False, error="boom\nline two", retryable=True)
    await finish(api, await claim(api), ok=False, error="boom again", retryable=True)
    said = lines(info, "rota.events")
    assert said[:2] == ["workflow flaky (flaky) created", f"run {run} (flaky #1) started by api"]
    assert f"job {run}/build attempt 0 failed, retry in 0.0s: boom line two" in said
    assert f"job {run}/build failed for good (attempt 1): boom again" in said
    finished = [line for line in said if line.startswith(f"run {run} (flaky #1) finished: failure in ")]
    assert len(finished) == 1 and finished[0].endswith("s")


async def test_a_success_says_so_once(api, info):
    await put(api, "flaky", RETRIED)
    run = (await start(api, "flaky"))["run_id"]
    await finish(api, await claim(api))
    said = lines(info, "rota.events")
    assert sum(line.startswith(f"run {run} (flaky #1) finished: success in ") for line in said) == 1
    assert not any("failed" in line for line in said)


async def test_an_expired_lease_names_its_job_and_worker(api, store, info):
    await put(api, "flaky", RETRIED)
    run = (await start(api, "flaky"))["run_id"]
    claimed = await claim(api, worker="box-7")
    await store.redis.zadd(store.key("leases"), {claimed["lease"]["lease_id"]: 0})  # its TTL is up
    await reap_once(store)
    said = lines(info, "rota.events")
    assert f"lease of job {run}/build on worker box-7 expired" in said
    assert f"job {run}/build attempt 0 failed, retry in 0.0s: lease expired" in said


async def test_workers_registering_and_stopping(api, info):
    body = {"worker_id": "box-1", "labels": ["linux", "gpu"], "concurrency": 2, "version": "1.0", "host": "h1"}
    assert (await api.post("/api/workers/register", json=body)).status_code == 200
    assert (await api.delete("/api/workers/box-1")).status_code == 204
    assert lines(info, "rota.events") == ["worker box-1 registered: labels gpu,linux, 2 slot(s), 1.0 on h1",
                                          "worker box-1 stopped"]


async def test_a_refused_request_is_one_line_naming_method_path_and_code(api, info):
    assert (await api.get("/api/workflows/nope/status")).status_code == 404
    assert (await api.post("/api/jobs/claim", json={"worker_id": 5})).status_code == 422
    assert lines(info, "rota.access") == ["refused GET /api/workflows/nope/status: 404 workflow_not_found",
                                          "refused POST /api/jobs/claim: 422 invalid_body"]


def test_json_log_lines_are_one_object_each():
    record = logging.LogRecord("rota.events", logging.INFO, __file__, 1, "run %s finished", ("r1",), None)
    entry = json.loads(logconfig.JsonFormatter().format(record))
    assert entry["level"] == "INFO" and entry["logger"] == "rota.events"
    assert entry["message"] == "run r1 finished" and entry["ts"].endswith("Z")


async def test_operators_actions_are_said_and_normal_protocol_409s_are_not(api, info):
    await put(api, "flaky", RETRIED)
    run = (await start(api, "flaky"))["run_id"]
    claimed = await claim(api)
    assert (await api.post(f"/api/runs/{run}/cancel")).status_code == 202
    lid = claimed["lease"]["lease_id"]
    assert (await api.post(f"/api/jobs/{lid}/fail", json={"error": "stopped", "retryable": True})).status_code == 409
    assert (await api.post(f"/api/runs/{run}/retry")).status_code == 202
    assert (await api.post("/api/events/deploy.ok", json={})).status_code == 200
    said = lines(info, "rota.events")
    assert f"run {run}: cancel requested" in said
    assert f"run {run}: retry of its failed, cancelled and skipped jobs" in said
    assert "event deploy.ok fired: 0 waiting job(s) released" in said
    assert lines(info, "rota.access") == []  # the worker's 409 job_cancelled is the protocol, not a refusal



@pytest.fixture
def text_format():
    """The formatter `configure` gives the server's handler for LOG_FORMAT=text
    (the root logger put back as it was, caplog's handler included)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logconfig.configure("info", "text")
    formatter = root.handlers[0].formatter
    root.handlers[:] = handlers
    root.setLevel(level)
    return formatter


async def test_a_jobs_error_reaches_the_server_log_inert(api, info, text_format):
    # A job's error is its stderr's tail: escape sequences in it would
    # retitle, clear or write the clipboard of the terminal tailing the log.
    await put(api, "flaky", RETRIED)
    run = (await start(api, "flaky"))["run_id"]
    hostile = "\x1b]0;owned\x07\x1b[2J\x1b]52;c;ZWNobyBoaQ==\x07 gone\r\u202eevil"
    await finish(api, await claim(api), ok=False, error=hostile, retryable=True)
    shown = [text_format.format(r) for r in info.records if r.name == "rota.events"]
    failed = [line for line in shown if f"job {run}/build attempt 0 failed" in line]
    assert len(failed) == 1
    assert "\x1b" not in failed[0] and "\x07" not in failed[0] and "\u202e" not in failed[0]
    assert "^[]0;owned^G^[[2J" in failed[0] and "<U+202E>evil" in failed[0]


def test_every_text_log_line_is_inert(text_format):
    record = logging.LogRecord("uvicorn.error", logging.WARNING, __file__, 1, "%s", ("\x1b[31mred\x9b",), None)
    assert text_format.format(record).endswith("^[[31mred<U+009B>")
