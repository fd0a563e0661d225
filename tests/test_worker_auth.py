"""Authentication on the worker side: the client's bearer token, the CLI's
--token / ROTA_TOKEN / ROTA_TOKEN_FILE and `rota token ...`, and what a job
gets to see (its run token, never the worker's token). In-process fakes only."""

from __future__ import annotations

import json
import logging
import os
import stat

import httpx
import msgspec
import pytest

from server.models import TokenCreated, TokenOut
from tests.test_worker_daemon import FakeServer
from worker.cli import main as cli
from worker.cli.flags import parse_duration
from worker.client.api import Client
from worker.client.errors import ApiError, is_transient
from worker.daemon.config import WorkerConfig
from worker.daemon.job import JobRun

SERVER = "http://rota.test"
TOKEN_VARS = ("ROTA_TOKEN", "ROTA_TOKEN_FILE", "ROTA_ADMIN_TOKEN", "ROTA_ADMIN_TOKEN_FILE", "ROTA_RUN_TOKEN")

WORKFLOW = {"id": "wf", "name": "CI", "trigger": "", "status": "success", "jobs": [], "created_at_ms": 1}
JOB = {"id": "j", "name": "j", "status": "success", "command": "true", "depends_on": [], "required_labels": [],
       "max_retries": 0, "attempt": 0}
TOKEN = {"id": "t1", "name": "ci", "scopes": ["worker", "read"], "created_at_ms": 1_700_000_000_000,
         "last_used_at_ms": None, "expires_at_ms": None}


def error(status: int, code: str, message: str, details=None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, "details": details}})


class Api:
    """Answers every route the client knows, recording each request's Authorization header."""

    def __init__(self, overrides: dict[tuple[str, str], httpx.Response] | None = None):
        self.seen: list[tuple[str, str, str | None]] = []
        self.raw_paths: list[str] = []
        self.bodies: dict[tuple[str, str], object] = {}
        self.overrides = overrides or {}

    def client(self, token: str | None = None) -> Client:
        return Client(SERVER, token=token, transport=httpx.MockTransport(self.handle))

    def connect(self, server: str, token: str | None = None) -> Client:
        """The CLI's client factory: `rota` against this Api."""
        return Client(server, token=token, transport=httpx.MockTransport(self.handle))

    def auth(self) -> set[str | None]:
        return {header for _, _, header in self.seen}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        self.seen.append((method, path, request.headers.get("authorization")))
        self.raw_paths.append(request.url.raw_path.decode())
        if request.content:
            self.bodies[(method, path)] = json.loads(request.content)
        if (method, path) in self.overrides:
            return self.overrides[(method, path)]
        if path == "/api/workers/register":
            return httpx.Response(200, json={"worker_id": "w", "labels": [], "registered_at_ms": 1})
        if path == "/api/jobs/claim":
            return httpx.Response(200, content=b"null")
        if path.endswith("/heartbeat"):
            return httpx.Response(200, json={"cancelled": False, "lease_id": "L", "expires_at_ms": 1})
        if path.endswith(("/complete", "/fail")):
            return httpx.Response(200, json={"ok": True, "lease_id": "L", "outcome": "success"})
        if path == "/api/jobs/L/logs":
            return httpx.Response(200, json={"accepted": 0, "duplicates": 0})
        if path == "/api/workers":
            return httpx.Response(200, json=[])
        if path == "/api/workflows":
            return httpx.Response(201, json=WORKFLOW)
        if path.endswith("/status"):
            return httpx.Response(200, json=WORKFLOW)
        if path.endswith(("/run", "/cancel")):
            return httpx.Response(202, json=WORKFLOW)
        if path.endswith("/logs/stream"):
            return httpx.Response(200, text=f"event: end\ndata: {json.dumps(JOB)}\n\n",
                                  headers={"content-type": "text/event-stream"})
        if path.endswith("/logs"):
            return httpx.Response(200, json=[])
        if path == "/api/tokens" and method == "POST":
            return httpx.Response(201, json={**TOKEN, "token": "rota_t1_secret"})
        if path == "/api/tokens":
            return httpx.Response(200, json=[TOKEN])
        if path.startswith("/api/tokens/") and method == "DELETE":
            return httpx.Response(200, json=TOKEN)
        return error(404, "not_found", f"no {path}")


