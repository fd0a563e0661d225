"""Issue 14, items 3 and 4, replayed as the audit did: real Redis, a real
server process, raw sockets. What is asserted are memory bounds (Redis's
used_memory, the server's peak RSS from /proc) and that a stalled tail is
let go, never how fast anything happens."""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest
import redis as redis_sync
import yaml

from tests.procs import WorkerProc, rota, wait_until
from tests.redis_proc import redis_server
from tests.server_proc import ServerProcess

pytestmark = pytest.mark.slow
MiB = 1024 * 1024
ONE = b"name: bomb\non: push\njobs:\n  j:\n    run: make\n"


def running(client: httpx.Client) -> tuple[str, str, str]:
    """(workflow id, lease id, run id) of a freshly claimed job."""
    resp = client.post("/api/workflows?run=true", content=ONE, headers={"Content-Type": "application/yaml"})
    assert resp.status_code == 201, resp.text
    wf = resp.json()["id"]
    lease = client.post("/api/jobs/claim", json={"worker_id": "w1", "lease_ttl_secs": 3600}).json()["lease"]
    return wf, lease["lease_id"], lease["run_id"]


def chunks(wf: str, first: int, count: int, data: str) -> bytes:
    return json.dumps({"chunks": [{"workflow_id": wf, "job_id": "j", "sequence": first + i, "data": data,
                                   "timestamp_ms": 1} for i in range(count)]}, separators=(",", ":")).encode()


def push(client: httpx.Client, lease: str, body: bytes) -> httpx.Response:
    return client.post(f"/api/jobs/{lease}/logs", content=body, headers={"Content-Type": "application/json"})


def vm(pid: int, field: str) -> int:
    """A /proc/<pid>/status figure (VmRSS, VmHWM) in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def test_a_log_bomb_leaves_redis_memory_bounded_by_the_budget():
    """The audit: 24 chunks of 7.5 MiB from one lease raised Redis by 200 MiB."""
    with redis_server() as rp, ServerProcess(rp.url) as srv, httpx.Client(base_url=srv.url, timeout=120) as c:
        r = redis_sync.Redis.from_url(rp.url)
        wf, lease, run = running(c)
        before = r.info("memory")["used_memory"]
        huge = "x" * int(7.5 * MiB)
        codes = [push(c, lease, chunks(wf, i, 1, huge)).status_code for i in range(24)]
        assert set(codes) == {422}, codes  # one chunk over LOG_MAX_CHUNK_BYTES
        # the largest chunks a request may carry, until the budget (16 MiB by default) is spent
        big = "x" * (250 * 1024)
        codes = [push(c, lease, chunks(wf, 24 * i, 24, big)).status_code for i in range(12)]
        assert codes[0] == 200 and codes[-1] == 413, codes
        grown = r.info("memory")["used_memory"] - before
        assert grown < 24 * MiB, f"Redis grew by {grown / MiB:.0f} MiB"
        entries = r.xrange(f"{{rota}}:logs:{run}:j")
        assert b"further output dropped" in entries[-1][1][b"c"]
        assert sum(len(fields[b"c"]) for _, fields in entries[:-1]) <= 16 * MiB


def test_one_request_of_70000_tiny_chunks_is_refused_before_redis_sees_it():
    """The audit: one such request held Redis for 1.4 s (/healthz stalled)."""
    with redis_server() as rp, ServerProcess(rp.url) as srv, httpx.Client(base_url=srv.url, timeout=120) as c:
        r = redis_sync.Redis.from_url(rp.url)
        wf, lease, run = running(c)
        resp = push(c, lease, chunks(wf, 0, 70_000, "x"))
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_body", resp.text
        assert not r.exists(f"{{rota}}:logs:{run}:j")


def _stalled_tail(port: int, path: str) -> socket.socket:
    """An SSE client that asks and then never reads a byte."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    return s


def _read_to_end(s: socket.socket) -> int:
    """Bytes read until the server's end of the stream (EOF or reset)."""
    s.settimeout(60)
    total = 0
    try:
        while chunk := s.recv(1 << 20):
            total += len(chunk)
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError(f"the stream went on (no end after {total} bytes)") from None
    return total


