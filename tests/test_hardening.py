"""Browser-safe defaults and hostile input, over HTTP on both stores: each
bad request gets a clear 4xx (or 503 at a limit) and changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import httpx
import pytest

from server.app import create_app
from server.routes import workflows as workflow_routes
from tests.test_api import assert_error
from tests.test_auth import bearer, make_token

WORKFLOW = {"name": "ci", "jobs": [{"id": "a", "command": "true"}]}
JSON = {"content-type": "application/json"}


async def app_client(redis, settings, **changes):
    """An app with changed settings, and a client for it (close both with .aclose())."""
    app = create_app(dataclasses.replace(settings, **changes), redis=redis)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")
    close = client.aclose

    async def aclose():
        await close()
        await lifespan.__aexit__(None, None, None)

    client.aclose = aclose  # type: ignore[method-assign]
    return app, client


# ---- browser-safe by default -------------------------------------------------------


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None])
async def test_a_body_of_another_type_is_415_and_creates_nothing(api, ctype):
    body = b'{"name":"x","jobs":[{"id":"p","command":"id"}]}'
    headers = {"content-type": ctype} if ctype else {}
    err = assert_error(await api.post("/api/workflows?run=true", content=body, headers=headers),
                       415, "unsupported_media_type")
    assert "application/json" in err["details"]["accepted"] and "application/yaml" in err["details"]["accepted"]
    assert (await api.get("/api/workflows")).json() == []
    err = assert_error(await api.post("/api/jobs/claim", content=b'{"worker_id": "w"}', headers=headers),
                       415, "unsupported_media_type")
    assert err["details"]["accepted"] == ["application/json"]
    assert (await api.get("/api/workers")).json() == []


async def test_an_empty_body_needs_no_type(api):
    wf = (await api.post("/api/workflows?run=true", json=WORKFLOW)).json()
    lid = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]["lease_id"]
    # the seed worker heartbeats with an empty body; a run needs no body at all
    assert (await api.post(f"/api/jobs/{lid}/heartbeat", headers={"content-type": "text/plain"})).status_code == 200
    assert (await api.post(f"/api/jobs/{lid}/complete")).status_code == 200
    assert (await api.post(f"/api/workflows/{wf['id']}/run", headers={"content-type": "text/plain"})).status_code == 202


async def test_no_cors_headers_unless_configured(api, redis, settings):
    resp = await api.get("/api/workflows", headers={"Origin": "https://app.example"})
    assert resp.status_code == 200 and "access-control-allow-origin" not in resp.headers
    preflight = await api.options("/api/workflows", headers={"Origin": "https://app.example",
                                                            "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    _, client = await app_client(redis, settings, cors_origins=("https://app.example",))
    try:
        resp = await client.get("/api/workflows", headers={"Origin": "https://app.example"})
        assert resp.headers["access-control-allow-origin"] == "https://app.example"
        preflight = await client.options("/api/workflows", headers={"Origin": "https://app.example",
                                                                   "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "https://app.example"
        other = await client.get("/api/workflows", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        # a listed origin may write
        created = await client.post("/api/workflows", json=WORKFLOW, headers={"Origin": "https://app.example"})
        assert created.status_code == 201
    finally:
        await client.aclose()


async def test_cors_origins_star_with_auth_on_means_any_page_with_a_token(redis, auth_settings):
    """Settings refuse `*` with auth off; with auth on every call still needs a
    token, which a browser never attaches by itself."""
    from tests.conftest import ADMIN_TOKEN

    _, client = await app_client(redis, auth_settings, cors_origins=("*",))
    try:
        anyone = {"Origin": "https://dashboard.example"}
        resp = await client.get("/api/workflows", headers={**anyone, **bearer(ADMIN_TOKEN)})
        assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == "*"
        created = await client.post("/api/workflows", json=WORKFLOW, headers={**anyone, **bearer(ADMIN_TOKEN)})
        assert created.status_code == 201
        assert_error(await client.post("/api/workflows", json=WORKFLOW, headers=anyone), 401, "unauthenticated")
    finally:
        await client.aclose()


async def test_a_cross_origin_write_is_refused(api):
    for origin in ("https://evil.example", "null"):
        err = assert_error(await api.post("/api/workflows?run=true", json=WORKFLOW, headers={"Origin": origin}),
                           403, "cross_origin_refused")
        assert err["details"]["origin"] == origin
    assert (await api.get("/api/workflows")).json() == []
    # reading is not a write (and without CORS headers the page cannot read the answer)
    assert (await api.get("/api/workflows", headers={"Origin": "https://evil.example"})).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:3000", "127.0.0.2", "localhost.evil.example"])
async def test_a_foreign_host_is_400(api, host):
    err = assert_error(await api.get("/api/workflows", headers={"Host": host}), 400, "invalid_host")
    assert "localhost" in err["details"]["allowed_hosts"]
    assert_error(await api.post("/api/workflows", json=WORKFLOW, headers={"Host": host}), 400, "invalid_host")
    assert (await api.get("/api/workflows")).json() == []


@pytest.mark.parametrize("host", ["localhost", "localhost:3000", "127.0.0.1:8080", "[::1]:3000", "LOCALHOST"])
async def test_loopback_hosts_are_answered(api, host):
    assert (await api.get("/api/workflows", headers={"Host": host})).status_code == 200


async def test_allowed_hosts_may_use_wildcards(redis, settings):
    _, client = await app_client(redis, settings, allowed_hosts=("rota.example.com", "*.ci.example"))
    try:
        for host in ("rota.example.com", "rota.example.com:443", "a.ci.example"):
            assert (await client.get("/api/workflows", headers={"Host": host})).status_code == 200
        for host in ("localhost", "ci.example", "example.com"):
            assert_error(await client.get("/api/workflows", headers={"Host": host}), 400, "invalid_host")
    finally:
        await client.aclose()


# ---- hostile input -----------------------------------------------------------------


def _body_endpoints():
    return [e for e in create_app().state.endpoints if e.body is not None]


@pytest.mark.parametrize("endpoint", _body_endpoints(), ids=lambda e: f"{e.method} {e.path}")
async def test_deep_json_is_400_on_every_route(api, endpoint):
    deep = b'{"worker_id": "w", "name": "x", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path = re.sub(r"{\w+}", "x0", endpoint.path.replace("{lease_id}", "nolease"))
    err = assert_error(await api.request(endpoint.method, path, content=deep, headers=JSON), 400)
    assert err["code"] == "malformed_json" and err["details"]["limit"] == 64
    assert (await api.get("/api/workflows")).json() == [] and (await api.get("/api/workers")).json() == []


async def test_the_yaml_alias_bomb_is_422_and_the_server_stays_healthy(api):
    # 1 MiB under an anchor, referenced by 3,000 env values: 3 GB expanded
    text = "x" * (1024 * 1024)
    env = "\n".join(f"      V{i}: *r" for i in range(3000))
    doc = f"name: &r {text}\njobs:\n  a:\n    run: 'true'\n    env:\n{env}\n".encode()
    err = assert_error(await api.post("/api/workflows", content=doc, headers={"content-type": "application/yaml"}),
                       422, "invalid_workflow")
    assert any(ch.isdigit() for ch in err["message"])  # it names the limit
    assert (await api.get("/healthz")).status_code == 200
    assert (await api.get("/api/workflows")).json() == []
    assert (await api.post("/api/workflows", json=WORKFLOW)).status_code == 201


async def test_a_timestamp_above_2_pow_53_is_422(api):
    wf = (await api.post("/api/workflows?run=true", json=WORKFLOW)).json()
    lid = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]["lease_id"]
    for ts in (2**53 + 1, int("9" * 4000)):
        chunk = {"workflow_id": wf["id"], "job_id": "a", "sequence": 0, "data": "x", "timestamp_ms": ts}
        resp = await api.post(f"/api/jobs/{lid}/logs", json={"chunks": [chunk]})
        assert resp.status_code in (400, 422) and "timestamp_ms" in resp.text or resp.status_code == 400
    assert (await api.get(f"/api/workflows/{wf['id']}/jobs/a/logs")).json() == []


async def test_405_names_the_allowed_methods(api):
    resp = await api.patch("/api/workflows")
    err = assert_error(resp, 405, "method_not_allowed")
    assert err and resp.headers["allow"] == "GET, HEAD, POST"
    assert (await api.delete("/api/jobs/claim")).headers["allow"] == "POST"


async def test_an_idempotency_key_reused_with_another_body_is_422(api):
    key = {"Idempotency-Key": "deploy-42"}
    first = await api.post("/api/workflows", json=WORKFLOW, headers=key)
    again = await api.post("/api/workflows", json=WORKFLOW, headers=key)
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    other = {**WORKFLOW, "jobs": [{"id": "b", "command": "false"}]}
    err = assert_error(await api.post("/api/workflows", json=other, headers=key), 422, "idempotency_key_reused")
    assert err["details"]["field"] == "Idempotency-Key"
    # started or not is part of the request
    assert_error(await api.post("/api/workflows?run=true", json=WORKFLOW, headers=key), 422, "idempotency_key_reused")
    assert len((await api.get("/api/workflows")).json()) == 1


async def test_idempotency_keys_are_per_token(auth_api):
    a = bearer((await make_token(auth_api, "submit"))["token"])
    b = bearer((await make_token(auth_api, "submit"))["token"])
    key = {"Idempotency-Key": "nightly"}
    first = (await auth_api.post("/api/workflows", json=WORKFLOW, headers={**a, **key})).json()
    second = (await auth_api.post("/api/workflows", json=WORKFLOW, headers={**b, **key})).json()
    assert first["id"] != second["id"]
    assert (await auth_api.post("/api/workflows", json=WORKFLOW, headers={**a, **key})).json()["id"] == first["id"]


async def test_workers_are_paged(api):
    for i in range(5):
        await api.post("/api/workers/register", json={"worker_id": f"w{i}"})
    page = (await api.get("/api/workers?limit=2&offset=1")).json()
    assert [w["worker_id"] for w in page] == ["w3", "w2"]
    assert_error(await api.get("/api/workers?limit=0"), 422, "invalid_query")


async def test_a_workflow_page_stops_before_too_many_jobs(api, monkeypatch):
    monkeypatch.setattr(workflow_routes, "MAX_PAGE_JOBS", 5)
    doc = {"name": "x", "jobs": [{"id": f"j{i}", "command": "true"} for i in range(2)]}
    for _ in range(4):
        await api.post("/api/workflows", json=doc)
    resp = await api.get("/api/workflows")
    assert len(resp.json()) == 2 and resp.headers["x-next-offset"] == "2"
    nxt = await api.get("/api/workflows?offset=2")
    assert len(nxt.json()) == 2 and nxt.headers["x-next-offset"] == "4"


async def test_a_late_body_is_408(redis, settings):
    app, _client = await app_client(redis, settings, body_timeout_secs=0.2)
    await _client.aclose()
    sent: list[dict] = []
    first = True

    async def receive():
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'{"worker_id"', "more_body": True}
        await asyncio.sleep(3600)  # the rest never comes

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/jobs/claim", "raw_path": b"/api/jobs/claim",
             "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
             "server": ("127.0.0.1", 3000), "client": ("127.0.0.1", 5000), "app": app,
             "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"),
                         (b"content-length", b"100")]}
    lifespan = app.router.lifespan_context(app)
    async with lifespan:
        await asyncio.wait_for(app(scope, receive, send), 10)
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert b"request_timeout" in sent[1]["body"]


async def test_waiting_claims_are_capped(redis, settings):
    _, client = await app_client(redis, settings, max_waiting_claims=1)
    try:
        parked = asyncio.create_task(client.post("/api/jobs/claim", json={"worker_id": "a", "wait_secs": 30}))
        app = client._transport.app  # type: ignore[attr-defined]
        while app.state.notifier.waiting_claims < 1:
            await asyncio.sleep(0.01)
        resp = await client.post("/api/jobs/claim", json={"worker_id": "b", "wait_secs": 30})
        assert_error(resp, 503, "overloaded")
        assert resp.headers["retry-after"] == "1"
        # a claim that does not wait is not parked, so it is not capped
        assert (await client.post("/api/jobs/claim", json={"worker_id": "c"})).status_code == 200
        await client.post("/api/workflows?run=true", json=WORKFLOW)
        assert (await parked).json()["job"]["job_id"] == "a"
    finally:
        await client.aclose()


async def test_log_streams_are_capped(redis, settings):
    app, client = await app_client(redis, settings, max_streams=1)
    try:
        wf = (await client.post("/api/workflows?run=true", json=WORKFLOW)).json()["id"]
        # httpx's ASGI transport waits for a whole answer, so the open tail
        # is held here directly, as the stream route holds it
        async with app.state.notifier.watch(app.state.store.job_channel(wf, "a")):
            assert_error(await client.get(f"/api/workflows/{wf}/jobs/a/logs/stream"), 503, "overloaded")
    finally:
        await client.aclose()


# ---- from the security review ----------------------------------------------------


@pytest.mark.parametrize("path,body", [
    ("/api/workers/register", b'{"worker_id": "\xff"}'),
    ("/api/jobs/claim", b'{"worker_id": "\xff"}'),
    ("/api/jobs/x/complete", b'{"outputs": {"k": "\xff"}}'),
    ("/api/jobs/x/fail", b'{"error": "\xff"}'),
    ("/api/jobs/x/logs", b'{"chunks": [{"workflow_id": "w", "job_id": "j", "sequence": 0, "data": "\xff",'
                         b' "timestamp_ms": 1}]}'),
    ("/api/workflows", b'{"name": "\xff", "jobs": [{"id": "a", "command": "true"}]}'),
])
async def test_a_body_that_is_not_utf8_is_400(api, path, body):
    err = assert_error(await api.post(path, content=body, headers=JSON), 400 if path != "/api/workflows" else 422)
    assert "UTF-8" in err["message"]


async def test_a_worker_offers_at_most_32_labels(api):
    labels = [f"l{i}" for i in range(33)]
    for path in ("/api/jobs/claim", "/api/workers/register"):
        err = assert_error(await api.post(path, json={"worker_id": "w", "labels": labels}), 422, "invalid_body")
        assert err["details"]["field"] == "$.labels"


@pytest.mark.parametrize("host", ["[::1]evil.example", "[::1].evil.example", "[::1]:80x"])
async def test_a_malformed_bracketed_host_is_400(api, host):
    assert_error(await api.get("/api/workflows", headers={"Host": host}), 400, "invalid_host")


async def test_two_host_headers_are_400(app):
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/api/workflows", "raw_path": b"/api/workflows",
             "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
             "server": ("127.0.0.1", 3000), "client": ("127.0.0.1", 5000), "app": app,
             "headers": [(b"host", b"evil.example"), (b"host", b"localhost")]}
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
