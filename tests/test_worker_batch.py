"""`rota worker` on rota's batch protocol, against the real app in process
(both stores): one claim for every free slot, a finished job's result
carrying the claim of the next, one heartbeat for every lease (which
carries a cancel and a lost lease to each job), and jobs a result leased
while the worker stops handed back unrun. Every request the daemon sends
is recorded, so each test says which calls carried the work."""

from __future__ import annotations

import asyncio
import json

import httpx
import msgspec
import pytest

from server.models import ClaimResponse
from tests.helpers import expire
from worker.client.api import Client
from worker.daemon.claim_loop import Daemon
from worker.daemon.config import Timings, WorkerConfig


class Recorded(httpx.AsyncBaseTransport):
    """The app's ASGI transport, keeping (path, body) of each request."""

    def __init__(self, app) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.sent: list[tuple[str, dict]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        self.sent.append((request.url.path, body))
        # The app runs in a task of its own, as a server across a socket
        # would: a daemon cancelling a long-poll as it stops must not wait on
        # (or have its cancel absorbed by) the handler it was talking to.
        answer = asyncio.ensure_future(self._inner.handle_async_request(request))
        try:
            return await asyncio.shield(answer)
        except asyncio.CancelledError:
            answer.cancel()
            raise

    def paths(self, suffix: str) -> list[dict]:
        return [body for path, body in self.sent if path.endswith(suffix)]


@pytest.fixture
async def start_daemon(app, tmp_path):
    started: list[tuple[Daemon, asyncio.Task, Client]] = []
    transport = Recorded(app)

    def start(**config) -> Daemon:
        client = Client("http://localhost", transport=transport)
        settings = {"server": "http://localhost", "worker_id": "w", "workdir": str(tmp_path / "work"),
                    "claim_wait": 0.5, "cancel_grace": 2.0, "drain_timeout": 5.0,
                    "timings": Timings(first_heartbeat_delay=0.2), **config}
        daemon = Daemon(WorkerConfig(**settings), client)
        started.append((daemon, asyncio.create_task(daemon.run()), client))
        return daemon

    start.transport = transport  # type: ignore[attr-defined]
    yield start
    for daemon, task, client in started:
        daemon.request_stop()
        _, pending = await asyncio.wait({task}, timeout=30)
        await client.aclose()
        assert not pending, "the daemon did not stop"
        assert task.exception() is None


async def submit(api, jobs: dict) -> str:
    resp = await api.post("/api/workflows?run=true", json={"name": "b", "on": "push", "jobs": jobs})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def finished(api, wf: str, timeout: float = 60.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = (await api.get(f"/api/workflows/{wf}")).json()
        if body["status"] not in ("queued", "running"):
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.05)


async def job_running(api, wf: str, job: str, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while {j["id"]: j["status"] for j in (await api.get(f"/api/workflows/{wf}")).json()["jobs"]}[job] != "running":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)


async def test_free_slots_are_claimed_at_once_and_results_carry_the_next_claim(api, start_daemon):
    wf = await submit(api, {f"j{i}": {"run": "true"} for i in range(24)})
    start_daemon(concurrency=4)
    out = await finished(api, wf)
    assert out["status"] == "success"
    sent = start_daemon.transport
    assert sent.paths("/api/jobs/claim") == [], "no seed claims"
    claims = sent.paths("/api/jobs/claims")
    assert claims[0]["max_jobs"] == 4 and all(c["max_jobs"] <= 4 for c in claims)
    completes = sent.paths("/complete")
    assert len(completes) == 24 and all(c["next"]["worker_id"] == "w" for c in completes)
    # most jobs came with a result, not with a claim of their own
    assert len(claims) < 12


async def test_a_chain_runs_one_request_per_job(api, start_daemon):
    wf = await submit(api, {"j0": {"run": "true"}, **{f"j{i}": {"run": "true", "needs": [f"j{i - 1}"]}
                                                       for i in range(1, 8)}})
    start_daemon(concurrency=1)
    assert (await finished(api, wf))["status"] == "success"
    sent = start_daemon.transport
    # the first job came with a claim; each next one with its predecessor's result
    assert len(sent.paths("/complete")) == 8
    assert len([c for c in sent.paths("/api/jobs/claims")]) <= 2


async def test_one_heartbeat_keeps_every_lease_and_carries_a_cancel(api, start_daemon, tmp_path):
    wf = await submit(api, {"a": {"run": "sleep 60"}, "b": {"run": "sleep 60"}, "c": {"run": "sleep 60"}})
    start_daemon(concurrency=3, lease_ttl=600, drain_timeout=0.5)  # (its sleeps are handed back at teardown)
    for job in "abc":
        await job_running(api, wf, job)
    sent = start_daemon.transport
    deadline = asyncio.get_running_loop().time() + 30
    while not any(len(b["lease_ids"]) == 3 for b in sent.paths("/api/jobs/heartbeats")):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    runs = (await api.get(f"/api/workflows/{wf}/runs")).json()
    run_id = (runs if isinstance(runs, list) else runs["runs"])[0]["run_id"]
    assert (await api.post(f"/api/runs/{run_id}/jobs/b/cancel")).status_code == 202
    # the parked heartbeat answers at once: b's process is killed, and its
    # report (refused: the job is cancelled) releases the lease; the others run on
    deadline = asyncio.get_running_loop().time() + 30
    while not any(b.get("error") == "cancelled" for p, b in sent.sent if p.endswith("/fail")):
        assert asyncio.get_running_loop().time() < deadline, sent.sent[-5:]
        await asyncio.sleep(0.02)
    jobs = {j["id"]: j["status"] for j in (await api.get(f"/api/workflows/{wf}")).json()["jobs"]}
    assert jobs == {"a": "running", "b": "cancelled", "c": "running"}
    assert [p for p, _ in sent.sent if p.endswith("/heartbeat")] == [], "no per-lease heartbeat"


async def test_a_lease_lost_under_the_batch_heartbeat_stops_its_job_and_reports_nothing(app, api, start_daemon):
    wf = await submit(api, {"a": {"run": "sleep 60", "retries": 1}})
    start_daemon(concurrency=1, lease_ttl=3, drain_timeout=0.5)  # a heartbeat every second
    await job_running(api, wf, "a")
    sent = start_daemon.transport
    deadline = asyncio.get_running_loop().time() + 30
    while not sent.paths("/api/jobs/heartbeats"):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    lease_id = sent.paths("/api/jobs/heartbeats")[-1]["lease_ids"][0]
    await expire(app.state.store, lease_id)
    # the next heartbeat finds it lost: the job is stopped, reports nothing,
    # and its retry (the expiry spent an attempt) is taken by this worker again
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        job = (await api.get(f"/api/workflows/{wf}")).json()["jobs"][0]
        if job["attempt"] == 1 and job["status"] == "running":
            break
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.05)
    assert not [p for p, _ in sent.sent if lease_id in p and p.endswith(("/complete", "/fail"))]


async def test_jobs_a_result_leased_as_the_worker_stops_are_handed_back_unrun(app, api, tmp_path):
    wf = await submit(api, {"x": {"run": "true"}, "y": {"run": "true"}})
    transport = Recorded(app)
    daemon = Daemon(WorkerConfig(server="http://localhost", worker_id="w", workdir=str(tmp_path / "work")),
                    Client("http://localhost", transport=transport))
    # two jobs leased as a result's `next` would lease them, just as the worker stops
    claims = [msgspec.convert((await api.post("/api/jobs/claim", json={"worker_id": "w"})).json(), ClaimResponse)
              for _ in range(2)]
    daemon.request_stop()
    assert daemon._next_claim() is None, "a stopping worker's results claim nothing"  # noqa: SLF001
    handing = daemon._adopt(object(), claims)  # noqa: SLF001 - what a result's `next` answer goes to
    assert handing is not None
    await handing
    jobs = (await api.get(f"/api/workflows/{wf}")).json()["jobs"]
    assert [j["status"] for j in jobs] == ["queued", "queued"]
    released = [p for p, _ in transport.sent if p.endswith("/release")]
    assert sorted(released) == sorted(f"/api/jobs/{c.lease.lease_id}/release" for c in claims)