def test_server_memory_stays_bounded_with_stalled_tails_and_concurrent_history_reads():
    """The audit: 3 concurrent reads of a 180 MiB log took the server's RSS
    from 48 to 1,141 MiB; 4 tails that never read held 1,065 MiB. Here a
    48 MiB log, 6 stalled tails, 2 slow ones and 3 readers paging through
    it all at once; the server's peak RSS must stay under 120 MiB."""
    bound = 120 * MiB
    env = dict(LOG_MAX_BYTES=str(64 * MiB), SSE_WRITE_TIMEOUT_SECS="600")
    with redis_server() as rp, ServerProcess(rp.url, **env) as srv, httpx.Client(base_url=srv.url, timeout=120) as c:
        wf, lease, run = running(c)
        data = "y" * 65_000
        for i in range(48):
            assert push(c, lease, chunks(wf, 16 * i, 16, data)).status_code == 200
        path = f"/api/runs/{run}/jobs/j/logs"
        stalled = [_stalled_tail(srv.port, path + "/stream") for _ in range(6)]
        slow = [_stalled_tail(srv.port, path + "/stream") for _ in range(2)]
        for s in slow:  # they read a little now and then
            s.settimeout(30)
            s.recv(65536)

        def read_all(out: list[int]) -> None:
            with httpx.Client(base_url=srv.url, timeout=120) as h:
                params: dict = {}
                while True:
                    resp = h.get(path, params=params)
                    assert resp.status_code == 200
                    out.append(len(resp.json()))
                    if "x-next-cursor" not in resp.headers:
                        return
                    params = {"after": resp.headers["x-next-cursor"]}
                    for s in slow:
                        s.recv(16384)

        counts: list[list[int]] = [[], [], []]
        readers = [threading.Thread(target=read_all, args=(out,)) for out in counts]
        for t in readers:
            t.start()
        for t in readers:
            t.join(300)
        assert all(sum(out) == 48 * 16 for out in counts), [sum(out) for out in counts]
        peak = vm(srv.proc.pid, "VmHWM")
        print(f"server peak RSS {peak / MiB:.0f} MiB (now {vm(srv.proc.pid, 'VmRSS') / MiB:.0f} MiB)")
        for s in stalled + slow:
            s.close()
        assert peak < bound, f"server peak RSS {peak / MiB:.0f} MiB"


def test_a_tail_that_does_not_drain_is_dropped_and_its_slot_freed():
    """Two tails that never read hold both MAX_STREAMS slots until the
    write deadline lets them go: then a new tail gets in, and the stalled
    ones find their streams ended (short of the log) once they read."""
    env = dict(LOG_MAX_BYTES=str(32 * MiB), SSE_WRITE_TIMEOUT_SECS="2", MAX_STREAMS="2", LOG_LEVEL="info")
    with redis_server() as rp, ServerProcess(rp.url, **env) as srv, httpx.Client(base_url=srv.url, timeout=120) as c:
        wf, lease, run = running(c)
        for i in range(8):
            assert push(c, lease, chunks(wf, 16 * i, 16, "z" * 65_000)).status_code == 200
        path = f"/api/runs/{run}/jobs/j/logs/stream"
        stalled = [_stalled_tail(srv.port, path) for _ in range(2)]
        try:
            wait_until(lambda: srv.output().count(f"stream {path} dropped: its client took nothing for 2s") == 2,
                       "both stalled tails to be dropped", timeout=90, logs=srv.output)
            with c.stream("GET", path) as resp:
                assert resp.status_code == 200  # their MAX_STREAMS slots are free again
            for s in stalled:
                # what the kernel still held for it, then the end: the job
                # still runs, so only a cut ends its stream
                assert _read_to_end(s) < 8 * 16 * 65_000
        finally:
            for s in stalled:
                s.close()
        assert "ASGI callable returned without completing response" not in srv.output()


def test_rota_worker_keeps_a_job_running_past_its_log_budget(tmp_path, label):
    """GitLab's "Job's log exceeded limit": the log stops at LOG_MAX_BYTES
    with one marker line; the job's further output (more than the worker
    buffers before it stops reading a job's pipes) is read and dropped, and
    the job runs to its end, its result counting."""
    with ServerProcess(LOG_MAX_BYTES=str(64 * 1024)) as srv:
        worker = WorkerProc(srv, tmp_path, f"w-{label}", "--labels", label)
        try:
            path = tmp_path / "chatty.yml"
            path.write_text(yaml.safe_dump({"name": "chatty", "on": "push", "jobs": {"talk": {
                "labels": [label],
                "run": "head -c 6000000 /dev/zero | tr '\\0' x\necho\nrota log entry after the cut\n"
                       "echo the job got here",
            }}}))
            submitted = rota("submit", str(path), server=srv)
            assert submitted.returncode == 0, submitted.stderr
            logs = rota("logs", "--follow", submitted.stdout.strip(), "talk", server=srv, timeout=120)
            assert logs.returncode == 0 and logs.stderr == "talk: success\n", logs.stderr + worker.log()
            marker = "[rota: job log exceeded LOG_MAX_BYTES (65536 bytes); further output dropped]\n"
            assert logs.stdout.count(marker) == 1 and logs.stdout.endswith(marker), logs.stdout[-300:]
            assert "the job got here" not in logs.stdout and len(logs.stdout) < 64 * 1024
            assert "entry after the cut" not in logs.stdout
            assert worker.log().count("reached the server's LOG_MAX_BYTES") == 1, worker.log()
        finally:
            worker.stop()
