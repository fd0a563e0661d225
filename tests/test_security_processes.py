"""Security behaviour that needs a real server process: refusing to start
exposed without auth, the masked Redis URL, and the connection limits that
live below the application (slow clients, too many connections)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.procs import wait_until
from tests.redis_proc import free_port, redis_server
from tests.server_proc import ServerProcess

pytestmark = pytest.mark.slow

ADMIN = "process-admin-token-0123456789abcdef"


def run_server(**env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("ROTA_ADMIN_TOKEN", "ROTA_AUTH", "HOST")}
    full.update({"PORT": str(free_port()), "WORKFLOWS_DIR": "", **env})
    return subprocess.run([sys.executable, "-m", "server"], env=full, capture_output=True, text=True, timeout=30)


def test_refuses_to_listen_beyond_loopback_without_auth():
    done = run_server(HOST="0.0.0.0")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rota: bad setting: refusing to listen on HOST=0.0.0.0")
    assert "ROTA_ADMIN_TOKEN" in lines[0] and "ROTA_AUTH=off" in lines[0]


@pytest.mark.parametrize("env,message", [
    ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL must be one of"),
    ({"REDIS_URL": "http://x"}, "REDIS_URL must be"),
    ({"PORT": "abc"}, "PORT must be an integer"),
    ({"ROTA_ADMIN_TOKEN": "short"}, "at least 32 characters"),
    ({"ROTA_ADMIN_TOKEN": "changeme-changeme-changeme-changeme"}, "too easy to guess"),
    ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS=*"),
    ({"ROTA_AUTH": "maybe"}, "ROTA_AUTH must be on or off"),
    ({"ROTA_AUTH": "off", "ROTA_ADMIN_TOKEN": ADMIN}, "auth is on whenever"),
    ({"ROTA_ADMIN_TOKEN_FILE": "/nonexistent/token"}, "cannot read"),
])
def test_bad_settings_are_one_line(env, message):
    done = run_server(**env)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_exposed_with_auth_or_explicitly_without(tmp_path):
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN + "\n")
    with ServerProcess(HOST="0.0.0.0", ROTA_ADMIN_TOKEN_FILE=str(token_file)) as server:
        assert httpx.get(server.url + "/api/workflows").status_code == 401
        ok = httpx.get(server.url + "/api/workflows", headers={"Authorization": f"Bearer {ADMIN}"})
        assert ok.status_code == 200
        # not loopback and ALLOWED_HOSTS unset: any name may be used to reach it
        assert httpx.get(server.url + "/healthz", headers={"Host": "rota.internal"}).status_code == 200
    with ServerProcess(HOST="0.0.0.0", ROTA_AUTH="off", LOG_LEVEL="info") as server:
        assert httpx.get(server.url + "/api/workflows").status_code == 200
        time.sleep(0.2)
        assert "auth: off" in server.output()


def test_a_replica_without_the_admin_token_refuses_a_redis_that_holds_api_tokens(tmp_path):
    """The trial's replica: no ROTA_ADMIN_TOKEN on a Redis where others run
    with auth on. It exits 2 with one line instead of taking anonymous
    writes, before Redis answers too (started first, it refuses once it
    can tell); ROTA_AUTH=off says auth off is meant."""
    with redis_server(appendonly=True) as redis:
        with ServerProcess(redis.url, ROTA_ADMIN_TOKEN=ADMIN) as first:
            made = httpx.post(first.url + "/api/tokens", json={"name": "ci", "scopes": ["submit"]},
                              headers={"Authorization": f"Bearer {ADMIN}"})
            assert made.status_code == 201, made.text
        done = run_server(REDIS_URL=redis.url)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("rota: refusing to start with auth off"), lines
        assert "ROTA_ADMIN_TOKEN" in lines[0] and "ROTA_AUTH=off" in lines[0]
        with ServerProcess(redis.url, ROTA_AUTH="off") as deliberate:
            assert httpx.get(deliberate.url + "/api/workflows").status_code == 200
        redis.stop()
        late = ServerProcess(redis.url, LOG_LEVEL="info").start(healthy=False)
        try:
            wait_until(lambda: "waiting for Redis" in late.output(), "the server to wait for Redis")
            redis.start()
            assert late.proc.wait(60) == 2, late.output()
            assert "refusing to start with auth off" in late.output() and "Traceback" not in late.output()
        finally:
            late.stop()


@pytest.mark.parametrize("spelling", ["userinfo", "query"])
def test_the_redis_password_is_never_shown_in_the_log_or_healthz(spelling):
    with redis_server(password="s3cret-pw") as redis:
        # redis-py decodes the query's keys: `passw%6Frd` authenticates as `password`
        url = (f"redis://:s3cret-pw@127.0.0.1:{redis.port}/0" if spelling == "userinfo"
               else f"redis://127.0.0.1:{redis.port}/0?passw%6Frd=s3cret-pw")
        with ServerProcess(url, LOG_LEVEL="info", ROTA_ADMIN_TOKEN=ADMIN) as server:
            anonymous = httpx.get(server.url + "/healthz")
            assert anonymous.json() == {"ok": True}
            health = httpx.get(server.url + "/healthz", headers={"Authorization": f"Bearer {ADMIN}"}).json()
            assert health["redis"] == f"redis://127.0.0.1:{redis.port}/0"
            log = server.output()
            assert f"store: redis://127.0.0.1:{redis.port}/0" in log
            assert "s3cret-pw" not in log and "s3cret-pw" not in str(health)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_slow_clients_are_cut_off():
    with ServerProcess(BODY_TIMEOUT_SECS="1", HEADER_TIMEOUT_SECS="1") as server:
        # headers that never finish, and a body that never arrives
        slow_headers = _connect(server.port)
        slow_headers.sendall(b"GET /api/workflows HTTP/1.1\r\nHost: localhost\r\n")
        slow_body = _connect(server.port)
        slow_body.sendall(b"POST /api/jobs/claim HTTP/1.1\r\nHost: localhost\r\n"
                          b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        silent = _connect(server.port)
        for sock in (slow_headers, slow_body):
            answer = _read_all(sock)  # the server closes it: recv sees the end
            assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer
        assert _read_all(silent).startswith(b"HTTP/1.1 408")
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert "Traceback" not in server.output()


def test_connections_beyond_the_limit_get_503():
    with ServerProcess(MAX_CONNECTIONS="16") as server:
        # fifteen parked long-polls and a keep-alive client, all past auth
        # (with auth off any request is), hold every slot: nothing can be
        # pushed out for a newcomer
        held = []
        for i in range(15):
            sock = _connect(server.port)
            body = b'{"worker_id": "w%d", "wait_secs": 30}' % i
            sock.sendall(b"POST /api/jobs/claim HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            held.append(sock)
        with httpx.Client(base_url=server.url) as client:
            wait_until(lambda: client.get("/healthz").json()["waiting_claims"] == 15, "fifteen parked claims")
            extra = _connect(server.port)
            answer = _read_all(extra)
            assert answer.startswith(b"HTTP/1.1 503") and b'"overloaded"' in answer
        for sock in held:
            sock.close()
        wait_until(lambda: httpx.get(server.url + "/healthz").status_code == 200, "room again", timeout=30)


# The Redis ACL docs/security.md recommends, verbatim.
README_ACL = ("on >rota-pw resetkeys ~{rota}:* resetchannels &{rota}:* -@all +@read +@write +@pubsub"
              " +@scripting +@connection +time -@dangerous")


def test_the_recommended_redis_acl_is_enough_and_no_more():
    import redis as redis_py

    with redis_server() as redis:
        admin = redis_py.Redis.from_url(redis.url)
        admin.execute_command("ACL", "SETUSER", "rota", *README_ACL.split())
        admin.execute_command("ACL", "SETUSER", "narrow", *README_ACL.replace(" +time", "").split())
        url = f"redis://rota:rota-pw@127.0.0.1:{redis.port}/0"
        with ServerProcess(url) as server:
            api = httpx.Client(base_url=server.url, timeout=10)
            doc = {"name": "x", "jobs": [{"id": "a", "command": "true"}, {"id": "b", "command": "true",
                                                                          "depends_on": ["a"]}]}
            wf = api.post("/api/workflows?run=true", json=doc).json()["id"]
            lease = api.post("/api/jobs/claim", json={"worker_id": "w", "wait_secs": 1}).json()["lease"]
            chunk = {"workflow_id": wf, "job_id": "a", "sequence": 0, "data": "hi\n", "timestamp_ms": 1}
            assert api.post(f"/api/jobs/{lease['lease_id']}/logs", json={"chunks": [chunk]}).status_code == 200
            assert api.post(f"/api/jobs/{lease['lease_id']}/heartbeat").status_code == 200
            assert api.post(f"/api/jobs/{lease['lease_id']}/complete", json={}).status_code == 200
            assert "event: end" in api.get(f"/api/workflows/{wf}/jobs/a/logs/stream").text
            assert api.post("/api/jobs/claim", json={"worker_id": "w", "wait_secs": 2}).json()["job"]["job_id"] == "b"
            assert api.get("/api/workers").status_code == 200
            assert api.get("/healthz").json()["pubsub"] is True
        # and nothing outside the namespace
        confined = redis_py.Redis.from_url(url)
        with pytest.raises(redis_py.exceptions.NoPermissionError):
            confined.set("elsewhere", 1)
        with pytest.raises(redis_py.exceptions.NoPermissionError):
            confined.flushall()
        # an ACL missing a command the scripts need is a clear 503, not a 500 or a dropped connection
        with ServerProcess(f"redis://narrow:rota-pw@127.0.0.1:{redis.port}/0") as server:
            resp = httpx.post(server.url + "/api/workflows", json={"name": "x", "jobs": [{"id": "a", "command": "t"}]})
            assert resp.status_code == 503 and resp.json()["error"]["code"] == "store_refused"
            assert "Traceback" not in server.output()


@pytest.mark.parametrize("auth", [False, True])
def test_a_body_trickled_after_an_early_answer_is_cut_off(auth):
    env = {"BODY_TIMEOUT_SECS": "1"}
    if auth:
        env["ROTA_ADMIN_TOKEN"] = ADMIN
    with ServerProcess(**env) as server:
        # answered at once (404, or 401 without a token), its body never read
        sock = _connect(server.port)
        sock.sendall(b"POST /api/workflows/x/cancel HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
        sock.settimeout(10)
        answer = b""
        closed = False
        for _ in range(30):  # keep trickling; the server must close the connection
            try:
                sock.sendall(b" ")
                chunk = sock.recv(65536)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            except socket.timeout:
                continue
            if not chunk:
                closed = True
                break
            answer += chunk
            time.sleep(0.2)
        assert closed and answer.startswith(b"HTTP/1.1 401" if auth else b"HTTP/1.1 404")
