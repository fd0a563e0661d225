"""The `rota` CLI against an in-process fake API (no processes)."""

import io
import json
import os
import re

import httpx
import pytest

from worker.cli import main as cli, watch as cli_watch
from worker.client.api import Client


def test_worker_flags_come_from_env(monkeypatch):
    monkeypatch.setenv("ROTA_SERVER", "http://ci:1")
    monkeypatch.setenv("ROTA_LABELS", "linux, docker,,linux")
    monkeypatch.setenv("ROTA_CONCURRENCY", "4")
    monkeypatch.setenv("ROTA_LEASE_TTL", "9")
    monkeypatch.setenv("ROTA_WORKER_ID", "box-1")
    monkeypatch.setenv("ROTA_WORKDIR", "/tmp/w")
    monkeypatch.setenv("ROTA_CANCEL_GRACE", "1.5")
    monkeypatch.setenv("ROTA_DRAIN_TIMEOUT", "0")
    args = cli.build_parser().parse_args(["worker"])
    assert (args.server, args.labels, args.concurrency, args.lease_ttl) == ("http://ci:1", ["docker", "linux"], 4, 9)
    assert (args.worker_id, args.workdir, args.cancel_grace, args.drain_timeout) == ("box-1", "/tmp/w", 1.5, 0.0)


def test_flags_override_env_and_defaults(monkeypatch):
    monkeypatch.setenv("ROTA_CONCURRENCY", "4")
    for name in ("ROTA_SERVER", "ROTA_LEASE_TTL", "ROTA_WORKER_ID"):
        monkeypatch.delenv(name, raising=False)
    args = cli.build_parser().parse_args(["worker", "--concurrency", "2", "--labels", "gpu"])
    assert (args.concurrency, args.labels, args.server, args.lease_ttl) == (2, ["gpu"], "http://127.0.0.1:3000", 30)
    assert re.fullmatch(rf".+-{os.getpid()}-[0-9a-f]{{6}}", args.worker_id)


def test_worker_help_says_the_default_worker_id_as_it_is_made(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["worker", "--help"])
    helped = " ".join(capsys.readouterr().out.split())
    assert "default <hostname>-<pid>-<6 random hex>)" in helped and "host-pid" not in helped


def test_bad_env_value_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setenv("ROTA_CONCURRENCY", "zero")
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["worker"])
    assert info.value.code == 2
    assert "--concurrency: invalid" in capsys.readouterr().err


def job(id, status, attempt=0, error=None, **extra):
    return {"id": id, "name": id, "status": status, "command": "true", "depends_on": [], "required_labels": [],
            "max_retries": 0, "attempt": attempt, "error": error, **extra}


def workflow(status, *jobs):
    """A workflow view that also reads as its run (msgspec ignores the other's fields)."""
    return {"id": "wf1", "name": "CI", "trigger": "push", "status": status, "jobs": list(jobs), "created_at_ms": 1,
            "run_id": "run1", "number": 1, "workflow_id": "wf1", "triggered_by": "cli", "created_at": 1,
            "version": "v1"}


def unstamped(text: str) -> list[str]:
    """`--wait` lines without their `[m:ss] ` elapsed-time stamp (which each must have)."""
    lines = text.splitlines()
    assert all(re.match(r"\[\d+:\d\d\] ", line) for line in lines if " | " not in line), lines
    return [re.sub(r"^\[\d+:\d\d\] ", "", line) for line in lines]


class FakeApi:
    def __init__(self, statuses, logs=None):
        self.statuses = list(statuses)
        self.logs = logs or {}
        self.calls = []

    def connect(self, server: str, token: str | None = None) -> Client:
        """The CLI's client factory: `rota` against this fake."""
        return Client(server, token=token, transport=httpx.MockTransport(self.handle))

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append((request.method, path))
        if re.fullmatch(r"/api/runs/run1/jobs/[^/]+", path):  # why a queued job waits: nothing to report
            return httpx.Response(200, json={**job(path.rsplit("/", 1)[1], "queued"), "run_id": "run1"})
        if (path.endswith("/status") or path == "/api/runs/run1") and self.statuses:
            body = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            return httpx.Response(200, json=body)
        if path.endswith("/logs/stream"):
            job_id = path.split("/")[-3]
            events = "".join(
                f"id: {i}-0\nevent: log\ndata: {json.dumps(c)}\n\n" for i, c in enumerate(self.logs.get(job_id, []))
            )
            events += f"event: end\ndata: {json.dumps(job(job_id, 'success'))}\n\n"
            return httpx.Response(200, text=events, headers={"content-type": "text/event-stream"})
        if path == "/api/workflows":
            return httpx.Response(201, json=self.statuses[0])
        return httpx.Response(404, json={"error": {"code": "not_found", "message": f"no {path}", "details": None}})


