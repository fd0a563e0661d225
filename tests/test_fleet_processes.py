"""A fleet against one real server process on real Redis: a thousand idle
long-polls, a thousand log tails, and replies lost on the wire."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time

import httpx
import pytest

from tests.fleet import (
    ParkedFleet,
    evalsha_calls,
    health,
    lift_open_file_limit,
    stream_client,
    submit,
    tail,
    wait_for,
)
from tests.redis_proc import redis_server
from tests.server_proc import ServerProcess

# A thousand of everything takes its time on a busy machine: the deadline
# is for a hang, not a speed limit.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

FLEET = 1000


def answered_503(log: str) -> bool:
    """A 503 in the server's log: a refusal or an access line, not the
    milliseconds of a timestamp (`18:58:51,503`)."""
    return re.search(r"(?<![,\d])503(?!\d)", log) is not None


@pytest.fixture(scope="module")
def redis():
    with redis_server() as proc:
        yield proc


# Nothing here waits for a lease to expire: the reaper is as good as off, so
# the scripts Redis runs are the ones the test counts, however slow the run.
@pytest.fixture
def server(redis):
    lift_open_file_limit(4 * FLEET + 256)
    # A real fleet comes from many addresses; this one from 127.0.0.1 alone,
    # opening its connections before it sends on any (see server/slots.py).
    with ServerProcess(redis.url, LOG_LEVEL="info", MAX_CONNECTIONS_PER_ADDRESS=str(4 * FLEET),
                       REAP_INTERVAL_SECS="3600") as proc:
        yield proc


async def test_a_thousand_parked_claims_cost_one_claim_per_job(server, redis):
    fleet = ParkedFleet(server.port, FLEET)
    try:
        before_parking = evalsha_calls(redis.url)
        await fleet.park(server.url)
        # Registered is not yet parked: each claim's one fruitless attempt
        # may still be on its way to Redis on a busy machine.
        await wait_for(lambda: evalsha_calls(redis.url) - before_parking >= FLEET, "each claim's first attempt")
        scripts_before = evalsha_calls(redis.url)
        await submit(server.port, 50)
        await wait_for(lambda: len(fleet.answered()) >= 50, "50 claims answered")
        await asyncio.sleep(0.5)  # nothing more is woken for these 50 jobs
        answered = fleet.answered()
        scripts = evalsha_calls(redis.url) - scripts_before
    finally:
        await fleet.close()
    assert all(status == 200 for status, _, _ in answered)
    jobs = [body["job"]["job_id"] for _, body, _ in answered]
    assert len(jobs) == 50 and sorted(set(jobs)) == sorted(jobs)  # each job claimed exactly once
    # one create script, then a claim script per job, give or take a few
    # woken for a job another claim took first
    assert scripts <= 1 + 50 * 2, scripts
    assert not answered_503(server.output()) and "Too many connections" not in server.output()


async def test_a_thousand_tails_each_get_every_chunk_and_their_end(server):
    wf = await submit(server.port, FLEET)
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as api:
        leases = {}
        while len(leases) < FLEET:
            # Leases outlive the test however slow the machine: a lease lost
            # mid-test would be a speed dependence, not a finding.
            claim = (await api.post("/api/jobs/claim", json={"worker_id": "busy", "lease_ttl_secs": 3600})).json()
            leases[claim["job"]["job_id"]] = claim["lease"]["lease_id"]
        async with stream_client(server.url) as streams:
            events: dict[str, list] = {job: [] for job in leases}
            tails = [asyncio.create_task(tail(streams, wf, job, events[job])) for job in leases]
            try:
                await wait_for(lambda: health(server.url).get("open_streams", 0) >= FLEET, f"{FLEET} open tails")

                async def run(job: str, lease: str) -> None:
                    for seq in range(2):
                        chunk = {"workflow_id": wf, "job_id": job, "sequence": seq,
                                 "data": f"{job} line {seq}\n", "timestamp_ms": 1}
                        resp = await api.post(f"/api/jobs/{lease}/logs", json={"chunks": [chunk]})
                        assert resp.status_code == 200, resp.text
                    done = await api.post(f"/api/jobs/{lease}/complete", json={})
                    assert done.status_code == 200, done.text

                sem = asyncio.Semaphore(64)

                async def bounded(job: str, lease: str) -> None:
                    async with sem:
                        await run(job, lease)

                await asyncio.gather(*(bounded(job, lease) for job, lease in leases.items()))
                await asyncio.wait_for(asyncio.gather(*tails), 300)
            finally:
                await _settle(tails)
        for job in leases:
            got = events[job]
            kinds = [name for name, _, _ in got]
            assert kinds == ["log", "log", "end"], (job, got[:4])
            assert [data["sequence"] for name, data, _ in got if name == "log"] == [0, 1]
            assert got[-1][1]["status"] == "success"
        # the tails saw exactly what was stored
        for job in list(leases)[:50]:
            stored = (await api.get(f"/api/workflows/{wf}/jobs/{job}/logs")).json()
            assert [c["sequence"] for c in stored] == [d["sequence"] for n, d, _ in events[job] if n == "log"]
    assert not answered_503(server.output()) and "Traceback" not in server.output()


async def _settle(tasks: list[asyncio.Task]) -> None:
    """Cancels what is left and collects every outcome, so a failure is one
    traceback, not a "Task exception was never retrieved" per task."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _raw_post(port: int, path: str, body: dict, read: bool) -> bytes:
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    data = sock.recv(65536) if read else b""
    sock.close()
    return data


