"""The daemon against an in-process fake of the worker protocol (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import socket
from dataclasses import dataclass, field

import httpx
import msgspec
import pytest

from server.models import ClaimRequest, ClaimResponse, ClaimStep as Step, Lease, LogsRequest, QueuedJob, RetryPolicy
import server
from tests.procs import pid_alive
from worker.client.api import Client
from worker.client.errors import ApiError
from worker.daemon.claim_loop import Daemon
from worker.daemon.config import Timings, WorkerConfig
from worker.daemon.job_setup import path_with_rota
from worker.daemon.runner import STEP_MARKER
from worker.daemon.workdir import WorkdirError


@dataclass
class LeaseState:
    claim: ClaimResponse
    cancelled: bool = False
    lost: bool = False
    heartbeats: int = 0
    heartbeat_waits: list[float] = field(default_factory=list)  # each heartbeat's long-poll wait_secs
    results: list[tuple[str, dict]] = field(default_factory=list)
    reports_after_cancel: int = 0  # answered 409 job_cancelled, as the real server does
    log_requests: list[list[int]] = field(default_factory=list)  # sequences of every push, resends included
    stored: list[dict] = field(default_factory=list)  # chunks kept, as the server dedups them
    waiting: bool = False  # the job asked to wait for an event: its lease calls answer 409 job_waiting
    steps: list[tuple[str, str, dict]] = field(default_factory=list)  # (index, state, body) step reports
    resources: list[dict] = field(default_factory=list)  # resource samples


class FakeServer:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[ClaimResponse] = asyncio.Queue()
        self.leases: dict[str, LeaseState] = {}
        self.claims: list[ClaimRequest] = []
        self.registered: list[dict] = []
        self.deregistered: list[str] = []
        self.down = False  # every request fails to connect
        self.long_poll = True  # heartbeats wait as the server does (False: answer at once, as an old server)
        self.max_output_bytes: int | None = None  # complete refuses larger outputs with 422
        self.knows_release = True  # False: a server older than the hand-back call (404)
        self.flaky: dict[str, list[int | None]] = {}  # endpoint -> statuses to answer first (None: no answer)
        self._ids = itertools.count()

    def client(self) -> Client:
        return Client("http://rota.test", transport=httpx.MockTransport(self.handle))

    def enqueue(self, command: str = "", *, lease_id: str | None = None, run_token: str | None = None,
                ttl_secs: int = 1, **fields) -> str:
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
        lease = Lease(lease_id=lease_id, job_id=job.job_id, workflow_id="wf", worker_id="w", ttl_secs=ttl_secs, granted_at_ms=0,
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
        if request.method == "DELETE" and path.startswith("/api/workers/"):
            self.deregistered.append(path.rsplit("/", 1)[1])
            return httpx.Response(204)
        if path in ("/api/jobs/claims", "/api/jobs/heartbeats", "/api/jobs/results"):
            # A server without rota's batch protocol: the daemon falls back
            # to a claim and a heartbeat per job (tests/test_worker_batch.py
            # runs it against the real thing).
            return error(404, "not_found", f"no route {path}")
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
        if "/steps/" in path:
            state.steps.append((path.split("/")[5], endpoint, body))
            return httpx.Response(200, json={"ok": True})
        if endpoint == "resources":
            state.resources.append(body)
            return httpx.Response(200, json={"ok": True})
        if state.waiting and endpoint != "logs":  # as the server: logs are still taken
            return error(409, "job_waiting", "the job gave up this lease to wait for an event")
        if endpoint == "heartbeat":
            state.heartbeats += 1
            wait = (body or {}).get("wait_secs", 0.0)
            state.heartbeat_waits.append(wait)
            if self.long_poll:  # renewed; answer when cancelled, lost, or the wait (capped as the server does) ends
                deadline = asyncio.get_running_loop().time() + min(wait, 60, state.claim.lease.ttl_secs / 2)
                while not (state.cancelled or state.lost) and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.005)
                    if state.waiting:
                        return error(409, "job_waiting", "the job gave up this lease to wait for an event")
            return httpx.Response(200, json={"cancelled": state.cancelled, "lease_id": "x", "expires_at_ms": 0})
        if endpoint == "logs":
            chunks = msgspec.convert(body, LogsRequest).chunks
            state.log_requests.append([c.sequence for c in chunks])
            high = state.stored[-1]["sequence"] if state.stored else -1
            fresh = [msgspec.to_builtins(c) for c in chunks if c.sequence > high]
            state.stored.extend(fresh)
            return httpx.Response(200, json={"accepted": len(fresh), "duplicates": len(chunks) - len(fresh)})
        if endpoint == "release" and not self.knows_release:
            return error(404, "not_found", f"no route {path}")
        if state.cancelled:
            state.reports_after_cancel += 1
            return error(409, "job_cancelled", "the job was cancelled")
        if state.results:
            return error(409, "lease_lost", "job already finished")
        if endpoint == "complete" and self.max_output_bytes is not None:
            size = sum(len(k.encode()) + len(v.encode()) for k, v in body["outputs"].items())
            if size > self.max_output_bytes:
                return error(422, "outputs_too_large", f"outputs are {size} bytes, more than MAX_OUTPUT_BYTES",
                             {"field": "outputs", "limit": self.max_output_bytes, "size": size})
        state.results.append((endpoint, body))
        outcome = {"complete": "success", "release": "handed_back"}.get(endpoint, "failure")
        return httpx.Response(200, json={"ok": True, "lease_id": "x", "outcome": outcome})


def error(status: int, code: str, message: str, details: dict | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, "details": details}})


async def wait_for(condition, what: str, timeout: float = 60.0) -> None:
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
    start_daemon(labels=["docker", "linux"], lease_ttl=7, concurrency=3)
    await wait_for(lambda: fake.claims, "a claim")
    assert fake.registered == [{
        "worker_id": "w", "labels": ["docker", "linux"], "exclusive": False, "concurrency": 3,
        "version": server.__version__, "host": socket.gethostname(), "claim_wait_secs": 0.5, "lease_ttl_secs": 7,
    }]
    claim = fake.claims[0]
    assert (claim.worker_id, claim.labels, claim.lease_ttl_secs, claim.wait_secs) == ("w", ["docker", "linux"], 7, 0.5)
    assert claim.exclusive is False


async def test_runs_a_job_with_its_env_and_reports_outputs(fake, start_daemon):
    lease = fake.enqueue(
        'echo "version=$VERSION-$ROTA_JOB_ID-$ROTA_ATTEMPT" >> "$ROTA_OUTPUT"\n'
        'printf "notes<<EOF\\n%s\\nEOF\\n" "$(cat "$ROTA_UPSTREAM_OUTPUTS")" >> "$ROTA_OUTPUT"\n'
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


async def test_an_env_the_server_rendered_is_run_as_it_is(fake, start_daemon):
    """A decided job's env is final (env_resolved): a `${{` in a value (an
    output that happens to hold one) is text, never read again."""
    lease = fake.enqueue('echo "v=$V" >> "$ROTA_OUTPUT"', env={"V": "x ${{ needs.a.outputs.b }} ${{ github.sha }}"},
                         env_resolved=True, upstream_outputs={"a": {"b": "no"}})
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    assert result(fake, lease) == ("complete", {"outputs": {"v": "x ${{ needs.a.outputs.b }} ${{ github.sha }}"}})


async def test_a_rendered_env_value_too_large_fails_with_a_reason(fake, start_daemon):
    lease = fake.enqueue("echo never", env={"BIG": "b" * 200_000}, env_resolved=True)
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    kind, body = result(fake, lease)
    assert (kind, body["retryable"]) == ("fail", False)
    assert body["error"].startswith("env BIG: the value is 200000 bytes, too large for an environment variable")


class OldStep(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    run: str


class OldJob(msgspec.Struct, kw_only=True):
    """QueuedJob as a worker from before the workflow language declared it."""
    job_id: str
    workflow_id: str
    command: str
    required_labels: list[str]
    retry_policy: RetryPolicy
    attempt: int
    upstream_outputs: dict[str, dict[str, str]]
    enqueued_at_ms: int
    env: dict[str, str] = {}
    steps: list[OldStep] = []


class OldClaim(msgspec.Struct):
    job: OldJob
    lease: Lease


def test_a_claim_with_the_language_still_decodes_with_the_previous_workers_types():
    """What a worker from before the workflow language declared (its Step
    refused unknown fields): a claim carrying contexts, step options and
    the rest still decodes with it, so an older worker runs what it can."""
    from server.models import JobContexts, StepOptions

    job = QueuedJob(job_id="j", workflow_id="wf", command="make", required_labels=[], retry_policy=RetryPolicy(),
                    attempt=0, upstream_outputs={}, enqueued_at_ms=0, steps=[Step("a", "make")],
                    step_options=[StepOptions(id="a", if_="always()", env={"A": "${{ env.B }}"})],
                    contexts=JobContexts(matrix={"os": "linux"}), outputs={"v": "${{ steps.a.outputs.v }}"},
                    env_resolved=True, continue_on_error=True)
    claim = ClaimResponse(job, Lease(lease_id="l", job_id="j", workflow_id="wf", worker_id="w", ttl_secs=1,
                                     granted_at_ms=0))
    old = msgspec.json.decode(msgspec.json.encode(claim), type=OldClaim)
    assert old.job.steps == [OldStep("a", "make")]


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
    await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the job to start")
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
    await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the job to start")
    fake.leases[lease].lost = True
    pid = int(pidfile.read_text())
    await wait_for(lambda: not pid_alive(pid), "the job to be killed")
    await wait_for(lambda: not daemon._jobs, "the job run to end")
    assert fake.leases[lease].results == []


async def test_timeout_kills_the_job_and_reports_a_failure(fake, start_daemon):
    lease = fake.enqueue("sleep 300", timeout_secs=1)
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    # the failure says it is a timeout: the attempt shows timed_out
    assert result(fake, lease) == ("fail", {"error": "timed out after 1s", "retryable": True, "error_type": "timeout"})


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


@pytest.mark.parametrize("status,error", [
    (413, "outputs are 4 bytes, more than the server takes in one request: error flaky: try again"),
    (422, "server refused the result: error flaky: try again"),
])
async def test_a_refused_result_is_reported_as_a_permanent_failure(fake, start_daemon, status, error):
    fake.flaky["complete"] = [status]
    lease = fake.enqueue("echo big=1 >> $ROTA_OUTPUT")
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    assert result(fake, lease) == ("fail", {"error": error, "retryable": False})


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


async def test_drain_gives_up_on_results_the_server_never_takes(fake, start_daemon, tmp_path, caplog):
    gate, pidfile = tmp_path / "go", tmp_path / "stuck.pid"
    finishes = fake.enqueue(f"while [ ! -e {gate} ]; do sleep 0.02; done")  # during the drain
    stuck = fake.enqueue(f"echo $$ > {pidfile}; sleep 300")  # stopped at the drain timeout
    daemon, task = start_daemon(concurrency=2, drain_timeout=0.5, cancel_grace=0.2,
                                timings=Timings(shutdown_report_grace=0.5))
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


async def test_drain_timeout_stops_the_job_and_hands_it_back(fake, start_daemon, tmp_path, caplog):
    caplog.set_level(logging.INFO, "rota.worker")
    started, pidfile = tmp_path / "started", tmp_path / "pid"
    lease = fake.enqueue(f"echo $$ > {pidfile}; touch {started}; sleep 300")
    daemon, task = start_daemon(drain_timeout=0.3)
    await wait_for(started.exists, "the job to start")
    daemon.request_stop()
    await asyncio.wait_for(task, 10)
    assert not pid_alive(int(pidfile.read_text()))
    assert result(fake, lease) == ("release", {"reason": "worker shut down before the job finished"})
    assert any("handed wf/job0 back" in r.getMessage() and "no retry spent" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


async def test_a_server_without_the_hand_back_call_gets_a_retryable_failure(fake, start_daemon, tmp_path):
    fake.knows_release = False
    started = tmp_path / "started"
    lease = fake.enqueue(f"touch {started}; sleep 300")
    daemon, task = start_daemon(drain_timeout=0.3)
    await wait_for(started.exists, "the job to start")
    daemon.request_stop()
    await asyncio.wait_for(task, 10)
    assert result(fake, lease) == ("fail", {"error": "worker shut down before the job finished", "retryable": True})


async def test_a_hand_back_survives_a_server_blip(fake, start_daemon, tmp_path):
    started = tmp_path / "started"
    lease = fake.enqueue(f"touch {started}; sleep 300")
    daemon, task = start_daemon(drain_timeout=0.3)
    await wait_for(started.exists, "the job to start")
    fake.flaky["release"] = [None, 503]
    daemon.request_stop()
    await asyncio.wait_for(task, 20)
    assert result(fake, lease) == ("release", {"reason": "worker shut down before the job finished"})


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
    # removed in a thread once the result is in (worker/daemon/job.py)
    await wait_for(lambda: not os.path.exists(cwd), "the job's directory to be removed")



@pytest.mark.parametrize("status,code", [(401, "unauthenticated"), (403, "forbidden")])
async def test_a_refused_token_stops_the_job_like_a_lost_lease(fake, start_daemon, tmp_path, status, code):
    pidfile = tmp_path / "job.pid"
    lease = fake.enqueue(f"echo $$ > {pidfile}; sleep 300")
    daemon, _ = start_daemon()
    await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the job to start")
    fake.flaky["heartbeat"] = [status] * 100  # the worker's token was revoked
    pid = int(pidfile.read_text())
    await wait_for(lambda: not pid_alive(pid), "the job to be killed")
    await wait_for(lambda: not daemon._jobs, "the job run to end")
    assert fake.leases[lease].results == []


# ---- large outputs --------------------------------------------------------------------


async def test_upstream_outputs_come_in_a_file_in_the_jobs_private_directory(fake, start_daemon, tmp_path):
    report = "r" * 200_000  # over the 128 KiB one environment variable can hold
    lease = fake.enqueue(
        f'echo "path=$ROTA_UPSTREAM_OUTPUTS" >> "$ROTA_OUTPUT"\ncp "$ROTA_UPSTREAM_OUTPUTS" {tmp_path}/got',
        upstream_outputs={"build": {"report": report, "v": "1"}},
    )
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    kind, body = result(fake, lease)
    assert kind == "complete", body
    path = body["outputs"]["path"]
    assert os.path.dirname(os.path.dirname(path)) == str(tmp_path / "work")  # <workdir>/<job dir>/file
    assert json.loads((tmp_path / "got").read_text()) == {"build": {"report": report, "v": "1"}}


async def test_an_env_value_too_large_for_the_environment_fails_with_a_reason(fake, start_daemon):
    lease = fake.enqueue("echo never", env={"REPORT": "${{ needs.build.outputs.report }}"},
                         upstream_outputs={"build": {"report": "r" * 200_000}})
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    kind, body = result(fake, lease)
    assert (kind, body["retryable"]) == ("fail", False)
    assert body["error"].startswith("env REPORT: the value is 200000 bytes, too large for an environment variable")
    assert "$ROTA_UPSTREAM_OUTPUTS" in body["error"] and "Errno" not in body["error"]


async def test_an_environment_too_large_in_all_fails_with_a_reason(fake, start_daemon):
    # Each value fits one variable; together they are past any ARG_MAX.
    env = {f"PART{i}": f"${{{{ needs.build.outputs.p{i} }}}}" for i in range(64)}
    lease = fake.enqueue("echo never", env=env, upstream_outputs={"build": {f"p{i}": "x" * 120_000 for i in range(64)}})
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    kind, body = result(fake, lease)
    assert (kind, body["retryable"]) == ("fail", False)
    assert body["error"].startswith("cannot start the job: its environment (") and "Errno" not in body["error"]


async def test_outputs_over_the_servers_limit_fail_the_job_for_good(fake, start_daemon):
    fake.max_output_bytes = 1000
    lease = fake.enqueue("printf 'big=%s\\n' \"$(head -c 2000 /dev/zero | tr '\\0' x)\" >> \"$ROTA_OUTPUT\"")
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    kind, body = result(fake, lease)
    assert (kind, body["retryable"]) == ("fail", False)
    assert body["error"].startswith("outputs are 2003 bytes, over the server's MAX_OUTPUT_BYTES (1000 bytes)")


# ---- heartbeats: a long-poll that carries the cancel ----------------------------------


async def test_a_cancel_reaches_the_job_during_a_long_heartbeat(fake, start_daemon, tmp_path):
    pidfile = tmp_path / "child.pid"
    lease = fake.enqueue(f"sleep 300 & echo $! > {pidfile}; wait", ttl_secs=300)
    start_daemon()
    await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the job to start")
    await wait_for(lambda: fake.leases[lease].heartbeats >= 1, "a heartbeat")
    assert fake.leases[lease].heartbeat_waits == [100.0]  # a third of the TTL, parked at the server
    fake.leases[lease].cancelled = True
    child = int(pidfile.read_text())
    await wait_for(lambda: not pid_alive(child), "the job's child to be killed", timeout=5)
    assert fake.leases[lease].heartbeats == 1  # the parked heartbeat carried it


async def test_a_job_over_before_its_first_heartbeat_sends_none(fake, start_daemon):
    # Most jobs of a busy fleet are short: no request (and no parked long-poll) for them.
    lease = fake.enqueue("true", ttl_secs=300)
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    assert fake.leases[lease].heartbeats == 0


async def test_the_next_heartbeat_goes_out_as_soon_as_one_answers(fake, start_daemon, tmp_path):
    gate = tmp_path / "go"
    lease = fake.enqueue(f"while [ ! -e {gate} ]; do sleep 0.02; done", ttl_secs=3)  # each waits 1 s
    start_daemon()
    await wait_for(lambda: fake.leases[lease].heartbeats >= 3, "three heartbeats", timeout=5)
    gate.touch()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    assert set(fake.leases[lease].heartbeat_waits) == {1.0}


async def test_heartbeats_answered_at_once_do_not_spin(fake, start_daemon, tmp_path):
    fake.long_poll = False  # a server that ignores wait_secs
    gate = tmp_path / "go"
    lease = fake.enqueue(f"while [ ! -e {gate} ]; do sleep 0.02; done", ttl_secs=300)
    start_daemon()
    await wait_for(lambda: fake.leases[lease].heartbeats >= 2, "two heartbeats", timeout=5)
    await asyncio.sleep(0.5)
    assert fake.leases[lease].heartbeats <= 3  # paced a second apart
    gate.touch()
    await wait_for(lambda: fake.leases[lease].results, "the result")


# ---- exclusive workers, liveness -----------------------------------------------------


async def test_an_exclusive_worker_says_so_when_registering_and_claiming(fake, start_daemon):
    start_daemon(labels=["deploy"], exclusive=True)
    await wait_for(lambda: fake.claims, "a claim")
    assert fake.registered[0]["exclusive"] is True
    assert fake.claims[0].exclusive is True


def test_an_exclusive_worker_needs_labels(fake):
    with pytest.raises(ValueError, match="needs labels"):
        Daemon(WorkerConfig(server="http://rota.test", exclusive=True), fake.client())


async def test_a_clean_stop_deregisters(fake, start_daemon):
    daemon, task = start_daemon(worker_id="box-1")
    await wait_for(lambda: fake.claims, "a claim")
    assert fake.deregistered == []
    daemon.request_stop()
    await asyncio.wait_for(task, 5)
    assert fake.deregistered == ["box-1"]


async def test_a_refused_worker_does_not_deregister(fake, start_daemon):
    fake.flaky["claim"] = [403]
    _, task = start_daemon()
    with pytest.raises(ApiError):
        await asyncio.wait_for(task, 5)
    assert fake.deregistered == []


async def test_the_end_of_an_outage_is_logged_once(fake, start_daemon, caplog):
    caplog.set_level(logging.INFO, logger="rota.worker")
    start_daemon()
    await wait_for(lambda: fake.claims, "a claim")
    fake.down = True
    await wait_for(lambda: any("claim failed" in r.getMessage() for r in caplog.records), "a failed claim")
    await asyncio.sleep(0.5)  # more failures meanwhile
    claims = len(fake.claims)
    fake.down = False
    await wait_for(lambda: len(fake.claims) > claims + 1, "claims again")
    back = [r.getMessage() for r in caplog.records if "reachable again" in r.getMessage()]
    assert len(back) == 1 and back[0].startswith("server reachable again after "), back


async def test_an_idle_worker_says_so_now_and_then(fake, start_daemon, caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="rota.worker")
    gate = tmp_path / "go"
    start_daemon(concurrency=3, timings=Timings(idle_log_secs=0.3))
    await wait_for(lambda: any(r.getMessage() == "idle, 3 of 3 slots free" for r in caplog.records),
                   "an idle line")
    lease = fake.enqueue(f"while [ ! -e {gate} ]; do sleep 0.02; done")
    await wait_for(lambda: fake.leases[lease].heartbeats >= 1, "the job to run")
    caplog.clear()
    await asyncio.sleep(1.0)  # busy: no idle line
    assert not [r for r in caplog.records if r.getMessage().startswith("idle")]
    gate.touch()
    await wait_for(lambda: any(r.getMessage().startswith("idle") for r in caplog.records), "idle again")


# ---- the workdir ---------------------------------------------------------------------


async def test_stale_job_directories_are_swept_at_start(fake, start_daemon, tmp_path):
    work = tmp_path / "work"
    stale = [work / "wf.build.abc_1234", work / "my.wf.job.x.0zz9yy8x"]
    for d in stale:
        (d / "work" / "deep").mkdir(parents=True)
        (d / "output").write_text("x=1\n")
    (stale[0] / "work" / "deep").chmod(0o500)  # read-only, as Go's module cache leaves it
    keep = [work / "notes", work / "wf.build.ABCDEFGH", work / "wf.build.abcd1234"]
    for d in keep:
        d.mkdir(parents=True)
    (work / "wf.build.abcd1234" / "mine.txt").write_text("not a job's")  # named like one, holds other things
    start_daemon()
    await wait_for(lambda: fake.claims, "a claim")
    assert [d for d in stale if d.exists()] == []
    assert all(d.exists() for d in keep)


async def test_two_daemons_cannot_share_a_workdir(fake, start_daemon, tmp_path):
    start_daemon()
    await wait_for(lambda: fake.claims, "a claim")
    other = Daemon(WorkerConfig(server="http://rota.test", worker_id="w2", workdir=str(tmp_path / "work")),
                   fake.client())
    with pytest.raises(WorkdirError,
                       match=rf"another rota worker \(pid {os.getpid()}\) is using workdir {tmp_path}/work;"):
        await other.run()
    assert [r["worker_id"] for r in fake.registered] == ["w"]  # refused before it said a word


async def test_read_only_directories_a_job_leaves_are_removed(fake, start_daemon):
    lease = fake.enqueue("mkdir -p cache/mod && touch cache/mod/f && chmod -R a-w cache\n"
                         "echo cwd=$PWD >> $ROTA_OUTPUT")
    start_daemon()
    await wait_for(lambda: fake.leases[lease].results, "the result")
    cwd = result(fake, lease)[1]["outputs"]["cwd"]
    await wait_for(lambda: not os.path.exists(os.path.dirname(cwd)), "the job directory to go")


def test_a_jobs_path_finds_the_workers_own_rota_last(tmp_path):
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    (bin_dir / "rota").write_text("#!/bin/sh\n")
    (bin_dir / "rota").chmod(0o755)
    # appended: python stays the job's
    assert path_with_rota("/usr/bin:/bin", str(bin_dir)) == f"/usr/bin:/bin:{bin_dir}"
    other = tmp_path / "other"
    other.mkdir()
    (other / "rota").write_text("#!/bin/sh\n")
    (other / "rota").chmod(0o755)
    assert path_with_rota(f"{other}:/bin", str(bin_dir)) == f"{other}:/bin"  # one already there wins