def chunk(job_id, seq, data, stream="stdout"):
    return {"workflow_id": "wf1", "job_id": job_id, "sequence": seq, "data": data, "timestamp_ms": 1, "stream": stream}


FAST = cli_watch.Pace(interval=0.01)  # a test's watch reads the run often


async def test_watch_prints_each_state_change_once_and_succeeds():
    api = FakeApi([
        workflow("queued", job("a", "queued"), job("b", "queued")),
        workflow("running", job("a", "running"), job("b", "queued")),
        workflow("running", job("a", "running"), job("b", "queued")),
        workflow("success", job("a", "success"), job("b", "success")),
    ])
    out = io.StringIO()
    async with Client("http://rota.test", transport=httpx.MockTransport(api.handle)) as client:
        code = await cli_watch.watch(client, "run1", follow=False, out=out, pace=FAST)
    assert code == 0
    assert unstamped(out.getvalue()) == [
        "a: queued", "b: queued", "a: running", "a: success", "b: success", "workflow wf1 run #1: success",
    ]


async def test_watch_says_why_a_job_is_being_retried():
    api = FakeApi([
        workflow("running", job("a", "running")),
        workflow("running", job("a", "queued", 1, "exit code 1: flaky\nnetwork", retry_at=1)),
        workflow("success", job("a", "success", 1)),
    ])
    out = io.StringIO()
    async with Client("http://rota.test", transport=httpx.MockTransport(api.handle)) as client:
        assert await cli_watch.watch(client, "run1", follow=False, out=out, pace=FAST) == 0
    assert unstamped(out.getvalue())[:3] == [
        "a: running", "a: queued (attempt 1) after attempt 0 failed: exit code 1: flaky network",
        "a: success (attempt 1)"]


async def test_watch_says_a_job_was_handed_back():
    handed = {"number": 0, "worker_id": "w1", "status": "handed_back",
              "error": "handed back by worker w1: worker shut down before the job finished"}
    api = FakeApi([
        workflow("running", job("a", "running")),
        workflow("running", job("a", "queued", 1, attempts=[handed])),
        workflow("success", job("a", "success", 1)),
    ])
    out = io.StringIO()
    async with Client("http://rota.test", transport=httpx.MockTransport(api.handle)) as client:
        assert await cli_watch.watch(client, "run1", follow=False, out=out, pace=FAST) == 0
    assert unstamped(out.getvalue())[:2] == [
        "a: running",
        "a: queued (attempt 1) after attempt 0 was handed back by worker w1: worker shut down before the job finished"]


def attempt(number, status, error=None, worker="w1"):
    return {"number": number, "worker_id": worker, "status": status, "error": error}


@pytest.mark.parametrize("before, said", [
    (attempt(0, "failure", "exit code 7"), "after attempt 0 failed: exit code 7"),
    (attempt(0, "timed_out", "timed out after 30s"), "after attempt 0 timed out: timed out after 30s"),
    (attempt(0, "lost", "lease expired"), "after attempt 0 was lost: lease expired"),
    (attempt(0, "handed_back", "handed back by worker w1: worker shut down before the job finished"),
     "after attempt 0 was handed back by worker w1: worker shut down before the job finished"),
    (attempt(0, "waiting"), "after attempt 0 waited for an event"),
])
async def test_watch_says_why_when_the_attempt_grew_between_two_reads(before, said):
    """The retry was claimed before the wait read the run again: it never
    saw the job queued, and still says why the attempt number grew."""
    api = FakeApi([
        workflow("running", job("a", "running", attempts=[attempt(0, "running")])),
        workflow("running", job("a", "running", 1, attempts=[before, attempt(1, "running")])),
        workflow("success", job("a", "success", 1, attempts=[before, attempt(1, "success")])),
    ])
    out = io.StringIO()
    async with Client("http://rota.test", transport=httpx.MockTransport(api.handle)) as client:
        assert await cli_watch.watch(client, "run1", follow=False, out=out, pace=FAST) == 0
    assert unstamped(out.getvalue())[:3] == ["a: running", f"a: running (attempt 1) {said}", "a: success (attempt 1)"]


