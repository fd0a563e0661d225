"""The worker's hot calls skip Starlette's layers (server/hotpath.py), and
answer exactly as the full path does: every guard, scope, content-type and
body check, on every hot route, compared answer for answer with the hot
path switched off; and they are taken by the hot path at all."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from server.app import create_app
from server.hotpath import HOT_LEASE_CALLS, HOT_PATHS
from tests.conftest import ADMIN_TOKEN
from tests.test_auth import bearer

ROUTES = list(HOT_PATHS) + [f"/api/jobs/some-lease/{suffix}" for suffix in HOT_LEASE_CALLS]


@pytest.fixture
async def guarded_app(redis, settings):
    limited = dataclasses.replace(settings, auth=True, admin_token=ADMIN_TOKEN, allowed_hosts=("localhost",),
                                  max_body_bytes=4096)
    app = create_app(limited, redis=redis)
    async with app.router.lifespan_context(app):
        yield app


def requests(read_token: str) -> list[tuple[str, dict, bytes]]:
    """(what, headers, body) of requests each hot route must answer as the full path does."""
    admin = {**bearer(ADMIN_TOKEN), "content-type": "application/json"}
    return [
        ("unknown host", {**admin, "host": "evil.example"}, b"{}"),
        ("too large", admin, b"{" + b" " * 5000 + b"}"),
        ("no token", {"content-type": "application/json"}, b"{}"),
        ("wrong scope", {**bearer(read_token), "content-type": "application/json"}, b"{}"),
        ("unknown token", {**bearer("rota_nope_nope"), "content-type": "application/json"}, b"{}"),
        ("bad run token", {**bearer("rotr_some-lease_" + "A" * 43), "content-type": "application/json"}, b"{}"),
        ("text/plain", {**bearer(ADMIN_TOKEN), "content-type": "text/plain"}, b"{}"),
        ("malformed", admin, b"{"),
        ("not an object", admin, b"[1]"),
        ("wrong field type", admin, b'{"worker_id": 5, "lease_ids": 5, "results": 5, "outputs": 5, "error": 5}'),
        ("empty", admin, b""),
        ("answered", admin, b'{"worker_id": "w", "lease_ids": ["nope"], "results": []}'),
    ]


async def test_every_hot_route_answers_as_the_full_path_does(guarded_app):
    transport = httpx.ASGITransport(app=guarded_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
        made = await api.post("/api/tokens", json={"name": "r", "scopes": ["read"]}, headers=bearer(ADMIN_TOKEN))
        hot = guarded_app.hot
        compared = 0
        for path in ROUTES:
            for what, headers, body in requests(made.json()["token"]):
                answers = []
                for use in (hot, None):
                    guarded_app.hot = use
                    resp = await api.post(path, content=body, headers=headers)
                    answers.append((resp.status_code, resp.content, sorted(resp.headers.items())))
                guarded_app.hot = hot
                assert answers[0] == answers[1], (path, what)
                compared += 1
        assert compared == len(ROUTES) * 12


async def test_the_hot_calls_take_the_hot_path_and_others_do_not(app):
    seen = []
    hot = app.hot
    serve = hot.serve

    async def spy(*args):
        served = await serve(*args)
        if served:
            seen.append(args[1]["path"])
        return served

    hot.serve = spy
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
        assert (await api.post("/api/jobs/claim", json={"worker_id": "w"})).status_code == 200
        assert (await api.post("/api/jobs/x/complete", json={})).status_code == 409
        assert (await api.get("/api/workflows")).status_code == 200
        assert (await api.post("/api/jobs/x/logs", json={"chunks": []})).status_code in (200, 409)
        # a browser's request (it carries an Origin) takes the full path, where CORS applies
        await api.post("/api/jobs/claim", json={"worker_id": "w"}, headers={"origin": "http://localhost"})
    assert seen == ["/api/jobs/claim", "/api/jobs/x/complete"]
