"""The in-job SDK's worker side, in process: what the daemon hands a job
(checkpoint, event), what it does when the job waits for an event, the
step and resource reports it sends (against tests/test_worker_daemon.py's
fake server); and worker/sdk.py and the in-job `rota` commands against a
stub HTTP server that records what they send."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from server.models import ClaimStep as Step
from tests.procs import pid_alive
from tests.test_worker_daemon import FakeServer, wait_for
from worker.cli import main as cli
from worker.daemon.config import Timings, WorkerConfig
from worker.daemon.job import JobRun
from worker.daemon.workdir import Workdir
from worker.daemon.reports import CpuMeter, GroupUsage, read_group
from worker.sdk import Job, LeaseEnded, NotInJob, SdkError, current_job

SERVER = "http://rota.test"


def job_run(fake: FakeServer, workdir: Path, timings: Timings | None = None) -> JobRun:
    claim = fake.queue.get_nowait()
    config = WorkerConfig(server=SERVER, worker_id="w", workdir=str(workdir), cancel_grace=1.0,
                          timings=timings or Timings())
    return JobRun(config, fake.client(), claim)


def read_env(path: Path) -> dict[str, str]:
    return dict(item.split("=", 1) for item in path.read_text().split("\0") if item)


# ---- $ROTA_CHECKPOINT and $ROTA_EVENT ----------------------------------------------------


async def test_a_resumed_job_gets_its_checkpoint_and_event_as_json_files(tmp_path):
    fake = FakeServer()
    lease = fake.enqueue(
        f'cp "$ROTA_CHECKPOINT" {tmp_path}/checkpoint; cp "$ROTA_EVENT" {tmp_path}/event\n'
        f'ls "$(dirname "$ROTA_CHECKPOINT")" > {tmp_path}/ls\n'
        f'[ "$(dirname "$ROTA_CHECKPOINT")" = "$(dirname "$ROTA_OUTPUT")" ]',
        checkpoint={"batch": 3, "note": "grüße"}, event={"approved_by": "ann"})
    await job_run(fake, tmp_path / "work").execute()
    assert [kind for kind, _ in fake.leases[lease].results] == ["complete"]
    assert json.loads((tmp_path / "checkpoint").read_text(encoding="utf-8")) == {"batch": 3, "note": "grüße"}
    assert json.loads((tmp_path / "event").read_text()) == {"approved_by": "ann"}
    # in the job's private directory, beside $ROTA_OUTPUT, and gone with it
    assert (tmp_path / "ls").read_text().split() == sorted(
        ["checkpoint.json", "event.json", "output", "upstream-outputs.json", "work"])
    assert os.listdir(tmp_path / "work") == []


async def test_a_first_attempt_has_no_checkpoint_or_event_whatever_the_environment_says(tmp_path, monkeypatch):
    monkeypatch.setenv("ROTA_CHECKPOINT", "/outer/job/checkpoint.json")  # as if the worker ran inside a job
    monkeypatch.setenv("ROTA_EVENT", "/outer/job/event.json")
    fake = FakeServer()
    fake.enqueue(f"env -0 > {tmp_path}/env", env={"ROTA_EVENT": "from-the-workflow"})
    await job_run(fake, tmp_path / "work").execute()
    env = read_env(tmp_path / "env")
    assert "ROTA_CHECKPOINT" not in env and "ROTA_EVENT" not in env


async def test_a_checkpoint_alone_sets_only_rota_checkpoint(tmp_path):
    fake = FakeServer()
    fake.enqueue(f"env -0 > {tmp_path}/env; cat \"$ROTA_CHECKPOINT\" > {tmp_path}/cp", checkpoint="plain text")
    await job_run(fake, tmp_path / "work").execute()
    env = read_env(tmp_path / "env")
    assert "ROTA_EVENT" not in env and env["ROTA_CHECKPOINT"].endswith("/checkpoint.json")
    assert json.loads((tmp_path / "cp").read_text()) == "plain text"


def test_the_sweep_knows_checkpoint_and_event_files_as_a_jobs(tmp_path):
    left = tmp_path / "wf.build.abcd1234"  # a killed worker's job directory, resumed job and all
    (left / "work").mkdir(parents=True)
    for name in ("output", "upstream-outputs.json", "checkpoint.json", "event.json"):
        (left / name).touch()
    other = tmp_path / "wf.other.abcd1234"  # holds something no job directory holds: not ours
    other.mkdir()
    (other / "checkpoint.json").touch()
    (other / "precious.txt").touch()
    workdir = Workdir(str(tmp_path))
    workdir.acquire()
    try:
        assert workdir.sweep() == 1
    finally:
        workdir.release()
    assert not left.exists() and (other / "precious.txt").exists()


# ---- waiting for an event ----------------------------------------------------------------------


async def test_a_heartbeat_answered_job_waiting_stops_the_job_and_reports_nothing(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="rota.worker")
    fake = FakeServer()
    pidfile = tmp_path / "child.pid"
    lease = fake.enqueue(f"echo asked to wait; sleep 300 & echo $! > {pidfile}; wait", job_id="deploy")
    run = asyncio.create_task(job_run(fake, tmp_path / "work").execute())
    await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the job to start")
    fake.leases[lease].waiting = True  # as the server, once the job called wait-for-event
    await asyncio.wait_for(run, 15)
    assert not pid_alive(int(pidfile.read_text()))
    state = fake.leases[lease]
    assert state.results == [] and state.reports_after_cancel == 0
    assert "wf/deploy waits for event" in caplog.text
    assert "asked to wait" in "".join(c["data"] for c in state.stored)  # its output still shipped
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize("exit_code", [0, 1])
async def test_a_job_that_ends_before_its_heartbeat_hears_of_the_wait_reports_nothing(tmp_path, caplog, exit_code):
    caplog.set_level(logging.INFO, logger="rota.worker")
    fake = FakeServer()
    lease = fake.enqueue(f"exit {exit_code}", job_id="deploy")
    fake.leases[lease].waiting = True  # complete and fail answer 409 job_waiting
    await job_run(fake, tmp_path / "work").execute()
    assert fake.leases[lease].results == []
    assert "wf/deploy waits for event" in caplog.text
    assert "lost lease" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# ---- step reports ------------------------------------------------------------------------------------


def record_calls(fake: FakeServer) -> list[str]:
    """Every call's path after the lease id, in the order the fake got them."""
    calls: list[str] = []
    handle = fake.handle

    async def recording(request: httpx.Request) -> httpx.Response:
        parts = request.url.path.split("/")
        if len(parts) > 4 and parts[1:3] == ["api", "jobs"] and parts[3] != "claim":
            calls.append("/".join(parts[4:]))
        return await handle(request)

    fake.handle = recording  # type: ignore[method-assign]
    return calls


