"""`rota server --workers N`: several server processes on one port, with
real processes and sockets. Claims parked in one process are woken by jobs
enqueued through another, one job goes to one claim whichever process holds
it, a dead process is replaced, every process stops on SIGTERM and Ctrl-C,
none outlives a killed supervisor, the connection limits stay the
whole server's, and the batch protocol, each process running the scripts
on a Redis connection of its own, leases each job once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.procs import ROTA, pid_alive, wait_until
from tests.redis_proc import redis_server
from tests.server_proc import ServerProcess

pytestmark = pytest.mark.slow

WORKERS = 2


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as proc:
        yield proc.url


def server(redis_url: str, argv: list[str] | None = None, **env: str) -> ServerProcess:
    return ServerProcess(redis_url, argv=argv or [sys.executable, "-m", "server", "--workers", str(WORKERS)],
                         **env)


def health(client: httpx.Client) -> dict:
    resp = client.get("/healthz")
    assert resp.status_code == 200, resp.text
    return resp.json()


class Pinned:
    """httpx clients, each on one kept-alive connection, by the process that
    accepted it: what a client sends on it, that process serves."""

    def __init__(self, url: str, per_process: int):
        self.by_pid: dict[int, list[httpx.Client]] = {}
        spare = []
        for _ in range(400):  # the kernel hashes connections over the processes: a few dozen suffice
            client = httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=1))
            clients = self.by_pid.setdefault(health(client)["pid"], [])
            (clients if len(clients) < per_process else spare).append(client)
            if len(self.by_pid) == WORKERS and all(len(c) == per_process for c in self.by_pid.values()):
                break
        for client in spare:
            client.close()
        assert len(self.by_pid) == WORKERS, f"every connection landed on one process: {list(self.by_pid)}"

    def pids(self) -> list[int]:
        return sorted(self.by_pid)

    def close(self) -> None:
        for clients in self.by_pid.values():
            for client in clients:
                client.close()


def submit(client: httpx.Client, job: str, labels: list[str] | None = None) -> str:
    doc = {"name": job, "on": "test", "jobs": {job: {"run": "true", "labels": labels or []}}}
    resp = client.post("/api/workflows?run=true", json=doc)
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def park(client: httpx.Client, worker: str, labels: list[str] | None = None, wait: int = 30):
    resp = client.post("/api/jobs/claim", json={"worker_id": worker, "labels": labels or [], "wait_secs": wait})
    assert resp.status_code == 200, resp.text
    return resp.json()


def parked(probe: httpx.Client) -> int:
    return health(probe)["waiting_claims"]


def test_a_claim_parked_in_one_process_is_woken_by_a_job_enqueued_through_the_other(redis_url):
    with server(redis_url) as srv:
        pinned = Pinned(srv.url, per_process=2)
        try:
            a, b = pinned.pids()
            (park_a, probe_a), (park_b, probe_b) = pinned.by_pid[a], pinned.by_pid[b]
            assert health(probe_a)["processes"] == WORKERS
            with ThreadPoolExecutor(2) as pool:
                on_a = pool.submit(park, park_a, "wa", ["only-a"])
                on_b = pool.submit(park, park_b, "wb", ["only-b"])
                wait_until(lambda: parked(probe_a) == 1 and parked(probe_b) == 1, "a claim parked in each process",
                           logs=srv.output)
                # each job through the process that does not hold its claim
                wf_a = submit(probe_b, "for-a", ["only-a"])
                wf_b = submit(probe_a, "for-b", ["only-b"])
                got_a, got_b = on_a.result(30), on_b.result(30)
            assert got_a["job"]["workflow_id"] == wf_a and got_b["job"]["workflow_id"] == wf_b
        finally:
            pinned.close()


def test_claims_parked_across_processes_take_each_job_once(redis_url):
    claimers = 4
    with server(redis_url) as srv:
        pinned = Pinned(srv.url, per_process=claimers + 1)
        try:
            parkers = [(pid, c) for pid in pinned.pids() for c in pinned.by_pid[pid][:claimers]]
            probes = [pinned.by_pid[pid][claimers] for pid in pinned.pids()]
            label = "race"
            with ThreadPoolExecutor(len(parkers)) as pool:
                futures = [pool.submit(park, c, f"w{i}", [label]) for i, (_, c) in enumerate(parkers)]
                wait_until(lambda: sum(parked(p) for p in probes) == len(parkers), "every claim parked",
                           logs=srv.output)
                first = submit(probes[0], "first", [label])
                wait_until(lambda: sum(f.done() for f in futures) == 1, "one claim answered", logs=srv.output)
                # the other claims stay parked: no second lease of that job
                wait_until(lambda: sum(parked(p) for p in probes) == len(parkers) - 1, "the rest still parked",
                           logs=srv.output)
                rest = [submit(probes[i % 2], f"job{i}", [label]) for i in range(len(parkers) - 1)]
                answers = [f.result(30) for f in futures]
            workflows = sorted(answer["job"]["workflow_id"] for answer in answers)
            assert workflows == sorted([first, *rest]), "every job leased once, every claim served"
        finally:
            pinned.close()


def _batch_drain(client: httpx.Client, worker: str, size: int) -> list[str]:
    """Claims `size` at a time, then sends each batch's results with the next
    claim, until the queue is empty: the jobs this worker took."""
    claim = {"worker_id": worker, "labels": ["batch"], "max_jobs": size}
    resp = client.post("/api/jobs/claims", json={**claim, "claim_id": f"{worker}-0"})
    assert resp.status_code == 200, resp.text
    leases, took, turn = resp.json()["claims"], [], 0
    while leases:
        took += [c["job"]["job_id"] for c in leases]
        turn += 1
        results = [{"lease_id": c["lease"]["lease_id"], "kind": "complete"} for c in leases]
        resp = client.post("/api/jobs/results", json={"results": results,
                                                       "next": {**claim, "claim_id": f"{worker}-{turn}"}})
        assert resp.status_code == 200, resp.text
        assert all(r.get("outcome") == "success" for r in resp.json()["results"]), resp.text
        leases = resp.json()["next"]
    return took


def test_the_batch_protocol_through_every_process_leases_each_job_once(redis_url):
    """Each process runs the scripts on a Redis connection of its own: batch
    claims and results with the next claim, sent through both processes at
    once, lease every job of one queue once and settle it."""
    jobs, size = 60, 4
    with server(redis_url) as srv:
        pinned = Pinned(srv.url, per_process=2)
        try:
            a, b = pinned.pids()
            doc = {"name": "batch", "on": "test",
                   "jobs": {f"j{i}": {"run": "true", "labels": ["batch"]} for i in range(jobs)}}
            resp = pinned.by_pid[a][0].post("/api/workflows?run=true", json=doc)
            assert resp.status_code == 201, resp.text
            wf = resp.json()["id"]
            first = []
            for pid in (a, b):  # one batch through each process alone first
                client = pinned.by_pid[pid][0]
                claims = client.post("/api/jobs/claims", json={"worker_id": f"first-{pid}", "labels": ["batch"],
                                                               "max_jobs": size}).json()["claims"]
                assert len(claims) == size
                first += [c["job"]["job_id"] for c in claims]
                resp = client.post("/api/jobs/results", json={"results": [
                    {"lease_id": c["lease"]["lease_id"], "kind": "complete"} for c in claims]})
                assert [r.get("outcome") for r in resp.json()["results"]] == ["success"] * size, resp.text
            clients = [(pid, c) for pid in (a, b) for c in pinned.by_pid[pid]]
            with ThreadPoolExecutor(len(clients)) as pool:
                took = list(pool.map(lambda pc: _batch_drain(pc[1], f"w{pc[0]}-{id(pc[1])}", size), clients))
            every = sorted(first + [job for mine in took for job in mine])
            assert every == sorted(f"j{i}" for i in range(jobs)), "every job leased once"
            run = pinned.by_pid[b][0].get(f"/api/workflows/{wf}").json()
            assert {j["status"] for j in run["jobs"]} == {"success"}
        finally:
            pinned.close()


def test_a_killed_process_is_replaced_and_serves(redis_url):
    with server(redis_url) as srv:
        pinned = Pinned(srv.url, per_process=1)
        victim = pinned.pids()[0]
        pinned.close()
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            # a new connection each time: the kernel spreads them over both
            with httpx.Client(base_url=srv.url, timeout=10) as probe:
                return health(probe)["pid"] not in pinned.pids()

        wait_until(replaced, "a new process answering", timeout=30, logs=srv.output)
        assert "exited with status -9" in srv.output()
        assert srv.proc.poll() is None
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            wf = submit(client, "after")
            claim = park(client, "after", wait=10)
            assert claim["job"]["workflow_id"] == wf


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_every_process_stops_answering_parked_claims(redis_url, how):
    """SIGTERM of the supervisor, or a terminal's Ctrl-C (SIGINT to the whole
    group, children included): parked long-polls answer null, every process
    exits, and the status is 0 or 130 as for one process."""
    argv = [*ROTA, "server", "--workers", str(WORKERS)]
    srv = ServerProcess(redis_url, argv=argv, group=True, LOG_LEVEL="info").start()
    try:
        children = wait_until(lambda: len(_children(srv.proc.pid)) == WORKERS and _children(srv.proc.pid),
                              "both children", logs=srv.output)
        pinned = Pinned(srv.url, per_process=2)
        answers: dict[int, object] = {}

        def hold(pid: int, client: httpx.Client) -> None:
            answers[pid] = park(client, f"stop-{pid}")

        threads = [threading.Thread(target=hold, args=(pid, pinned.by_pid[pid][0])) for pid in pinned.pids()]
        for t in threads:
            t.start()
        wait_until(lambda: all(parked(pinned.by_pid[pid][1]) == 1 for pid in pinned.pids()),
                   "a claim parked in each process", logs=srv.output)
        if how == "sigterm":
            srv.proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(srv.proc.pid, signal.SIGINT)
        for t in threads:
            t.join(30)
        assert answers == {pid: None for pid in pinned.pids()}, "answered null, not cut off"
        assert srv.proc.wait(30) == (0 if how == "sigterm" else 130)
        wait_until(lambda: not any(pid_alive(c) for c in children), "every child gone", logs=srv.output)
        assert "Traceback" not in srv.output()
        pinned.close()
    finally:
        if srv.proc.poll() is None:
            os.killpg(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(10)


def test_children_stop_when_the_supervisor_is_killed(redis_url):
    srv = server(redis_url).start()
    try:
        children = wait_until(lambda: len(_children(srv.proc.pid)) == WORKERS and _children(srv.proc.pid),
                              "both children", logs=srv.output)
        srv.kill()
        wait_until(lambda: not any(pid_alive(c) for c in children), "the children to stop on their own",
                   timeout=30, logs=srv.output)
    finally:
        srv.stop()


def _still_open(sock: socket.socket) -> bool:
    """Not closed by the server: a pushed-out socket reads as a 503, then EOF."""
    try:
        while sock.recv(65536, socket.MSG_DONTWAIT):
            pass
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def _open_sockets(socks: list[socket.socket]) -> int:
    return sum(_still_open(sock) for sock in socks)


def test_connections_per_address_are_the_whole_servers_not_each_processes(redis_url):
    """MAX_CONNECTIONS_PER_ADDRESS=4 over 2 processes: each holds 2 of one
    address's connections not yet past auth, so all of them together hold
    at most 4, however the kernel spread the sockets."""
    per_address = 4
    with server(redis_url, MAX_CONNECTIONS_PER_ADDRESS=str(per_address), HEADER_TIMEOUT_SECS="300") as srv:
        socks = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(12)]
        try:
            wait_until(lambda: _open_sockets(socks) <= per_address, f"at most {per_address} left open",
                       logs=srv.output)
            assert 1 <= _open_sockets(socks) <= per_address
            with httpx.Client(base_url=srv.url, timeout=10) as client:
                assert health(client)["ok"], "a client that sends its request still gets in"
        finally:
            for sock in socks:
                sock.close()


def test_workers_without_redis_is_refused_at_start():
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = subprocess.run([*ROTA, "server", "--workers", "2"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "needs REDIS_URL" in done.stderr, done.stderr


def test_processes_that_refuse_their_store_stop_the_whole_server():
    """Started before Redis answers, auth off by default: once Redis is up
    holding API tokens, each process refuses it (exit 2), and the
    supervisor stops the rest and exits 2 rather than start them again."""
    admin = "workers-admin-token-4f9c2e7a1b8d3f6e0a5c9b2d7e4f1a8c"
    with redis_server(appendonly=True) as redis:
        with ServerProcess(redis.url, ROTA_ADMIN_TOKEN=admin) as first:
            made = httpx.post(first.url + "/api/tokens", json={"name": "ci", "scopes": ["submit"]},
                              headers={"Authorization": f"Bearer {admin}"})
            assert made.status_code == 201, made.text
        redis.stop()
        srv = server(redis.url, LOG_LEVEL="info").start(healthy=False)
        try:
            children = wait_until(lambda: len(_children(srv.proc.pid)) == WORKERS and _children(srv.proc.pid),
                                  "both children", logs=srv.output)
            wait_until(lambda: srv.output().count("waiting for Redis") == WORKERS, "both to wait for Redis",
                       logs=srv.output)
            redis.start()
            assert srv.proc.wait(60) == 2, srv.output()
            assert "refusing to start with auth off" in srv.output() and "refused to serve" in srv.output()
            assert "another starts" not in srv.output() and "Traceback" not in srv.output()
            wait_until(lambda: not any(pid_alive(c) for c in children), "every child gone", logs=srv.output)
        finally:
            srv.stop()


def _metric(client: httpx.Client, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.text
    return next(s.value for f in text_string_to_metric_families(resp.text) for s in f.samples
                if s.name == name and not s.labels)


def test_every_process_scrapes_the_same_fleet_wide_counts(redis_url):
    """Jobs claimed and completed through both processes: each process's
    /metrics, once both have flushed (each within METRICS_FLUSH_SECS),
    counts all of them once. (A namespace of its own: the fleet's counters
    outlive the servers of the tests before.)"""
    with server(redis_url, ROTA_NAMESPACE="fleet-metrics") as srv:
        pinned = Pinned(srv.url, per_process=1)
        try:
            a, b = pinned.pids()
            ca, cb = pinned.by_pid[a][0], pinned.by_pid[b][0]
            doc = {"name": "fleet", "on": "test",
                   "jobs": {f"j{i}": {"run": "true", "labels": ["fleet"]} for i in range(7)}}
            assert ca.post("/api/workflows?run=true", json=doc).status_code == 201
            for i, client in enumerate([ca, cb, ca, cb, cb]):
                got = client.post("/api/jobs/claim", json={"worker_id": f"w{i}", "labels": ["fleet"]}).json()
                resp = client.post(f"/api/jobs/{got['lease']['lease_id']}/complete", json={})
                assert resp.status_code == 200, resp.text
            for name, want in (("rota_claims_total", 5), ("rota_completions_total", 5),
                               ("rota_job_duration_seconds_count", 5)):
                wait_until(lambda name=name, want=want: _metric(ca, name) == want and _metric(cb, name) == want,
                           f"both processes to count {want} for {name}", logs=srv.output)
            assert _metric(ca, "rota_dead_letters") == _metric(cb, "rota_dead_letters") == 0
        finally:
            pinned.close()