@pytest.mark.parametrize("lost", ["after the server answered", "before the server answered"])
async def test_a_claim_whose_reply_was_lost_costs_no_attempt(server, lost):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
        doc = {"name": "once", "jobs": [{"id": "only", "command": "true", "max_retries": 0}]}
        wf = (await api.post("/api/workflows?run=true", json=doc)).json()["id"]
        body = {"worker_id": "flaky-net", "claim_id": "claim-42", "lease_ttl_secs": 30}
        if lost == "after the server answered":
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            payload = json.dumps(body).encode()
            sock.sendall(f"POST /api/jobs/claim HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
            await wait_for(lambda: httpx.get(f"{server.url}/api/workflows/{wf}").json()["jobs"][0]["status"]
                           == "running", "the lease")
            first_lease = httpx.get(f"{server.url}/api/workers").json()[0]["current_jobs"]
            sock.close()  # the answer is never read
            assert first_lease == [f"{wf}/only"]
        else:
            _raw_post(server.port, "/api/jobs/claim", body, read=False)  # gone at once
        again = (await api.post("/api/jobs/claim", json=body)).json()
        assert again["job"]["job_id"] == "only" and again["job"]["attempt"] == 0
        lid = again["lease"]["lease_id"]
        if lost == "after the server answered":  # the same lease, not a second one
            workers = (await api.get("/api/workers")).json()
            assert workers[0]["current_jobs"] == [f"{wf}/only"]
        done = await api.post(f"/api/jobs/{lid}/complete", json={})
        assert done.json() == {"ok": True, "lease_id": lid, "outcome": "success", "replayed": False}
        # and the complete's own reply lost: sent again, answered as the first
        again_done = (await api.post(f"/api/jobs/{lid}/complete", json={})).json()
        assert again_done["replayed"] is True and again_done["outcome"] == "success"
        status = (await api.get(f"/api/workflows/{wf}")).json()
        assert status["status"] == "success" and status["jobs"][0]["attempt"] == 0


async def test_a_client_gone_mid_body_is_no_server_error(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"POST /api/workflows HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{\"name\": ")
    time.sleep(0.3)
    sock.close()
    time.sleep(0.5)
    assert httpx.get(server.url + "/healthz").status_code == 200
    log = server.output()
    assert "Traceback" not in log and " 500" not in log and "ERROR" not in log


async def test_a_parked_claim_whose_client_hangs_up_ends_at_once(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    payload = json.dumps({"worker_id": "hangs-up", "wait_secs": 55}).encode()
    sock.sendall(b"POST /api/jobs/claim HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    await wait_for(lambda: health(server.url).get("waiting_claims") == 1, "the claim to park")
    sock.close()
    await wait_for(lambda: health(server.url).get("waiting_claims") == 0, "the parked claim to end")