def reported(body: dict) -> dict:
    return {k: v for k, v in body.items() if v is not None}


async def test_each_step_is_reported_running_then_completed_failed_or_skipped_before_the_result(tmp_path):
    fake = FakeServer()
    calls = record_calls(fake)
    steps = [Step("compile", "echo compiled"), Step("test", "echo 'it broke' >&2; exit 3"), Step("ship", "true")]
    lease = fake.enqueue("", steps=steps)
    await job_run(fake, tmp_path / "work").execute()
    assert [(i, state, reported(body)) for i, state, body in fake.leases[lease].steps] == [
        ("0", "running", {"name": "compile"}),
        ("0", "completed", {"name": "compile", "exit_code": 0}),
        ("1", "running", {"name": "test"}),
        ("1", "failed", {"name": "test", "exit_code": 3, "error_message": "exit code 3: it broke"}),
        ("2", "skipped", {"name": "ship", "error_message": "an earlier step failed"}),
    ]
    # The result ends the lease, and with it the step reports: they go first.
    assert [c for c in calls if c != "logs"] == [
        "steps/0/running", "steps/0/completed", "steps/1/running", "steps/1/failed", "steps/2/skipped", "fail"]


async def test_a_plain_job_reports_no_steps(tmp_path):
    fake = FakeServer()
    lease = fake.enqueue("true")
    await job_run(fake, tmp_path / "work").execute()
    assert fake.leases[lease].steps == [] and fake.leases[lease].results[0][0] == "complete"