async def call_everything(client: Client) -> None:
    await client.register("w", [])
    await client.claim("w", [], 30, 0)
    await client.heartbeat("L")
    await client.push_logs("L", [])
    await client.complete("L", {})
    await client.fail("L", "boom", True)
    await client.workers()
    await client.submit(b"{}", "application/json", run=True)
    await client.status("wf")
    await client.run("wf")
    await client.cancel("wf")
    await client.logs("wf", "j")
    assert [item async for item in client.follow_logs("wf", "j")][-1].status == "success"
    await client.create_token("ci", ["worker"], None)
    await client.list_tokens()
    await client.revoke_token("t1")


# ---- client ---------------------------------------------------------------------


async def test_every_request_carries_the_bearer_token_streams_included():
    api = Api()
    async with api.client("rota_t1_secret") as client:
        await call_everything(client)
    assert len(api.seen) == 16
    assert ("GET", "/api/workflows/wf/jobs/j/logs/stream", "Bearer rota_t1_secret") in api.seen
    assert api.auth() == {"Bearer rota_t1_secret"}


async def test_without_a_token_no_authorization_header_is_sent():
    api = Api()
    async with api.client() as client:
        await call_everything(client)
    assert api.auth() == {None}


async def test_token_methods_send_and_decode_the_wire_types():
    api = Api()
    async with api.client("admin") as client:
        created = await client.create_token("ci", ["worker", "read"], 3600)
        listed = await client.list_tokens()
        revoked = await client.revoke_token("a/b")
    assert isinstance(created, TokenCreated) and created.token == "rota_t1_secret" and created.id == "t1"
    assert api.bodies[("POST", "/api/tokens")] == {"name": "ci", "scopes": ["worker", "read"], "expires_in_secs": 3600}
    assert listed == [msgspec.convert(TOKEN, TokenOut)]
    assert isinstance(revoked, TokenOut) and revoked.id == "t1"
    assert api.raw_paths[-1] == "/api/tokens/a%2Fb"


async def test_list_tokens_pages_through_long_listings():
    pages = {0: [dict(TOKEN, id=f"t{i}") for i in range(1000)], 1000: [dict(TOKEN, id="last")]}
    offsets = []

    async def handler(request):
        offset = int(request.url.params.get("offset", "0"))
        offsets.append((int(request.url.params["limit"]), offset))
        return httpx.Response(200, json=pages.get(offset, []))

    async with Client(SERVER, transport=httpx.MockTransport(handler)) as client:
        tokens = await client.list_tokens()
    assert len(tokens) == 1001 and tokens[-1].id == "last"
    assert offsets == [(1000, 0), (1000, 1000)]


@pytest.mark.parametrize("status,code", [(401, "unauthenticated"), (403, "forbidden")])
async def test_auth_refusals_are_api_errors_and_not_transient(status, code):
    api = Api({("GET", "/api/workers"): error(status, code, "no")})
    async with api.client("t") as client:
        with pytest.raises(ApiError) as info:
            await client.workers()
    assert (info.value.status, info.value.code) == (status, code)
    assert not is_transient(info.value)


# ---- CLI: where the token comes from ---------------------------------------------------


@pytest.fixture
def no_token_env(monkeypatch):
    for name in TOKEN_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "flag,env,file,expected",
    [
        ("from-flag", "from-env", "from-file", "Bearer from-flag"),
        (None, "from-env", "from-file", "Bearer from-env"),
        (None, None, "  from-file\n", "Bearer from-file"),
        (None, None, None, None),
    ],
)
def test_token_precedence_flag_then_env_then_file(no_token_env, monkeypatch, tmp_path, flag, env, file, expected):
    api = Api()
    if env is not None:
        monkeypatch.setenv("ROTA_TOKEN", env)
    if file is not None:
        (tmp_path / "token").write_text(file)
        monkeypatch.setenv("ROTA_TOKEN_FILE", str(tmp_path / "token"))
    argv = ["workers", "--server", SERVER] + (["--token", flag] if flag else [])
    assert cli.main(argv, client_factory=api.connect) == 0
    assert api.auth() == {expected}


