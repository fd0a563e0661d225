"""Shared fixtures. Every store/API test runs twice: on fakeredis (the
embedded store) and on a real redis-server started for the session, so the
same Lua scripts are proven on both."""

from __future__ import annotations

import dataclasses

import fakeredis
import httpx
import pytest
from redis.asyncio import Redis

from server.settings import Settings
from server.store import Store
from tests.redis_proc import redis_server


@pytest.fixture(scope="session")
def real_redis_url():
    with redis_server() as proc:
        yield proc.url


@pytest.fixture(params=["fakeredis", "redis"])
def backend(request) -> str:
    return request.param


@pytest.fixture
async def redis(backend, request):
    if backend == "fakeredis":
        client = fakeredis.FakeAsyncRedis(decode_responses=True)
    else:
        client = Redis.from_url(request.getfixturevalue("real_redis_url"), decode_responses=True)
        await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def store(redis) -> Store:
    return Store(redis)


@pytest.fixture
def settings(tmp_path) -> Settings:
    # No workflows directory and a fast reaper: tests drive time explicitly.
    return Settings(workflows_dir=str(tmp_path / "no-workflows"), reap_interval_secs=0.2,
                    keepalive_secs=1.0)


@pytest.fixture
async def app(redis, settings):
    from server.app import create_app

    app = create_app(settings, redis=redis)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(app):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


# The bootstrap admin token of the auth-on fixtures.
ADMIN_TOKEN = "test-admin-token-0123456789abcdef0123"


@pytest.fixture
def auth_settings(settings) -> Settings:
    return dataclasses.replace(settings, auth=True, admin_token=ADMIN_TOKEN)


@pytest.fixture
async def auth_app(redis, auth_settings):
    from server.app import create_app

    app = create_app(auth_settings, redis=redis)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def auth_api(auth_app):
    """A client of an auth-on server that sends no token unless told."""
    transport = httpx.ASGITransport(app=auth_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


# ---- shared by the CLI and end-to-end tests -----------------------------------------


@pytest.fixture
def rota(app, capsys):
    """`rota ARGV` on the in-process app, parsed as the command line parses
    it: (exit code, stdout, stderr)."""
    from worker.cli import main as cli
    from worker.cli.command import run_command
    from worker.client.api import Client

    async def run(*argv: str) -> tuple[int, str, str]:
        args = cli.parse(["--server", "http://localhost", *argv])
        async with Client(args.server, transport=httpx.ASGITransport(app=app)) as client:
            code = await run_command(client, args.handler.run, args)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="module")
def server():
    """A real server process (embedded store, reaper every 0.2 s), one per module."""
    from tests.server_proc import ServerProcess

    with ServerProcess() as proc:
        yield proc


@pytest.fixture
def label() -> str:
    """A label no other test's jobs or workers use."""
    import uuid

    return f"t-{uuid.uuid4().hex[:8]}"