async def test_step_reports_the_server_refuses_never_fail_the_job(tmp_path, caplog):
    fake = FakeServer()
    fake.flaky = {"running": [422, 422], "completed": [None, 500, 503]}  # refused, then unreachable
    lease = fake.enqueue("", steps=[Step("one", "true"), Step("two", "true")])
    await job_run(fake, tmp_path / "work").execute()
    assert [kind for kind, _ in fake.leases[lease].results] == ["complete"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "could not report the steps of wf/" in warnings[0], warnings
    assert [(i, s) for i, s, _ in fake.leases[lease].steps] == [("1", "completed")]


async def test_a_stopped_steps_report_says_why(tmp_path):
    fake = FakeServer()
    lease = fake.enqueue("", steps=[Step("hang", "sleep 300")], timeout_secs=1)
    await job_run(fake, tmp_path / "work").execute()
    index, state, body = fake.leases[lease].steps[-1]
    assert (index, state, body["exit_code"]) == ("0", "failed", -15)
    assert body["error_message"] == "stopped (timeout): killed by SIGTERM"


# ---- resource reports -------------------------------------------------------------------------------


async def test_resources_of_the_jobs_process_group_are_reported(tmp_path):
    fake = FakeServer()
    gate = tmp_path / "gate"
    # busy until the test has seen samples: a child process of the job, in its group
    lease = fake.enqueue(f"{sys.executable} -c 'import os\nwhile not os.path.exists(\"{gate}\"): pass' & wait",
                         ttl_secs=30)
    run = asyncio.create_task(job_run(fake, tmp_path / "work", Timings(resource_interval_secs=0.05)).execute())
    samples = fake.leases[lease].resources
    await wait_for(lambda: len(samples) >= 3 and any(s["cpu_percent"] for s in samples), "busy samples")
    gate.touch()
    await asyncio.wait_for(run, 15)
    assert fake.leases[lease].results[0][0] == "complete"
    assert all(s["memory_bytes"] > 0 for s in samples), samples
    assert max(s["memory_bytes"] for s in samples) > 4_000_000, samples  # a shell's and a Python's RSS
    assert max(s["extra"]["processes"] for s in samples) == 2, samples  # the shell and its child
    count = len(samples)
    await asyncio.sleep(0.2)
    assert len(samples) == count  # none after the job


async def test_a_job_shorter_than_the_interval_sends_no_sample(tmp_path):
    fake = FakeServer()
    lease = fake.enqueue("true")
    await job_run(fake, tmp_path / "work").execute()
    assert fake.leases[lease].resources == []


async def test_a_refused_resource_report_ends_the_reports_quietly(tmp_path, caplog):
    fake = FakeServer()
    fake.flaky = {"resources": [409]}
    gate = tmp_path / "gate"
    lease = fake.enqueue(f"while [ ! -e {gate} ]; do sleep 0.01; done", ttl_secs=30)
    run = asyncio.create_task(job_run(fake, tmp_path / "work", Timings(resource_interval_secs=0.02)).execute())
    await wait_for(lambda: not fake.flaky["resources"], "the first sample (refused)")
    await asyncio.sleep(0.2)  # ten intervals more: after the 409, no sample is sent
    gate.touch()
    await asyncio.wait_for(run, 15)
    assert fake.leases[lease].resources == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def _stat(pid: int, comm: str, pgrp: int, ticks: tuple[int, int, int, int], rss_pages: int, start: int) -> str:
    fields = ["S", "1", str(pgrp), "1", "0", "-1", "0", "0", "0", "0", "0", *map(str, ticks),
              "20", "0", "1", "0", str(start), "1000", str(rss_pages)] + ["0"] * 20
    return f"{pid} ({comm}) " + " ".join(fields)


def test_read_group_sums_the_groups_processes_from_proc(tmp_path):
    proc = tmp_path / "proc"
    for pid, comm, pgrp, ticks, rss in [
        (100, "bash", 100, (5, 1, 30, 4), 10),
        (101, "my (odd) cmd", 100, (7, 3, 0, 0), 20),  # a name with spaces and parentheses
        (200, "other", 200, (999, 999, 0, 0), 999),
    ]:
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "stat").write_text(_stat(pid, comm, pgrp, ticks, rss, start=4000 + pid))
    (proc / "self").mkdir()
    (proc / "uptime").write_text("100.00 50.00\n")
    usage = read_group(100, str(proc))
    assert usage == GroupUsage(cpu_ticks=50, rss_bytes=30 * os.sysconf("SC_PAGE_SIZE"), processes=2,
                               leader_start_ticks=4100)
    assert read_group(300, str(proc)) is None
    assert read_group(100, str(tmp_path / "nowhere")) is None

    ticks = os.sysconf("SC_CLK_TCK")
    meter = CpuMeter()
    # first seen: since its leader started (uptime 100 s; started at 4100 ticks)
    first = meter.percent(100, usage, now=10.0, proc=str(proc))
    assert first == round(50 / (100 * ticks - 4100) * 100, 1)
    # then between samples: one core's worth of ticks in a second is 100 %
    later = GroupUsage(cpu_ticks=50 + ticks, rss_bytes=0, processes=2, leader_start_ticks=4100)
    assert meter.percent(100, later, now=11.0, proc=str(proc)) == 100.0