def test_rota_token_wins_without_reading_the_token_file(no_token_env, monkeypatch, tmp_path):
    api = Api()
    monkeypatch.setenv("ROTA_TOKEN", "from-env")
    monkeypatch.setenv("ROTA_TOKEN_FILE", str(tmp_path / "missing"))
    assert cli.main(["status", "wf", "--server", SERVER], client_factory=api.connect) == 0
    assert api.auth() == {"Bearer from-env"}


@pytest.mark.parametrize("content,complaint", [(None, "cannot read"), (" \n", "is empty")])
def test_an_unusable_token_file_is_an_error_before_any_request(no_token_env, monkeypatch, tmp_path, capsys,
                                                               content, complaint):
    api = Api()
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("ROTA_TOKEN_FILE", str(path))
    assert cli.main(["workers", "--server", SERVER], client_factory=api.connect) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rota: ROTA_TOKEN_FILE {path}") and complaint in err and err.count("\n") == 1
    assert api.seen == []


def test_the_token_never_shows_in_help(monkeypatch, no_token_env, capsys):
    monkeypatch.setenv("ROTA_TOKEN", "rota_t1_topsecret")
    with pytest.raises(SystemExit):
        cli.main(["worker", "--help"])
    out = capsys.readouterr().out
    assert "--token" in out and "ROTA_TOKEN_FILE" in out and "topsecret" not in out


def test_a_token_with_spaces_inside_is_refused(no_token_env, capsys):
    api = Api()
    assert cli.main(["workers", "--server", SERVER, "--token", "two words"], client_factory=api.connect) == 2
    err = capsys.readouterr().err
    assert "--token" in err and "two words" not in err
    assert api.seen == []


# ---- CLI: refusals -------------------------------------------------------------------


def test_unauthenticated_is_one_clear_line(no_token_env, capsys):
    api = Api({("GET", "/api/workers"): error(401, "unauthenticated", "this call needs a token")})
    assert cli.main(["workers", "--server", SERVER], client_factory=api.connect) == 2
    assert capsys.readouterr().err == (
        "rota: error unauthenticated: this call needs a token (set ROTA_TOKEN, ROTA_TOKEN_FILE or --token)\n"
    )


def test_a_refused_token_names_where_it_came_from(no_token_env, monkeypatch, capsys):
    api = Api({("GET", "/api/workers"): error(401, "unauthenticated", "token expired")})
    monkeypatch.setenv("ROTA_TOKEN", "old")
    assert cli.main(["workers", "--server", SERVER], client_factory=api.connect) == 2
    assert capsys.readouterr().err == "rota: error unauthenticated: token expired (the token from ROTA_TOKEN)\n"


def test_forbidden_names_the_scope_needed(no_token_env, capsys):
    api = Api({("POST", "/api/tokens"): error(403, "forbidden", "this call needs a token with the admin scope",
                                             {"required_scope": "admin"})})
    argv = ["token", "create", "--name", "x", "--scope", "read", "--server", SERVER, "--token", "t"]
    assert cli.main(argv, client_factory=api.connect) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "rota: error forbidden: this call needs a token with the admin scope (use a token with the admin scope)\n"
    )


# ---- CLI: rota token ... ----------------------------------------------------------------


def test_token_create_prints_the_secret_alone_on_stdout(no_token_env, capsys):
    api = Api({("POST", "/api/tokens"): httpx.Response(201, json={
        **TOKEN, "expires_at_ms": 1_702_592_000_000, "token": "rota_t1_secret"})})
    argv = ["token", "create", "--name", "ci", "--scope", "worker", "--scope", "read", "--expires-in", "30d",
            "--server", SERVER, "--token", "admin"]
    assert cli.main(argv, client_factory=api.connect) == 0
    captured = capsys.readouterr()
    assert captured.out == "rota_t1_secret\n"
    assert api.bodies[("POST", "/api/tokens")] == {"name": "ci", "scopes": ["worker", "read"],
                                                   "expires_in_secs": 30 * 86400}
    assert "t1" in captured.err and "worker,read" in captured.err and "2023-12-14T22:13Z" in captured.err
    assert "only once" in captured.err and "rota_t1_secret" not in captured.err


