"""The daemon against an in-process fake of the worker protocol (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from dataclasses import dataclass, field

import httpx
import msgspec
import pytest

from server.models import ClaimRequest, ClaimResponse, Lease, LogsRequest, QueuedJob, RetryPolicy, Step
import worker.daemon
from tests.procs import pid_alive
from worker.client import ApiError, Client
from worker.daemon import Daemon, WorkerConfig
from worker.runner import STEP_MARKER


@dataclass
class LeaseState:
    claim: ClaimResponse
    cancelled: bool = False
    lost: bool = False
    heartbeats: int = 0
    results: list[tuple[str, dict]] = field(default_factory=list)
    reports_after_cancel: int = 0  # answered 409 job_cancelled, as the real server does
    log_requests: list[list[int]] = field(default_factory=list)  # sequences of every push, resends included
    stored: list[dict] = field(default_factory=list)  # chunks kept, as the server dedups them


class FakeServer:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[ClaimResponse] = asyncio.Queue()
        self.leases: dict[str, LeaseState] = {}
        self.claims: list[ClaimRequest] = []
        self.registered: list[dict] = []
        self.down = False  # every request fails to connect
        self.flaky: dict[str, list[int | None]] = {}  # endpoint -> statuses to answer first (None: no answer)
        self._ids = itertools.count()

    def client(self) -> Client:
        return Client("http://rota.test", transport=httpx.MockTransport(self.handle))

    def enqueue(self, command: str = "", *, lease_id: str | None = None, run_token: str | None = None,
                **fields) -> str:
        n = next(self._ids)
        lease_id = lease_id or f"lease-{n}"
        job = QueuedJob(
            job_id=fields.pop("job_id", f"job{n}"),
            workflow_id="wf",
            command=command,
            required_labels=[],
            retry_policy=RetryPolicy(),
            attempt=fields.pop("attempt", 0),
            upstream_outputs=fields.pop("upstream_outputs", {}),
            enqueued_at_ms=0,
            **fields,
        )
        lease = Lease(lease_id=lease_id, job_id=job.job_id, workflow_id="wf", worker_id="w", ttl_secs=1, granted_at_ms=0,
                      run_token=run_token)
        claim = ClaimResponse(job, lease)
        self.leases[lease_id] = LeaseState(claim)
        self.queue.put_nowait(claim)
        return lease_id

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        endpoint = path.rsplit("/", 1)[-1]
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.flaky.get(endpoint):
            status = self.flaky[endpoint].pop(0)
            if status is None:
                raise httpx.ConnectError("connection refused", request=request)
            return error(status, "flaky", "try again")
        body = json.loads(request.content) if request.content else None
        if path == "/api/workers/register":
            self.registered.append(body)
            return httpx.Response(200, json={"ok": True})
        if path == "/api/jobs/claim":
            claim_request = msgspec.convert(body, ClaimRequest)
            self.claims.append(claim_request)
            try:
                claim = await asyncio.wait_for(self.queue.get(), claim_request.wait_secs)
            except asyncio.TimeoutError:
                return httpx.Response(200, content=b"null")
            return httpx.Response(200, content=msgspec.json.encode(claim))
        state = self.leases.get(path.split("/")[3])
        if state is None or state.lost:
            return error(409, "lease_lost", "lease lost")
        if endpoint == "heartbeat":
            state.heartbeats += 1
            return httpx.Response(200, json={"cancelled": state.cancelled, "lease_id": "x", "expires_at_ms": 0})
        if endpoint == "logs":
            chunks = msgspec.convert(body, LogsRequest).chunks
            state.log_requests.append([c.sequence for c in chunks])
            high = state.stored[-1]["sequence"] if state.stored else -1
            fresh = [msgspec.to_builtins(c) for c in chunks if c.sequence > high]
            state.stored.extend(fresh)
            return httpx.Response(200, json={"accepted": len(fresh), "duplicates": len(chunks) - len(fresh)})
        if state.cancelled:
            state.reports_after_cancel += 1
            return error(409, "job_cancelled", "the job was cancelled")
        if state.results:
            return error(409, "lease_lost", "job already finished")
        state.results.append((endpoint, body))
        outcome = "success" if endpoint == "complete" else "failure"
        return httpx.Response(200, json={"ok": True, "lease_id": "x", "outcome": outcome})


def error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, "details": None}})


async def wait_for(condition, what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def fake():
    return FakeServer()


@pytest.fixture
async def start_daemon(fake, tmp_path):
    """Start a daemon on the fake; stops it (draining) at the end of the test."""
    started: list[tuple[Daemon, asyncio.Task, Client]] = []

    def start(**config) -> tuple[Daemon, asyncio.Task]:
        client = fake.client()
        settings = {"server": "http://rota.test", "worker_id": "w", "workdir": str(tmp_path / "work"),
                    "claim_wait": 0.5, "cancel_grace": 2.0, "drain_timeout": 5.0, **config}
        daemon = Daemon(WorkerConfig(**settings), client)
        task = asyncio.create_task(daemon.run())
        started.append((daemon, task, client))
        return daemon, task

    yield start
    for daemon, task, client in started:
        daemon.request_stop()
        _, pending = await asyncio.wait({task}, timeout=10)
        await client.aclose()
        assert not pending, "the daemon did not stop"
        assert task.cancelled() or task.exception() is None or isinstance(task.exception(), ApiError)


def result(fake: FakeServer, lease_id: str) -> tuple[str, dict]:
    results = fake.leases[lease_id].results
    assert len(results) == 1, results
    return results[0]


def log_text(fake: FakeServer, lease_id: str, stream: str | None = None) -> str:
    return "".join(c["data"] for c in fake.leases[lease_id].stored if stream in (None, c["stream"]))


async def test_registers_and_long_polls_with_labels(fake, start_daemon):
    start_daemon(labels=["docker", "linux"], lease_ttl=7)
    await wait_for(lambda: fake.claims, "a claim")
    assert fake.registered == [{"worker_id": "w", "labels": ["docker", "linux"]}]
    claim = fake.claims[0]
    assert (claim.worker_id, claim.labels, claim.lease_ttl_secs, claim.wait_secs) == ("w", ["docker", "linux"], 7, 0.5)


async def test_runs_a_job_with_its_env_and_reports_outputs(fake, start_daemon):
    lease = fake.enqueue(
        'echo "version=$VERSION-$ROTA_JOB_ID-$ROTA_ATTEMPT" >> "$ROTA_OUTPUT"\n'
        'printf "notes<<EOF\\n%s\\nEOF\\n" "$ROTA_UPSTREAM_OUTPUTS" >> "$ROTA_OUTPUT"\n'
        'echo "lease=$ROTA_LEASE_ID wf=$ROTA_WORKFLOW_ID server=$ROTA_SERVER"',
        job_id="deploy",
        attempt=2,
        env={"VERSION": "v${{ needs.build.outputs.version }}"},
        upstream_outputs={"build": {"version": "1.2"}},
    )
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    assert result(fake, lease) == (
        "complete",
        {"outputs": {"version": "v1.2-deploy-2", "notes": '{"build": {"version": "1.2"}}'}},
    )
    assert log_text(fake, lease) == f"lease={lease} wf=wf server=http://rota.test\n"


async def test_failure_reports_exit_code_and_stderr_as_retryable(fake, start_daemon):
    lease = fake.enqueue("echo starting; echo 'disk full' >&2; exit 4")
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    assert result(fake, lease) == ("fail", {"error": "exit code 4: disk full", "retryable": True})
    assert log_text(fake, lease, "stdout") == "starting\n"
    assert log_text(fake, lease, "stderr") == "disk full\n"


async def test_steps_log_a_marker_per_step_and_stop_at_the_first_failure(fake, start_daemon):
    steps = [Step("compile", "echo compiled"), Step("test", "echo tested; exit 1"), Step("ship", "echo shipped")]
    lease = fake.enqueue("echo compiled\necho tested; exit 1\necho shipped", steps=steps)
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    assert result(fake, lease) == ("fail", {"error": "exit code 1 in step 'test'", "retryable": True})
    assert log_text(fake, lease) == (
        STEP_MARKER.format(name="compile") + "compiled\n" + STEP_MARKER.format(name="test") + "tested\n"
    )
    sequences = [c["sequence"] for c in fake.leases[lease].stored]
    assert sequences == list(range(len(sequences)))


async def test_unsupported_expression_fails_without_retry(fake, start_daemon):
    lease = fake.enqueue("echo never", env={"SHA": "${{ github.sha }}"})
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    kind, body = result(fake, lease)
    assert kind == "fail" and body["retryable"] is False and "unsupported expression" in body["error"]


async def test_malformed_output_file_fails_without_retry(fake, start_daemon):
    lease = fake.enqueue('echo "no equals sign" >> "$ROTA_OUTPUT"')
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    kind, body = result(fake, lease)
    assert kind == "fail" and body["retryable"] is False and body["error"].startswith("bad $ROTA_OUTPUT: line 1")


async def test_heartbeat_cancel_kills_the_process_group_and_hands_the_lease_back(fake, start_daemon, tmp_path):
    pidfile = tmp_path / "child.pid"
    lease = fake.enqueue(f"sleep 300 & echo $! > {pidfile}; wait")
    start_daemon()
    await wait_for(pidfile.exists, "the job to start")
    await wait_for(lambda: fake.leases[lease].heartbeats >= 1, "a heartbeat")
    fake.leases[lease].cancelled = True
    child = int(pidfile.read_text())
    await wait_for(lambda: not pid_alive(child), "the job's child to be killed")
    # One report, refused with 409 (the job is settled), which makes the
    # server release the lease now instead of at its expiry.
    await wait_for(lambda: fake.leases[lease].reports_after_cancel == 1, "the stop to be reported")
    assert fake.leases[lease].results == []


async def test_lost_lease_kills_the_job_and_reports_nothing(fake, start_daemon, tmp_path):
    pidfile = tmp_path / "job.pid"
    lease = fake.enqueue(f"echo $$ > {pidfile}; sleep 300")
    daemon, _ = start_daemon()
    await wait_for(pidfile.exists, "the job to start")
    fake.leases[lease].lost = True
    pid = int(pidfile.read_text())
    await wait_for(lambda: not pid_alive(pid), "the job to be killed")
    await wait_for(lambda: not daemon._jobs, "the job run to end")
    assert fake.leases[lease].results == []


async def test_timeout_kills_the_job_and_reports_a_failure(fake, start_daemon):
    lease = fake.enqueue("sleep 300", timeout_secs=1)
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    assert result(fake, lease) == ("fail", {"error": "timed out after 1s", "retryable": True})


async def test_result_is_retried_until_the_server_is_back(fake, start_daemon, tmp_path):
    gate = tmp_path / "go"
    lease = fake.enqueue(f"while [ ! -e {gate} ]; do sleep 0.02; done; echo done=1 >> $ROTA_OUTPUT")
    start_daemon()
    await wait_for(lambda: fake.leases[lease].heartbeats >= 1, "the job to run")
    fake.down = True
    gate.touch()
    await asyncio.sleep(1.0)  # several retries fail meanwhile
    assert fake.leases[lease].results == []
    fake.down = False
    await wait_for(lambda: fake.leases[lease].results, "the result")
    assert result(fake, lease) == ("complete", {"outputs": {"done": "1"}})


async def test_server_errors_on_report_are_retried(fake, start_daemon):
    fake.flaky["fail"] = [503, None, 502]
    lease = fake.enqueue("exit 2")
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    assert result(fake, lease)[0] == "fail"
    assert fake.flaky["fail"] == []


@pytest.mark.parametrize("status", [413, 422])
async def test_a_refused_result_is_reported_as_a_permanent_failure(fake, start_daemon, status):
    fake.flaky["complete"] = [status]
    lease = fake.enqueue("echo big=1 >> $ROTA_OUTPUT")
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    assert result(fake, lease) == (
        "fail", {"error": "server refused the result: error flaky: try again", "retryable": False},
    )


async def test_a_refused_failure_report_is_logged(fake, start_daemon, caplog):
    fake.flaky["fail"] = [422]
    first = fake.enqueue("exit 3")
    second = fake.enqueue("true")
    start_daemon()
    await wait_for(lambda: fake.leases[second].results, "the next job's result")
    assert fake.leases[first].results == []
    assert any(
        r.levelname == "ERROR" and "wf/job0" in r.getMessage() and "error flaky: try again" in r.getMessage()
        for r in caplog.records
    )


async def test_drain_gives_up_on_results_the_server_never_takes(fake, start_daemon, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(worker.daemon, "SHUTDOWN_REPORT_GRACE", 0.5)
    gate, pidfile = tmp_path / "go", tmp_path / "stuck.pid"
    finishes = fake.enqueue(f"while [ ! -e {gate} ]; do sleep 0.02; done")  # during the drain
    stuck = fake.enqueue(f"echo $$ > {pidfile}; sleep 300")  # stopped at the drain timeout
    daemon, task = start_daemon(concurrency=2, drain_timeout=0.5, cancel_grace=0.2)
    await wait_for(pidfile.exists, "the jobs to start")
    fake.down = True
    daemon.request_stop()
    gate.touch()
    await asyncio.wait_for(task, 20)
    assert not pid_alive(int(pidfile.read_text()))
    assert fake.leases[finishes].results == fake.leases[stuck].results == []
    gave_up = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 2 and all("lease expires" in m for m in gave_up), gave_up


async def test_drain_lets_a_running_job_finish(fake, start_daemon, tmp_path):
    started = tmp_path / "started"
    lease = fake.enqueue(f"touch {started}; sleep 0.5; echo ok=1 >> $ROTA_OUTPUT")
    daemon, task = start_daemon()
    await wait_for(started.exists, "the job to start")
    daemon.request_stop()
    await asyncio.wait_for(task, 10)
    assert result(fake, lease) == ("complete", {"outputs": {"ok": "1"}})


async def test_drain_timeout_stops_the_job_and_fails_it_as_retryable(fake, start_daemon, tmp_path):
    started = tmp_path / "started"
    lease = fake.enqueue(f"touch {started}; sleep 300")
    daemon, task = start_daemon(drain_timeout=0.3)
    await wait_for(started.exists, "the job to start")
    daemon.request_stop()
    await asyncio.wait_for(task, 10)
    assert result(fake, lease) == ("fail", {"error": "worker shut down before the job finished", "retryable": True})


async def test_stop_aborts_the_long_poll_at_once(fake, start_daemon):
    daemon, task = start_daemon(claim_wait=30)
    await wait_for(lambda: fake.claims, "a claim")
    daemon.request_stop()
    await asyncio.wait_for(task, 2)


async def test_concurrency_runs_jobs_side_by_side(fake, start_daemon, tmp_path):
    # Each job waits for the other to have started: only concurrent runs finish.
    a = fake.enqueue(f"touch {tmp_path}/a; while [ ! -e {tmp_path}/b ]; do sleep 0.02; done")
    b = fake.enqueue(f"touch {tmp_path}/b; while [ ! -e {tmp_path}/a ]; do sleep 0.02; done")
    start_daemon(concurrency=2)
    await wait_for(lambda: fake.leases[a].results and fake.leases[b].results, "both results")
    assert result(fake, a)[0] == result(fake, b)[0] == "complete"


async def test_a_refused_registration_stops_the_daemon(fake, start_daemon):
    fake.flaky["register"] = [422]
    _, task = start_daemon()
    with pytest.raises(ApiError, match="error flaky: try again"):
        await asyncio.wait_for(task, 5)


async def test_registration_waits_for_the_server(fake, start_daemon):
    fake.flaky["register"] = [None, None, 503]
    start_daemon()
    await wait_for(lambda: fake.claims, "a claim after registering")
    assert len(fake.registered) == 1


async def test_job_directory_is_removed_afterwards(fake, start_daemon, tmp_path):
    lease = fake.enqueue("pwd > $ROTA_OUTPUT.tmp; echo cwd=$(pwd) >> $ROTA_OUTPUT")
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    cwd = result(fake, lease)[1]["outputs"]["cwd"]
    assert cwd.startswith(str(tmp_path / "work"))
    assert not os.path.exists(cwd)



@pytest.mark.parametrize("status,code", [(401, "unauthenticated"), (403, "forbidden")])
async def test_a_refused_token_stops_the_job_like_a_lost_lease(fake, start_daemon, tmp_path, status, code):
    pidfile = tmp_path / "job.pid"
    lease = fake.enqueue(f"echo $$ > {pidfile}; sleep 300")
    daemon, _ = start_daemon()
    await wait_for(pidfile.exists, "the job to start")
    fake.flaky["heartbeat"] = [status] * 100  # the worker's token was revoked
    pid = int(pidfile.read_text())
    await wait_for(lambda: not pid_alive(pid), "the job to be killed")
    await wait_for(lambda: not daemon._jobs, "the job run to end")
    assert fake.leases[lease].results == []