# ---- worker/sdk.py against a stub server -------------------------------------------------------


class Stub:
    """An HTTP server recording each request; answers are set per (method, path)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None, str, object]] = []  # method, path, auth, type, body
        self.answers: dict[tuple[str, str], tuple[int, object]] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                kind = self.headers.get("Content-Type") or ""
                body = json.loads(raw) if kind.startswith("application/json") and raw else raw.decode()
                stub.requests.append((self.command, self.path, self.headers.get("Authorization"), kind, body))
                status, answer = stub.answers.get((self.command, self.path), (200, {"ok": True}))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stub():
    server = Stub()
    yield server
    server.close()


@pytest.fixture
def in_job(stub, monkeypatch, tmp_path):
    """The environment rota worker gives a job, pointed at the stub."""
    env = {"ROTA_SERVER": stub.url, "ROTA_LEASE_ID": "L 1", "ROTA_RUN_TOKEN": "rotr_secret",
           "ROTA_WORKFLOW_ID": "wf", "ROTA_JOB_ID": "build", "ROTA_ATTEMPT": "2", "ROTA_RUN_ID": "run-1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("ROTA_CHECKPOINT", "ROTA_EVENT", "ROTA_TOKEN", "ROTA_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    return env


PREFIX = "/api/jobs/L%201/"


def test_outside_a_job_the_sdk_says_so(monkeypatch):
    monkeypatch.delenv("ROTA_LEASE_ID", raising=False)
    monkeypatch.setenv("ROTA_SERVER", "http://127.0.0.1:3000")
    with pytest.raises(NotInJob, match=r"^not inside a rota job: ROTA_LEASE_ID is not set \(rota worker sets"):
        current_job()
    with pytest.raises(NotInJob, match="ROTA_LEASE_ID and ROTA_SERVER are not set"):
        current_job({})


def test_each_call_goes_to_the_lease_with_the_run_token(stub, in_job):
    job = current_job()
    assert (job.workflow_id, job.job_id, job.attempt, job.run_id) == ("wf", "build", 2, "run-1")
    stub.answers[("GET", PREFIX + "state/colour")] = (200, {"key": "colour", "value": "blue"})
    stub.answers[("GET", PREFIX + "payload")] = (200, {"inputs": {"v": "1"}, "upstream_outputs": {}})
    stub.answers[("POST", PREFIX + "spawn")] = (201, {"jobs": ["extra"], "child_run_id": None})
    stub.answers[("POST", PREFIX + "wait-for-event")] = (200, {"status": "waiting", "event_key": "go"})
    job.progress(45, "batch 3", step_index=2, metadata={"rows": 10})
    job.log("warn", "disk nearly full", free_mb=120)
    job.checkpoint({"batch": 3})
    assert job.state.get("colour") == "blue"
    job.state.set("colour", ["red"])
    job.state.delete("colour")
    job.annotate({"coverage": "81%"}, owner="ann")
    job.annotate_run("**lint**: 3 warnings", style="warning", context="lint")
    job.output(version="1.2.3")
    assert job.spawn("jobs:\n  extra:\n    run: 'true'\n") == {"jobs": ["extra"], "child_run_id": None}
    job.spawn({"jobs": {"more": {"run": "true"}}, "wait": False})
    assert job.wait_for_event("go", timeout_secs=600)["status"] == "waiting"
    assert job.payload()["inputs"] == {"v": "1"}
    sent = [(m, p.removeprefix(PREFIX), kind.split(";")[0], body) for m, p, _, kind, body in stub.requests]
    assert sent == [
        ("POST", "progress", "application/json", {"progress_percent": 45, "current_step_name": "batch 3",
                                                  "current_step_index": 2, "metadata": {"rows": 10}}),
        ("POST", "log", "application/json", {"level": "warn", "message": "disk nearly full",
                                             "log_data": {"free_mb": 120}}),
        ("POST", "checkpoint", "application/json", {"data": {"batch": 3}}),
        ("GET", "state/colour", "", ""),
        ("PUT", "state/colour", "application/json", {"value": ["red"]}),
        ("DELETE", "state/colour", "", ""),
        ("POST", "annotate", "application/json", {"coverage": "81%", "owner": "ann"}),
        ("POST", "annotate", "application/json", {"markdown": "**lint**: 3 warnings", "style": "warning",
                                                  "context": "lint"}),
        ("POST", "output", "application/json", {"version": "1.2.3"}),
        ("POST", "spawn", "application/yaml", "jobs:\n  extra:\n    run: 'true'\n"),
        ("POST", "spawn", "application/json", {"jobs": {"more": {"run": "true"}}, "wait": False}),
        ("POST", "wait-for-event", "application/json", {"event_key": "go", "timeout_secs": 600}),
        ("GET", "payload", "", ""),
    ]
    assert {auth for _, _, auth, _, _ in stub.requests} == {"Bearer rotr_secret"}


def test_the_checkpoint_and_event_come_from_their_files(tmp_path, in_job, monkeypatch):
    assert current_job().load_checkpoint({"batch": 0}) == {"batch": 0}  # a first attempt
    assert current_job().event() is None
    (tmp_path / "cp.json").write_text('{"batch": 7}')
    (tmp_path / "ev.json").write_text('{"approved_by": "ann"}')
    monkeypatch.setenv("ROTA_CHECKPOINT", str(tmp_path / "cp.json"))
    monkeypatch.setenv("ROTA_EVENT", str(tmp_path / "ev.json"))
    assert current_job().load_checkpoint({"batch": 0}) == {"batch": 7}
    assert current_job().event() == {"approved_by": "ann"}


@pytest.mark.parametrize("code", ["lease_lost", "job_waiting", "job_cancelled"])
def test_an_ended_lease_is_lease_ended(stub, in_job, code):
    stub.answers[("POST", PREFIX + "progress")] = (409, {"error": {"code": code, "message": "no"}})
    with pytest.raises(LeaseEnded, match=rf"^this job's lease has ended \({code}: .*\); nothing was recorded$"):
        current_job().progress(10)


def test_other_failures_are_sdk_errors_with_the_servers_words(stub, in_job):
    stub.answers[("POST", PREFIX + "progress")] = (
        422, {"error": {"code": "invalid_body", "message": "Expected `float` <= 100.0", "details": {"field": "x"}}})
    with pytest.raises(SdkError, match=r"^error invalid_body: Expected `float` <= 100.0$") as raised:
        current_job().progress(10)
    assert (raised.value.status, raised.value.code, raised.value.details) == (422, "invalid_body", {"field": "x"})
    stub.answers[("GET", PREFIX + "state/gone")] = (404, {"error": {"code": "state_key_not_found", "message": "no"}})
    assert current_job().state.get("gone", "fallback") == "fallback"


def test_an_unreachable_server_is_one_clear_error():
    job = Job("http://127.0.0.1:9", "L1", "t")
    with pytest.raises(SdkError, match=r"^cannot reach rota server at http://127.0.0.1:9: "):
        job.progress(1)


# ---- the in-job `rota` commands against the stub ------------------------------------------------


def rota(capsys, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()))
    try:
        code = cli.main(list(argv))
    finally:
        sys.stdin = old
    out, err = capsys.readouterr()
    return code, out, err


def last_body(stub: Stub) -> tuple[str, str, object]:
    method, path, _, _, body = stub.requests[-1]
    return method, path.removeprefix(PREFIX), body


def test_in_job_commands_send_what_they_say(stub, in_job, capsys, tmp_path):
    assert rota(capsys, "progress", "45", "batch 3 of 10")[0] == 0
    assert last_body(stub) == ("POST", "progress", {"progress_percent": 45.0, "current_step_name": "batch 3 of 10"})
    assert rota(capsys, "log", "--level", "warn", "--data", "free=12", "disk", "low")[0] == 0
    assert last_body(stub) == ("POST", "log", {"level": "warn", "message": "disk low", "log_data": {"free": "12"}})
    assert rota(capsys, "checkpoint", "save", "-", stdin='{"batch": 3}')[0] == 0
    assert last_body(stub) == ("POST", "checkpoint", {"data": {"batch": 3}})
    (tmp_path / "notes.txt").write_text("line one\n")
    assert rota(capsys, "checkpoint", "save", "--text", str(tmp_path / "notes.txt"))[0] == 0
    assert last_body(stub) == ("POST", "checkpoint", {"data": "line one\n"})
    assert rota(capsys, "state", "set", "colour", "blue")[0] == 0
    assert last_body(stub) == ("PUT", "state/colour", {"value": "blue"})
    assert rota(capsys, "state", "set", "--json", "n", "[1, 2]")[0] == 0
    assert last_body(stub) == ("PUT", "state/n", {"value": [1, 2]})
    assert rota(capsys, "state", "set", "notes", stdin="from stdin")[0] == 0
    assert last_body(stub) == ("PUT", "state/notes", {"value": "from stdin"})
    assert rota(capsys, "state", "delete", "colour")[0] == 0
    assert last_body(stub) == ("DELETE", "state/colour", "")
    assert rota(capsys, "annotate", "coverage=81%", "owner=ann")[0] == 0
    assert last_body(stub) == ("POST", "annotate", {"coverage": "81%", "owner": "ann"})
    assert rota(capsys, "annotate", "--style", "warning", "--context", "lint", stdin="**3** warnings\n")[0] == 0
    assert last_body(stub) == ("POST", "annotate", {"markdown": "**3** warnings\n", "style": "warning",
                                                    "context": "lint"})
    assert rota(capsys, "output", "version=1.2.3", "note=a=b")[0] == 0
    assert last_body(stub) == ("POST", "output", {"version": "1.2.3", "note": "a=b"})
    stub.answers[("POST", PREFIX + "wait-for-event")] = (200, {"status": "waiting", "expires_at": "2030-01-01Z"})
    code, _, err = rota(capsys, "wait-event", "deploy-ok", "--timeout", "30m")
    assert code == 0 and "waiting for event deploy-ok until 2030-01-01Z" in err
    assert last_body(stub) == ("POST", "wait-for-event", {"event_key": "deploy-ok", "timeout_secs": 1800})
    stub.answers[("POST", PREFIX + "spawn")] = (201, {"jobs": ["lint", "docs"], "child_run_id": None})
    (tmp_path / "more.yml").write_text("jobs:\n  lint:\n    run: make lint\n")
    code, out, _ = rota(capsys, "spawn", str(tmp_path / "more.yml"))
    assert (code, out) == (0, "added job lint\nadded job docs\n")
    assert stub.requests[-1][3] == "application/yaml" and stub.requests[-1][4] == "jobs:\n  lint:\n    run: make lint\n"
    assert {auth for _, _, auth, _, _ in stub.requests} == {"Bearer rotr_secret"}


def test_state_get_and_checkpoint_load_print_values_and_exit_1_when_there_is_none(stub, in_job, capsys, tmp_path,
                                                                                 monkeypatch):
    stub.answers[("GET", PREFIX + "state/colour")] = (200, {"key": "colour", "value": "blue"})
    stub.answers[("GET", PREFIX + "state/n")] = (200, {"key": "n", "value": {"a": [1]}})
    stub.answers[("GET", PREFIX + "state/gone")] = (404, {"error": {"code": "state_key_not_found", "message": "no"}})
    assert rota(capsys, "state", "get", "colour")[:2] == (0, "blue\n")
    assert rota(capsys, "state", "get", "n")[:2] == (0, '{"a": [1]}\n')
    code, out, err = rota(capsys, "state", "get", "gone")
    assert (code, out) == (1, "") and "no key 'gone'" in err
    assert rota(capsys, "state", "get", "gone", "--default", "x")[:2] == (0, "x\n")

    code, out, err = rota(capsys, "checkpoint", "load")
    assert (code, out) == (1, "") and "no checkpoint" in err
    (tmp_path / "cp.json").write_text('"text"')
    monkeypatch.setenv("ROTA_CHECKPOINT", str(tmp_path / "cp.json"))
    assert rota(capsys, "checkpoint", "load")[:2] == (0, '"text"\n')
    assert rota(capsys, "checkpoint", "load", "--raw")[:2] == (0, "text\n")


@pytest.mark.parametrize("argv", [("progress", "5"), ("state", "get", "k"), ("output", "a=1"),
                                  ("wait-event", "k"), ("checkpoint", "save", "-")])
def test_in_job_commands_fail_with_one_line_once_the_lease_has_ended(stub, in_job, capsys, argv):
    for method in ("GET", "POST", "PUT"):
        for call in ("progress", "state/k", "output", "wait-for-event", "checkpoint"):
            stub.answers[(method, PREFIX + call)] = (409, {"error": {"code": "lease_lost", "message": "lease lost"}})
    code, out, err = rota(capsys, *argv, stdin="{}")
    assert (code, out) == (2, "")
    assert err == f"rota {argv[0]}: this job's lease has ended (lease_lost: the job finished, was retried or its" \
                  " lease expired); nothing was recorded\n"


def test_in_job_commands_fail_with_one_line_outside_a_job(capsys, monkeypatch):
    monkeypatch.delenv("ROTA_LEASE_ID", raising=False)
    code, out, err = rota(capsys, "output", "a=1")
    assert (code, out) == (2, "")
    assert err.startswith("rota output: not inside a rota job: ROTA_LEASE_ID is not set") and err.count("\n") == 1


def test_bad_arguments_are_one_line_too(stub, in_job, capsys):
    assert rota(capsys, "output", "novalue")[::2] == (2, "rota output: output 'novalue' is not KEY=VALUE\n")
    code, _, err = rota(capsys, "checkpoint", "save", "-", stdin="not json")
    assert code == 2 and err.startswith("rota checkpoint: stdin is not JSON (") and "--text" in err
    assert rota(capsys, "log")[::2] == (2, "rota log: nothing to log: give the message as arguments or on stdin\n")
    assert rota(capsys, "wait-event", "bad key!")[::2] == (
        2, "rota wait-event: invalid event key 'bad key!': 1 to 200 letters, digits and _ . : -\n")
    assert rota(capsys, "wait-event", "ok", "--timeout", "31d")[::2] == (
        2, "rota wait-event: --timeout is at most 30d\n")
    assert stub.requests == []


def test_approve_uses_the_operators_api_token(stub, capsys, monkeypatch):
    monkeypatch.setenv("ROTA_TOKEN", "rota_operator")
    monkeypatch.delenv("ROTA_RUN_TOKEN", raising=False)
    job = {"id": "deploy", "name": "deploy", "status": "queued", "command": "", "depends_on": [],
           "required_labels": [], "max_retries": 0, "attempt": 1}
    stub.answers[("POST", "/api/runs/run-1/jobs/deploy/approve")] = (202, job)
    code, out, _ = rota(capsys, "approve", "run-1", "deploy", "--payload", "by=ann", "--server", stub.url)
    assert (code, out) == (0, "approved run-1/deploy: queued\n")
    method, path, auth, _, body = stub.requests[-1]
    assert (method, path, auth, body) == ("POST", "/api/runs/run-1/jobs/deploy/approve", "Bearer rota_operator",
                                          {"payload": {"by": "ann"}})
    stub.answers[("POST", "/api/runs/run-1/jobs/build/approve")] = (
        409, {"error": {"code": "job_not_waiting", "message": "job 'build' is not waiting"}})
    code, out, err = rota(capsys, "approve", "run-1", "build", "--server", stub.url)
    assert (code, out, err) == (2, "", "rota: error job_not_waiting: job 'build' is not waiting\n")
    assert stub.requests[-1][4] == {"payload": None}



def test_a_full_log_drops_the_entry_but_never_fails_the_job(stub, in_job, capsys):
    """Like the job's output past LOG_MAX_BYTES: dropped, the job runs on."""
    full = {"error": {"code": "log_limit_exceeded", "message": "full", "details": {"limit": 65536}}}
    stub.answers[("POST", PREFIX + "log")] = (413, full)
    assert current_job().log("info", "one more") is False
    code, out, err = rota(capsys, "log", "one more")
    assert (code, out) == (0, "")
    assert err == "rota log: the job's log is full (the server's LOG_MAX_BYTES): entry dropped\n"
    # the call that fills the log answers 200 and says the entry was dropped
    stub.answers[("POST", PREFIX + "log")] = (200, {"ok": True, "count": 0, "dropped": 1})
    assert current_job().log("info", "one too many") is False
    code, out, err = rota(capsys, "log", "one too many")
    assert (code, err) == (0, "rota log: the job's log is full (the server's LOG_MAX_BYTES): entry dropped\n")
    stub.answers[("POST", PREFIX + "log")] = (200, {"ok": True, "count": 1})
    assert current_job().log("info", "kept") is True