def test_token_create_without_expiry(no_token_env, capsys):
    api = Api()
    argv = ["token", "create", "--name", "ci", "--scope", "worker", "--server", SERVER]
    assert cli.main(argv, client_factory=api.connect) == 0
    assert api.bodies[("POST", "/api/tokens")]["expires_in_secs"] is None
    assert "never expires" in capsys.readouterr().err


@pytest.mark.parametrize("text,secs", [("30d", 2_592_000), ("12h", 43_200), ("90m", 5_400), ("3600s", 3_600),
                                       ("3600", 3_600), (" 2H ", 7_200)])
def test_durations(text, secs):
    assert parse_duration(text) == secs


@pytest.mark.parametrize("text", ["", "0", "0d", "-1h", "1.5h", "1y", "h", "10 d"])
def test_bad_durations_are_usage_errors(no_token_env, capsys, text):
    api = Api()
    with pytest.raises(SystemExit) as info:
        cli.main(["token", "create", "--name", "ci", "--scope", "worker", "--expires-in", text, "--server", SERVER],
                 client_factory=api.connect)
    assert info.value.code == 2 and "--expires-in" in capsys.readouterr().err
    assert api.seen == []


def test_token_create_needs_a_known_scope(no_token_env, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["token", "create", "--name", "ci", "--scope", "root", "--server", SERVER])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_token_list_table(no_token_env, capsys):
    used = dict(TOKEN, id="t2", name="deploy", scopes=["admin"], last_used_at_ms=1_700_003_600_000,
                expires_at_ms=1_700_000_060_000)
    api = Api({("GET", "/api/tokens"): httpx.Response(200, json=[TOKEN, used])})
    assert cli.main(["token", "list", "--server", SERVER], client_factory=api.connect) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ID  NAME    SCOPES       CREATED            LAST USED          EXPIRES",
        "t1  ci      worker,read  2023-11-14T22:13Z  never              never",
        "t2  deploy  admin        2023-11-14T22:13Z  2023-11-14T23:13Z  2023-11-14T22:14Z (expired)",
    ]


def test_token_revoke(no_token_env, capsys):
    api = Api()
    assert cli.main(["token", "revoke", "t1", "--server", SERVER], client_factory=api.connect) == 0
    assert capsys.readouterr().out == "revoked token t1 (ci)\n"
    assert [(m, p) for m, p, _ in api.seen] == [("DELETE", "/api/tokens/t1")]


def test_token_revoke_unknown_id(no_token_env, capsys):
    api = Api({("DELETE", "/api/tokens/nope"): error(404, "token_not_found", "no token 'nope'")})
    assert cli.main(["token", "revoke", "nope", "--server", SERVER], client_factory=api.connect) == 2
    assert capsys.readouterr().err == "rota: error token_not_found: no token 'nope'\n"


# ---- rota worker refused -----------------------------------------------------------------


@pytest.mark.parametrize(
    "route,answer,says",
    [
        ("/api/jobs/claim", error(401, "unauthenticated", "token revoked"),
         "error unauthenticated: token revoked (the token from --token)"),
        ("/api/workers/register", error(401, "unauthenticated", "unknown token"),
         "error unauthenticated: unknown token (the token from --token)"),
        ("/api/jobs/claim", error(403, "forbidden", "this call needs a token with the worker scope",
                                  {"required_scope": "worker"}),
         "(use a token with the worker scope)"),
        ("/api/workers/register", error(409, "worker_id_taken", "worker id 'box' belongs to another token",
                                        {"worker_id": "box"}),
         "worker id 'box' belongs to another token: pick another with --worker-id"),
    ],
)
@pytest.mark.timeout(15)  # a worker retrying a refusal never returns
def test_worker_stops_with_exit_2_when_refused(no_token_env, caplog, tmp_path, route, answer, says):
    api = Api({("POST", route): answer})
    argv = ["worker", "--server", SERVER, "--token", "t", "--worker-id", "box", "--workdir", str(tmp_path)]
    with caplog.at_level(logging.INFO, logger="rota.worker"):
        assert cli.main(argv, client_factory=api.connect) == 2
    assert api.auth() == {"Bearer t"}
    assert [(m, p) for m, p, _ in api.seen].count(("POST", route)) == 1  # not retried
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("worker stopped: ") and says in errors[0], errors