async def test_a_wait_that_starts_on_a_later_attempt_says_why_too():
    failed = attempt(0, "failure", "exit code 1: flaky\nnetwork")
    api = FakeApi([
        workflow("running", job("a", "running", 1, attempts=[failed, attempt(1, "running")])),
        workflow("success", job("a", "success", 1, attempts=[failed, attempt(1, "success")])),
    ])
    out = io.StringIO()
    async with Client("http://rota.test", transport=httpx.MockTransport(api.handle)) as client:
        assert await cli_watch.watch(client, "run1", follow=False, out=out, pace=FAST) == 0
    assert unstamped(out.getvalue())[:2] == [
        "a: running (attempt 1) after attempt 0 failed: exit code 1: flaky network", "a: success (attempt 1)"]


@pytest.mark.parametrize("final", ["failure", "cancelled"])
async def test_watch_exit_code_on_failure_or_cancel(final):
    api = FakeApi([workflow(final, job("a", "failure", 2, "exit code 1: boom"), job("b", "skipped"))])
    out = io.StringIO()
    async with Client("http://rota.test", transport=httpx.MockTransport(api.handle)) as client:
        assert await cli_watch.watch(client, "run1", follow=False, out=out, pace=FAST) == 1
    assert unstamped(out.getvalue()) == ["a: failure (attempt 2): exit code 1: boom", "b: skipped",
                                         f"workflow wf1 run #1: {final}"]


async def test_follow_prefixes_every_log_line_with_its_job():
    api = FakeApi(
        [workflow("success", job("a", "success"), job("b", "skipped"))],
        logs={"a": [chunk("a", 0, "hel"), chunk("a", 1, "lo\nwor"), chunk("a", 2, "ld\nno newline")]},
    )
    out = io.StringIO()
    async with Client("http://rota.test", transport=httpx.MockTransport(api.handle)) as client:
        assert await cli_watch.watch(client, "run1", follow=True, out=out, pace=FAST) == 0
    lines = out.getvalue().splitlines()
    assert [line for line in lines if " | " in line] == ["a | hello", "a | world", "a | no newline"]
    assert ("GET", "/api/runs/run1/jobs/b/logs/stream") not in api.calls  # skipped: nothing to follow


def test_status_table(capsys):
    api = FakeApi([workflow(
        "failure",
        job("build", "success", started_at=1000.0, finished_at=3500.0),
        job("test", "failure", 1, "exit code 2: assertion failed\nat line 3", started_at=4000.0, finished_at=4100.0),
        job("deploy", "skipped"),
    )])
    assert cli.main(["status", "wf1", "--server", "http://rota.test"], client_factory=api.connect) == 0
    assert capsys.readouterr().out.splitlines() == [
        "wf1 (CI): failure",
        "JOB     STATUS   ATTEMPT  DURATION  PROGRESS  ERROR",
        "build   success  0        2.5s      -",
        "test    failure  1        0.1s      -         exit code 2: assertion failed at line 3",
        "deploy  skipped  0        -         -",
    ]


def test_unknown_id_prints_the_server_error(capsys):
    api = FakeApi([])
    assert cli.main(["cancel", "nope", "--server", "http://rota.test"], client_factory=api.connect) == 2
    assert capsys.readouterr().err == "rota: error not_found: no /api/workflows/nope/status\n"


def test_submit_missing_file(capsys, tmp_path):
    api = FakeApi([])
    argv = ["submit", str(tmp_path / "nope.yml"), "--server", "http://rota.test"]
    assert cli.main(argv, client_factory=api.connect) == 2
    assert "rota: cannot read" in capsys.readouterr().err


def test_submit_prints_the_id(capsys, tmp_path):
    api = FakeApi([workflow("queued")])
    doc = tmp_path / "ci.json"
    doc.write_text("{}")
    argv = ["submit", str(doc), "--no-run", "--server", "http://rota.test"]
    assert cli.main(argv, client_factory=api.connect) == 0
    assert capsys.readouterr().out == "wf1\n"
    assert api.calls == [("POST", "/api/workflows")]


@pytest.mark.parametrize("flag", ["--wait", "--follow"])
def test_submit_no_run_with_wait_is_a_usage_error(capsys, tmp_path, flag):
    api = FakeApi([workflow("queued")])  # stays queued: a wait would never end
    doc = tmp_path / "ci.json"
    doc.write_text("{}")
    with pytest.raises(SystemExit) as info:
        cli.main(["submit", str(doc), "--no-run", flag, "--server", "http://rota.test"], client_factory=api.connect)
    assert info.value.code == 2
    assert "--no-run" in capsys.readouterr().err
    assert api.calls == []  # nothing submitted