# ---- what the job sees -----------------------------------------------------------------


async def run_job(fake: FakeServer, lease_id: str, workdir) -> None:
    claim = fake.queue.get_nowait()
    config = WorkerConfig(server=SERVER, worker_id="w", workdir=str(workdir), cancel_grace=1.0)
    async with fake.client() as client:
        await JobRun(config, client, claim).execute()
    assert fake.leases[lease_id].results, "no result reported"


def read_env(path) -> dict[str, str]:
    return dict(item.split("=", 1) for item in path.read_text().split("\0") if item)


async def test_the_job_gets_its_run_token_and_none_of_the_workers_tokens(monkeypatch, tmp_path):
    for name in TOKEN_VARS:
        monkeypatch.setenv(name, f"worker-{name.lower()}")  # ROTA_RUN_TOKEN: as if the worker ran inside a job
    fake = FakeServer()
    lease = fake.enqueue(f"env -0 > {tmp_path}/env", lease_id="L-7", run_token="rotr_L-7_mac",
                         env={"ROTA_RUN_TOKEN": "from-the-workflow"})
    await run_job(fake, lease, tmp_path / "work")
    env = read_env(tmp_path / "env")
    assert env["ROTA_RUN_TOKEN"] == "rotr_L-7_mac"
    assert env["ROTA_LEASE_ID"] == "L-7"
    for name in ("ROTA_TOKEN", "ROTA_TOKEN_FILE", "ROTA_ADMIN_TOKEN", "ROTA_ADMIN_TOKEN_FILE"):
        assert name not in env
    assert not any(value.startswith("worker-") for value in env.values())


async def test_without_a_run_token_the_job_has_no_run_token(monkeypatch, tmp_path):
    monkeypatch.setenv("ROTA_RUN_TOKEN", "an-outer-jobs-token")
    fake = FakeServer()
    lease = fake.enqueue(f"env -0 > {tmp_path}/env", env={"ROTA_RUN_TOKEN": "from-the-workflow"})
    await run_job(fake, lease, tmp_path / "work")
    assert "ROTA_RUN_TOKEN" not in read_env(tmp_path / "env")


async def test_job_directory_is_private_and_not_named_after_the_lease(tmp_path):
    fake = FakeServer()
    lease = fake.enqueue(f'echo "$PWD" > {tmp_path}/cwd; stat -c %a .. > {tmp_path}/mode',
                         job_id="build", lease_id="secret-lease-id")
    workdir = tmp_path / "root" / "work"
    await run_job(fake, lease, workdir)
    cwd = (tmp_path / "cwd").read_text().strip()
    job_dir = os.path.dirname(cwd)
    assert os.path.dirname(job_dir) == str(workdir)
    assert os.path.basename(job_dir).startswith("wf.build.") and "secret-lease-id" not in cwd
    assert (tmp_path / "mode").read_text().strip() == "700"
    assert stat.S_IMODE(os.stat(workdir).st_mode) == 0o700
    assert not os.path.exists(job_dir)


async def test_lease_ids_are_logged_only_at_debug(tmp_path, caplog):
    fake = FakeServer()
    ok = fake.enqueue("echo out; echo err >&2", lease_id="lease-ok-1234")
    bad = fake.enqueue("exit 3", lease_id="lease-bad-5678")
    fake.flaky["complete"] = [503]  # a retried report logs a warning too
    with caplog.at_level(logging.DEBUG, logger="rota.worker"):
        await run_job(fake, ok, tmp_path / "work")
        await run_job(fake, bad, tmp_path / "work")
    leaky = [r for r in caplog.records if r.levelno > logging.DEBUG
             and ("lease-ok-1234" in r.getMessage() or "lease-bad-5678" in r.getMessage())]
    assert leaky == []
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("lease-ok-1234" in m for m in debug) and any("lease-bad-5678" in m for m in debug)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(m.startswith("claimed wf/job0 attempt 0") for m in infos), infos
