"""Authentication and authorisation over HTTP, on both stores: every route's
scope, API tokens and their revocation, workers bound to their token, and
per-lease run tokens."""

from __future__ import annotations

import dataclasses

import fakeredis
import httpx
import pytest

from server import auth as auth_module
from server.app import create_app
from tests.conftest import ADMIN_TOKEN
from tests.test_api import assert_error

WORKFLOW = {"name": "ci", "jobs": [{"id": "a", "command": "true"}, {"id": "b", "command": "true"}]}

# Every route and the scope it needs. A route added without a decision here
# fails test_every_route_has_its_scope.
EXPECTED_SCOPES = {
    ("POST", "/api/workflows"): "submit",
    ("GET", "/api/workflows"): "read",
    ("GET", "/api/workflows/{wf}"): "read",
    ("GET", "/api/workflows/{wf}/status"): "read",
    ("POST", "/api/workflows/{wf}/run"): "submit",
    ("POST", "/api/workflows/{wf}/cancel"): "submit",
    ("GET", "/api/workflows/{wf}/events"): "read",
    ("POST", "/api/workers/register"): "worker",
    ("GET", "/api/workers"): "read",
    ("DELETE", "/api/workers/{worker_id}"): "worker",
    ("DELETE", "/api/workers"): "admin",
    ("POST", "/api/jobs/claim"): "worker",
    ("POST", "/api/jobs/claims"): "worker",
    ("POST", "/api/jobs/results"): "worker",
    ("POST", "/api/jobs/heartbeats"): "worker",
    ("POST", "/api/jobs/{lease_id}/heartbeat"): "lease",
    ("POST", "/api/jobs/{lease_id}/complete"): "lease",
    ("POST", "/api/jobs/{lease_id}/fail"): "lease",
    ("POST", "/api/jobs/{lease_id}/release"): "worker",
    ("POST", "/api/jobs/{lease_id}/logs"): "lease",
    ("GET", "/api/jobs/{wf}/{job}/cancelled"): "read|worker",
    ("GET", "/api/workflows/{wf}/jobs/{job}/logs"): "read",
    ("GET", "/api/workflows/{wf}/jobs/{job}/logs/stream"): "read",
    ("POST", "/api/tokens"): "admin",
    ("GET", "/api/tokens"): "admin",
    ("DELETE", "/api/tokens/{token_id}"): "admin",
    ("PUT", "/api/workflows/{wf}"): "submit",
    ("DELETE", "/api/workflows/{wf}"): "admin",
    ("GET", "/api/workflows/{wf}/definition"): "read",
    ("POST", "/api/workflows/{wf}/runs"): "submit",
    ("GET", "/api/workflows/{wf}/runs"): "read",
    ("GET", "/api/runs"): "read",
    ("GET", "/api/runs/{run_id}"): "read",
    ("GET", "/api/runs/{run_id}/jobs/{job}"): "read",
    ("POST", "/api/runs/{run_id}/cancel"): "submit",
    ("POST", "/api/runs/{run_id}/jobs/{job}/cancel"): "submit",
    ("POST", "/api/runs/{run_id}/retry"): "submit",
    ("POST", "/api/runs/{run_id}/restart"): "submit",
    ("POST", "/api/runs/{run_id}/reschedule"): "submit",
    ("GET", "/api/schedules"): "read",
    ("GET", "/api/schedules/{sid}"): "read",
    ("POST", "/api/schedules/{sid}/pause"): "submit",
    ("POST", "/api/schedules/{sid}/resume"): "submit",
    ("POST", "/api/runs/{run_id}/jobs/{job}/retry"): "submit",
    ("GET", "/api/runs/{run_id}/events"): "read",
    ("GET", "/api/runs/{run_id}/events/stream"): "read",
    ("POST", "/api/runs/cancel"): "submit",
    ("POST", "/api/runs/retry"): "submit",
    ("POST", "/api/runs/{run_id}/pause"): "submit",
    ("POST", "/api/runs/{run_id}/resume"): "submit",
    ("POST", "/api/workflows/{wf}/pause"): "submit",
    ("POST", "/api/workflows/{wf}/resume"): "submit",
    ("POST", "/api/labels/{label}/pause"): "admin",
    ("POST", "/api/labels/{label}/resume"): "admin",
    ("GET", "/api/paused"): "read",
    ("GET", "/api/paused/events"): "read",
    ("GET", "/api/concurrency-groups"): "read",
    ("GET", "/api/runs/{run_id}/jobs/{job}/logs"): "read",
    ("GET", "/api/runs/{run_id}/jobs/{job}/logs/stream"): "read",
    ("GET", "/api/resolve/{ref}"): "read",
    ("GET", "/api/dead-letters"): "read",
    ("POST", "/api/dead-letters/replay"): "submit",
    ("DELETE", "/api/dead-letters/{run_id}/{job}"): "admin",
    ("POST", "/api/jobs/{lease_id}/progress"): "lease",
    ("POST", "/api/jobs/{lease_id}/log"): "lease",
    ("POST", "/api/jobs/{lease_id}/steps/{step}/running"): "lease",
    ("POST", "/api/jobs/{lease_id}/steps/{step}/completed"): "lease",
    ("POST", "/api/jobs/{lease_id}/steps/{step}/failed"): "lease",
    ("POST", "/api/jobs/{lease_id}/steps/{step}/progress"): "lease",
    ("POST", "/api/jobs/{lease_id}/steps/{step}/skipped"): "lease",
    ("POST", "/api/jobs/{lease_id}/checkpoint"): "lease",
    ("GET", "/api/jobs/{lease_id}/state"): "lease",
    ("POST", "/api/jobs/{lease_id}/state"): "lease",
    ("GET", "/api/jobs/{lease_id}/state/{key}"): "lease",
    ("PUT", "/api/jobs/{lease_id}/state/{key}"): "lease",
    ("DELETE", "/api/jobs/{lease_id}/state/{key}"): "lease",
    ("POST", "/api/jobs/{lease_id}/annotate"): "lease",
    ("POST", "/api/jobs/{lease_id}/output"): "lease",
    ("POST", "/api/jobs/{lease_id}/spawn"): "lease",
    ("POST", "/api/jobs/{lease_id}/wait-for-event"): "lease",
    ("POST", "/api/jobs/{lease_id}/resources"): "lease",
    ("GET", "/api/jobs/{lease_id}/payload"): "lease",
    ("POST", "/api/jobs/{lease_id}/usage"): "lease",
    ("POST", "/api/jobs/{lease_id}/tool-call"): "lease",
    ("POST", "/api/jobs/{lease_id}/stream"): "lease",
    ("POST", "/api/jobs/{lease_id}/cancel"): "lease",
    ("POST", "/api/events/{event_key}"): "submit",
    ("POST", "/api/runs/{run_id}/jobs/{job}/approve"): "submit",
    ("GET", "/api/runs/{run_id}/state"): "read",
    ("GET", "/api/runs/{run_id}/jobs/{job}/checkpoints"): "read",
    ("GET", "/api/runs/{run_id}/children"): "read",
    ("POST", "/api/executions/{lease_id}/heartbeat"): "lease",
    ("POST", "/api/executions/{lease_id}/progress"): "lease",
    ("POST", "/api/executions/{lease_id}/log"): "lease",
    ("POST", "/api/executions/{lease_id}/complete"): "lease",
    ("POST", "/api/executions/{lease_id}/fail"): "lease",
    ("POST", "/api/executions/{lease_id}/cancel"): "lease",
    ("POST", "/api/executions/{lease_id}/steps/{step}/running"): "lease",
    ("POST", "/api/executions/{lease_id}/steps/{step}/completed"): "lease",
    ("POST", "/api/executions/{lease_id}/steps/{step}/failed"): "lease",
    ("POST", "/api/executions/{lease_id}/steps/{step}/progress"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/heartbeat"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/progress"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/log"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/annotate"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/checkpoint"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/output"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/complete"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/fail"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/spawn"): "lease",
    ("GET", "/sdk/v1/runs/{lease_id}/state"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/state"): "lease",
    ("GET", "/sdk/v1/runs/{lease_id}/state/{key}"): "lease",
    ("DELETE", "/sdk/v1/runs/{lease_id}/state/{key}"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/wait-for-event"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/resources"): "lease",
    ("GET", "/sdk/v1/runs/{lease_id}/payload"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/usage"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/tool-call"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/stream"): "lease",
    ("GET", "/api/runs/{run_id}/notes"): "read",
    ("GET", "/api/queues"): "read",
    ("GET", "/api/whoami"): "read",
    ("POST", "/api/stream-tickets"): "read",
    ("PUT", "/api/runs/{run_id}/debug"): "submit",
    ("DELETE", "/api/runs/{run_id}/idempotency-key"): "submit",
    ("GET", "/api/runs/{run_id}/lineage"): "read",
    ("GET", "/api/runs/{run_id}/checkpoints"): "read",
    ("GET", "/api/runs/{run_id}/outputs"): "read",
    ("POST", "/api/jobs/{lease_id}/continue"): "lease",
    ("POST", "/sdk/v1/runs/{lease_id}/continue"): "lease",
    ("POST", "/api/jobs/{job_id}/trigger"): "submit",
    # Strait's run management (seed 003): reads read, changes submit, and
    # cancelling every run a filter matches admin
    ("GET", "/v1/runs"): "read",
    ("GET", "/v1/runs/dlq"): "read",
    ("POST", "/v1/runs/bulk-cancel"): "submit",
    ("POST", "/v1/runs/bulk-cancel-all"): "admin",
    ("POST", "/v1/runs/bulk-replay"): "submit",
    ("POST", "/v1/runs/bulk-dlq-replay"): "submit",
    ("GET", "/v1/runs/{run_id}"): "read",
    ("DELETE", "/v1/runs/{run_id}"): "submit",
    ("POST", "/v1/runs/{run_id}/replay"): "submit",
    ("POST", "/v1/runs/{run_id}/dlq-replay"): "submit",
    ("GET", "/v1/runs/{run_id}/stream"): "read",
    ("GET", "/v1/runs/{run_id}/stream/chunks"): "read",
    ("GET", "/v1/runs/{run_id}/children"): "read",
    ("GET", "/v1/runs/{run_id}/events"): "read",
    ("GET", "/v1/runs/{run_id}/checkpoints"): "read",
    ("GET", "/v1/runs/{run_id}/usage"): "read",
    ("GET", "/v1/runs/{run_id}/tool-calls"): "read",
    ("GET", "/v1/runs/{run_id}/outputs"): "read",
    ("GET", "/v1/runs/{run_id}/debug-bundle"): "read",
    ("POST", "/v1/runs/{run_id}/debug"): "submit",
    ("GET", "/v1/runs/{run_id}/lineage"): "read",
    ("GET", "/v1/runs/{run_id}/dependency-status"): "read",
    ("DELETE", "/v1/runs/{run_id}/idempotency-key"): "submit",
    ("POST", "/v1/runs/{run_id}/reschedule"): "submit",
    ("POST", "/v1/runs/{run_id}/restart"): "submit",
    ("GET", "/v1/runs/{run_id}/state"): "read",
    ("POST", "/v1/runs/{run_id}/pause"): "submit",
    ("POST", "/v1/runs/{run_id}/resume"): "submit",
    ("GET", "/healthz"): "public",
    ("GET", "/openapi.json"): "public",
    ("GET", "/metrics"): "read|metrics",
    # the dashboard's shells and files: no data in them (it comes from the API)
    ("GET", "/"): "public",
    ("GET", "/ui"): "public",
    ("GET", "/ui/runs/{run_id}"): "public",
    ("GET", "/ui/workflows"): "public",
    ("GET", "/ui/schedules"): "public",
    ("GET", "/ui/workflows/{wf}"): "public",
    ("GET", "/ui/workers"): "public",
    ("GET", "/ui/queues"): "public",
    ("GET", "/ui/groups"): "public",
    ("GET", "/ui/dead-letters"): "public",
    ("GET", "/ui/static/{file}"): "public",
}
# For each scope, a token scope that lacks it (None: every scope has it or none can be denied).
LACKING = {"read": "worker", "submit": "read", "worker": "read", "admin": "submit", "lease": "read",
           "read|worker": None, "read|metrics": None, "public": None}
# For each scope, a token scope that has it.
HAVING = {"read": "read", "submit": "submit", "worker": "worker", "admin": "admin", "lease": "worker",
          "read|worker": "worker", "read|metrics": "read", "public": None}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer(ADMIN_TOKEN)


async def make_token(api: httpx.AsyncClient, *scopes: str, name: str = "t", **extra) -> dict:
    resp = await api.post("/api/tokens", json={"name": name, "scopes": list(scopes), **extra}, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    return resp.json()


def concrete(path: str) -> str:
    return (path.replace("{wf}", "nowf").replace("{job}", "nojob").replace("{lease_id}", "nolease")
            .replace("{token_id}", "0000000000000000").replace("{worker_id}", "noworker")
            .replace("{run_id}", "norun").replace("{key}", "nokey").replace("{step}", "0")
            .replace("{event_key}", "noevent").replace("{file}", "app.js").replace("{sid}", "nowf:0")
            .replace("{job_id}", "nojob"))


async def call(api, method: str, path: str, headers: dict) -> httpx.Response:
    if method == "GET" and path.endswith("/stream"):
        # a stream for a job that does not exist answers at once (404)
        return await api.get(path, headers=headers)
    body = {} if method == "POST" else None
    return await api.request(method, path, json=body, headers=headers)


def test_every_route_has_its_scope():
    app = create_app()
    declared = {(e.method, e.path): e.scope for e in app.state.endpoints}
    assert declared == EXPECTED_SCOPES
    # and nothing is routed around the table
    assert {route.path for route in app.routes} == {path for _, path in EXPECTED_SCOPES}


async def test_each_route_asks_for_its_scope(auth_api):
    tokens = {scope: (await make_token(auth_api, scope))["token"] for scope in ("read", "submit", "worker", "admin")}
    for (method, path), scope in EXPECTED_SCOPES.items():
        url = concrete(path)
        anonymous = await call(auth_api, method, url, {})
        if scope == "public":
            assert anonymous.status_code not in (401, 403), (method, path)
            continue
        assert_error(anonymous, 401, "unauthenticated")
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        if LACKING[scope]:
            denied = assert_error(await call(auth_api, method, url, bearer(tokens[LACKING[scope]])), 403, "forbidden")
            assert denied["details"]["required_scope"] == ("worker" if scope == "lease" else scope), (method, path)
        allowed = await call(auth_api, method, url, bearer(tokens[HAVING[scope]]))
        assert allowed.status_code not in (401, 403), (method, path, allowed.text)
        # admin may call everything (its lease calls are checked on the lease itself)
        assert (await call(auth_api, method, url, ADMIN)).status_code not in (401, 403), (method, path)


@pytest.mark.parametrize("header", ["", "Basic abc", "Bearer ", "Bearer rota_0123456789abcdef_nope",
                                    "Bearer rota_short_x", "Bearer rotr_lease_forged", "Bearer " + "x" * 40])
async def test_bad_credentials_are_401(auth_api, header):
    headers = {"Authorization": header} if header else {}
    err = assert_error(await auth_api.get("/api/workflows", headers=headers), 401, "unauthenticated")
    assert "token" in err["message"]


async def test_healthz_and_openapi_need_no_token(auth_api):
    assert (await auth_api.get("/healthz")).json() == {"ok": True}
    assert (await auth_api.get("/openapi.json")).status_code == 200


async def test_healthz_tells_only_a_read_token_more_than_ok(auth_api):
    """Anonymous callers (probes, anyone who can reach the port) learn only
    ok or not ok: not the store's address, the version or the load."""
    reader = await make_token(auth_api, "read")
    detail = (await auth_api.get("/healthz", headers=bearer(reader["token"]))).json()
    assert detail["ok"] is True and detail["auth"] is True and detail["store"] == "embedded"
    assert {"redis", "version", "reaper", "pubsub", "waiting_claims", "open_streams"} <= set(detail)
    assert (await auth_api.get("/healthz", headers=ADMIN)).json()["version"] == detail["version"]
    # a token sent is checked like anywhere else
    assert_error(await auth_api.get("/healthz", headers=bearer("rota_0123456789abcdef_nope")), 401, "unauthenticated")
    worker = await make_token(auth_api, "worker")
    assert_error(await auth_api.get("/healthz", headers=bearer(worker["token"])), 403, "forbidden")


async def test_an_anonymous_healthz_says_not_ok_and_no_more(auth_app, auth_api):
    auth_app.state.ready.clear()  # as while the server waits for Redis
    anonymous = await auth_api.get("/healthz")
    assert anonymous.status_code == 503
    assert anonymous.json() == {"error": {"code": "store_unavailable", "message": "the store is not answering", "details": None}}
    auth_app.state.ready.set()


async def test_auth_off_needs_no_token(api):
    assert (await api.post("/api/workflows", json=WORKFLOW)).status_code == 201
    assert (await api.get("/api/workflows")).status_code == 200


# ---- tokens ----------------------------------------------------------------------


async def test_token_is_shown_once_and_stored_only_as_a_hash(auth_api, redis):
    created = await make_token(auth_api, "read", "submit", name="ci")
    token = created["token"]
    prefix, token_id, secret = token.split("_", 2)
    assert (prefix, token_id) == ("rota", created["id"]) and len(secret) >= 43  # 256 bits, base64url
    assert created["scopes"] == ["read", "submit"] and created["expires_at_ms"] is None
    listed = (await auth_api.get("/api/tokens", headers=ADMIN)).json()
    assert [t["id"] for t in listed] == [token_id] and "token" not in listed[0]
    stored = await redis.hgetall(f"{{rota}}:token:{token_id}")
    assert secret not in str(stored) and token not in str(stored)
    assert (await auth_api.get("/api/workflows", headers=bearer(token))).status_code == 200


async def test_token_scopes_are_validated(auth_api):
    for body in ({"name": "x", "scopes": ["root"]}, {"name": "x", "scopes": []}, {"name": "", "scopes": ["read"]},
                 {"name": "x", "scopes": ["read"], "expires_in_secs": 0}):
        err = assert_error(await auth_api.post("/api/tokens", json=body, headers=ADMIN), 422, "invalid_body")
        assert err["details"]["field"].startswith("$.")
    assert (await auth_api.get("/api/tokens", headers=ADMIN)).json() == []


async def test_revocation_is_effective_at_once(auth_api):
    created = await make_token(auth_api, "read")
    headers = bearer(created["token"])
    assert (await auth_api.get("/api/workflows", headers=headers)).status_code == 200
    revoked = await auth_api.delete(f"/api/tokens/{created['id']}", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.json()["id"] == created["id"]
    assert_error(await auth_api.get("/api/workflows", headers=headers), 401, "unauthenticated")
    assert_error(await auth_api.delete(f"/api/tokens/{created['id']}", headers=ADMIN), 404, "token_not_found")


async def test_an_expired_token_is_refused(auth_api, monkeypatch):
    created = await make_token(auth_api, "read", expires_in_secs=60)
    headers = bearer(created["token"])
    assert (await auth_api.get("/api/workflows", headers=headers)).status_code == 200
    monkeypatch.setattr(auth_module, "_now_ms", lambda: created["expires_at_ms"])
    err = assert_error(await auth_api.get("/api/workflows", headers=headers), 401, "unauthenticated")
    assert "expired" in err["message"]


async def test_last_use_is_recorded(auth_api, auth_app):
    created = await make_token(auth_api, "read")
    await auth_api.get("/api/workflows", headers=bearer(created["token"]))
    await auth_app.state.auth.flush()
    listed = (await auth_api.get("/api/tokens", headers=ADMIN)).json()
    assert listed[0]["last_used_at_ms"] >= created["created_at_ms"]


async def _two_replicas(backend, request):
    """Two apps (server replicas) on one store, each with its own client and notifier."""
    if backend == "fakeredis":
        server = fakeredis.FakeServer()
        clients = [fakeredis.FakeAsyncRedis(server=server, decode_responses=True) for _ in range(2)]
    else:
        from redis.asyncio import Redis

        url = request.getfixturevalue("real_redis_url")
        clients = [Redis.from_url(url, decode_responses=True) for _ in range(2)]
    return clients


async def test_revocation_reaches_every_replica(backend, request, auth_settings):
    import asyncio
    import contextlib

    clients = await _two_replicas(backend, request)
    await clients[0].flushdb()
    apps = [create_app(auth_settings, redis=c) for c in clients]
    async with contextlib.AsyncExitStack() as stack:
        apis = []
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
            apis.append(await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")))
        created = await make_token(apis[0], "read")
        headers = bearer(created["token"])
        assert (await apis[1].get("/api/workflows", headers=headers)).status_code == 200  # now cached there
        assert (await apis[0].delete(f"/api/tokens/{created['id']}", headers=ADMIN)).status_code == 200
        for _ in range(200):  # the revocation travels over pub/sub: wait for the event, not a time
            if (await apis[1].get("/api/workflows", headers=headers)).status_code == 401:
                break
            await asyncio.sleep(0.01)
        assert_error(await apis[1].get("/api/workflows", headers=headers), 401, "unauthenticated")
    for c in clients:
        await c.aclose()


# ---- workers bound to their token ---------------------------------------------------


async def _claim(api, token: str, worker: str = "w1") -> httpx.Response:
    return await api.post("/api/jobs/claim", json={"worker_id": worker}, headers=bearer(token))


async def test_a_worker_id_belongs_to_its_first_token(auth_api):
    fleet_a = (await make_token(auth_api, "worker", name="fleet-a"))
    fleet_b = (await make_token(auth_api, "worker", name="fleet-b"))
    body = {"worker_id": "box-1", "labels": ["linux"]}
    assert (await auth_api.post("/api/workers/register", json=body, headers=bearer(fleet_a["token"]))).status_code == 200
    taken = assert_error(await auth_api.post("/api/workers/register", json={**body, "labels": ["gpu"]},
                                             headers=bearer(fleet_b["token"])), 409, "worker_id_taken")
    assert taken["details"]["worker_id"] == "box-1"
    assert_error(await _claim(auth_api, fleet_b["token"], "box-1"), 409, "worker_id_taken")
    workers = (await auth_api.get("/api/workers", headers=ADMIN)).json()
    assert [w["labels"] for w in workers] == [["linux"]]  # B changed nothing
    # once A's token is revoked, the id is free again
    await auth_api.delete(f"/api/tokens/{fleet_a['id']}", headers=ADMIN)
    assert (await auth_api.post("/api/workers/register", json=body, headers=bearer(fleet_b["token"]))).status_code == 200


async def test_another_workers_token_cannot_touch_a_lease(auth_api):
    a = (await make_token(auth_api, "worker"))["token"]
    b = (await make_token(auth_api, "worker"))["token"]
    await auth_api.post("/api/workflows?run=true", json=WORKFLOW, headers=ADMIN)
    lease = (await _claim(auth_api, a, "wa")).json()["lease"]
    lid = lease["lease_id"]
    chunk = {"workflow_id": lease["workflow_id"], "job_id": lease["job_id"], "sequence": 0, "data": "x",
             "timestamp_ms": 1}
    for path, body in (("heartbeat", None), ("complete", {"outputs": {"k": "v"}}),
                       ("fail", {"error": "x", "retryable": False}), ("logs", {"chunks": [chunk]})):
        err = assert_error(await auth_api.post(f"/api/jobs/{lid}/{path}", json=body, headers=bearer(b)),
                           403, "forbidden")
        assert err["details"]["lease_id"] == lid
        # nor may the admin token, which did not claim it
        assert_error(await auth_api.post(f"/api/jobs/{lid}/{path}", json=body, headers=ADMIN), 403, "forbidden")
    status = (await auth_api.get(f"/api/workflows/{lease['workflow_id']}", headers=ADMIN)).json()
    job = next(j for j in status["jobs"] if j["id"] == lease["job_id"])
    assert job["status"] == "running" and job["outputs"] == {}
    logs = await auth_api.get(f"/api/workflows/{lease['workflow_id']}/jobs/{lease['job_id']}/logs", headers=ADMIN)
    assert logs.json() == []
    # its own token may
    assert (await auth_api.post(f"/api/jobs/{lid}/complete", json={}, headers=bearer(a))).status_code == 200


# ---- run tokens ------------------------------------------------------------------


async def test_a_run_token_works_for_its_own_lease_only(auth_api):
    worker = (await make_token(auth_api, "worker"))["token"]
    await auth_api.post("/api/workflows?run=true", json=WORKFLOW, headers=ADMIN)
    first = (await _claim(auth_api, worker)).json()["lease"]
    second = (await _claim(auth_api, worker)).json()["lease"]
    run = bearer(first["run_token"])
    assert first["run_token"] != second["run_token"]
    assert (await auth_api.post(f"/api/jobs/{first['lease_id']}/heartbeat", headers=run)).status_code == 200
    chunk = {"workflow_id": first["workflow_id"], "job_id": first["job_id"], "sequence": 0, "data": "hi\n",
             "timestamp_ms": 1}
    assert (await auth_api.post(f"/api/jobs/{first['lease_id']}/logs", json={"chunks": [chunk]},
                                headers=run)).status_code == 200
    # another lease's calls, and any other route
    assert_error(await auth_api.post(f"/api/jobs/{second['lease_id']}/heartbeat", headers=run), 403, "forbidden")
    assert_error(await auth_api.get("/api/workflows", headers=run), 403, "forbidden")
    assert_error(await auth_api.post("/api/jobs/claim", json={"worker_id": "x"}, headers=run), 403, "forbidden")
    # a forged one (the MAC of another lease id)
    forged = first["run_token"].replace(first["lease_id"], second["lease_id"])
    assert_error(await auth_api.post(f"/api/jobs/{second['lease_id']}/heartbeat", headers=bearer(forged)),
                 401, "unauthenticated")
    # dead the moment its lease completes
    assert (await auth_api.post(f"/api/jobs/{first['lease_id']}/complete", json={}, headers=run)).status_code == 200
    assert_error(await auth_api.post(f"/api/jobs/{first['lease_id']}/heartbeat", headers=run), 409, "lease_lost")


async def test_a_run_token_dies_when_its_lease_expires(auth_api, auth_app):
    from tests.helpers import expire

    worker = (await make_token(auth_api, "worker"))["token"]
    await auth_api.post("/api/workflows?run=true", json=WORKFLOW, headers=ADMIN)
    lease = (await _claim(auth_api, worker)).json()["lease"]
    await expire(auth_app.state.store, lease["lease_id"])
    assert_error(await auth_api.post(f"/api/jobs/{lease['lease_id']}/complete", json={},
                                     headers=bearer(lease["run_token"])), 409, "lease_lost")


async def test_a_run_token_is_given_with_auth_off_too(api):
    await api.post("/api/workflows?run=true", json=WORKFLOW)
    lease = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]
    assert lease["run_token"].startswith(f"rotr_{lease['lease_id']}_")


async def test_run_tokens_verify_whatever_their_mac_holds():
    auth = auth_module.Auth(enabled=True)
    auth._run_key = b"k" * 32
    tokens = [auth.run_token(f"lease-{i}") for i in range(200)]
    assert any("_" in t[-43:] for t in tokens) and any("-" in t[-43:] for t in tokens)
    for i, token in enumerate(tokens):
        assert auth._run_lease(token) == f"lease-{i}"


async def test_a_parked_claim_of_a_revoked_token_is_refused_not_given_a_job(auth_api):
    import asyncio

    created = await make_token(auth_api, "worker")
    parked = asyncio.create_task(auth_api.post("/api/jobs/claim", json={"worker_id": "w", "wait_secs": 30},
                                               headers=bearer(created["token"])))
    await asyncio.sleep(0.2)  # parked, waiting for a job
    await auth_api.delete(f"/api/tokens/{created['id']}", headers=ADMIN)
    await auth_api.post("/api/workflows?run=true", json=WORKFLOW, headers=ADMIN)
    assert_error(await asyncio.wait_for(parked, 10), 401, "unauthenticated")
    status = (await auth_api.get("/api/workflows", headers=ADMIN)).json()[0]
    assert {j["status"] for j in status["jobs"]} == {"queued"}


# ---- from the security review ----------------------------------------------------


async def test_a_token_revoked_while_its_body_arrives_does_not_act(auth_app, auth_api):
    import asyncio

    token = (await make_token(auth_api, "submit"))["token"]
    gate = asyncio.Event()
    body = b'{"name": "late", "jobs": [{"id": "a", "command": "true"}]}'
    parts = [{"type": "http.request", "body": body[:5], "more_body": True}]
    sent: list[dict] = []

    async def receive():
        if parts:
            return parts.pop(0)
        await gate.wait()
        return {"type": "http.request", "body": body[5:], "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/workflows", "raw_path": b"/api/workflows",
             "query_string": b"run=true", "root_path": "", "scheme": "http", "http_version": "1.1",
             "server": ("127.0.0.1", 3000), "client": ("127.0.0.1", 5000), "app": auth_app,
             "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode()),
                         (b"authorization", f"Bearer {token}".encode())]}
    call = asyncio.create_task(auth_app(scope, receive, send))
    await asyncio.sleep(0.1)  # let in, waiting for the rest of its body
    await auth_api.delete(f"/api/tokens/{token.split('_')[1]}", headers=ADMIN)
    gate.set()
    await call
    assert sent[0]["status"] == 401
    assert (await auth_api.get("/api/workflows", headers=ADMIN)).json() == []


async def test_run_tokens_die_with_the_worker_token_that_claimed(auth_api):
    created = await make_token(auth_api, "worker")
    await auth_api.post("/api/workflows?run=true", json=WORKFLOW, headers=ADMIN)
    lease = (await _claim(auth_api, created["token"])).json()["lease"]
    run = bearer(lease["run_token"])
    assert (await auth_api.post(f"/api/jobs/{lease['lease_id']}/heartbeat", headers=run)).status_code == 200
    await auth_api.delete(f"/api/tokens/{created['id']}", headers=ADMIN)
    for path, body in (("heartbeat", None), ("complete", {"outputs": {"tag": "forged"}})):
        assert_error(await auth_api.post(f"/api/jobs/{lease['lease_id']}/{path}", json=body, headers=run),
                     403, "forbidden")
    status = (await auth_api.get("/api/workflows", headers=ADMIN)).json()[0]
    assert all(j["outputs"] == {} for j in status["jobs"])


async def test_a_run_token_that_is_not_ascii_is_401_not_500(auth_api):
    headers = [(b"authorization", "Bearer rotr_\xe9_".encode("latin-1") + b"A" * 43)]
    resp = await auth_api.post("/api/jobs/x/heartbeat", headers=headers)
    assert_error(resp, 401, "unauthenticated")


async def test_an_open_tail_ends_when_its_token_is_revoked(auth_app, auth_api):
    import asyncio

    reader = await make_token(auth_api, "read")
    await auth_api.post("/api/workflows?run=true", json=WORKFLOW, headers=ADMIN)
    wf = (await auth_api.get("/api/workflows", headers=ADMIN)).json()[0]["id"]
    tail = asyncio.create_task(auth_api.get(f"/api/workflows/{wf}/jobs/a/logs/stream",
                                            headers=bearer(reader["token"])))
    while auth_app.state.notifier.open_streams < 1:
        await asyncio.sleep(0.01)
    await auth_api.delete(f"/api/tokens/{reader['id']}", headers=ADMIN)
    body = (await asyncio.wait_for(tail, 10)).text
    assert "event: error" in body and "unauthenticated" in body and "event: end" not in body


async def test_before_redis_has_answered_every_route_but_the_public_ones_is_503(auth_app, auth_api):
    auth_app.state.ready.clear()  # as while a server started before Redis waits for it
    claim = await auth_api.post("/api/jobs/claim", json={"worker_id": "w"}, headers=ADMIN)
    # 503, which a worker retries; never a 401 for a token not loaded yet
    assert claim.status_code == 503 and claim.json()["error"]["code"] == "store_unavailable"
    assert (await auth_api.get("/openapi.json")).status_code == 200
    assert (await auth_api.get("/healthz")).json()["error"]["code"] == "store_unavailable"
    auth_app.state.ready.set()
    assert (await auth_api.post("/api/jobs/claim", json={"worker_id": "w"}, headers=ADMIN)).status_code == 200


# ---- auth off on a store that holds API tokens -----------------------------------------------


async def test_auth_off_by_default_does_not_serve_a_store_that_holds_api_tokens(redis, settings):
    """A replica started without ROTA_ADMIN_TOKEN beside replicas with auth on
    must not accept anonymous writes: it refuses to serve, saying why."""
    from server.store import Store
    from server.tokens import TokenStore

    store = Store(redis)
    await TokenStore(redis, store.prefix, store.scripts).create("ci", ["submit"], None)
    for explicit in (False, True):
        app = create_app(dataclasses.replace(settings, auth_off_explicit=explicit), redis=redis)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
                resp = await api.post("/api/workflows", json=WORKFLOW)
            if explicit:  # ROTA_AUTH=off: what the operator chose
                assert resp.status_code == 201 and app.state.refused is None
            else:
                assert resp.status_code == 503, resp.text
                assert "1 API token" in app.state.refused and "ROTA_ADMIN_TOKEN" in app.state.refused
                assert "ROTA_AUTH=off" in app.state.refused
    assert len(await Store(redis).list_workflows(10, 0)) == 1  # the refused one changed nothing


async def test_auth_off_serves_a_store_without_api_tokens(app, api):
    assert app.state.refused is None
    assert (await api.post("/api/workflows", json=WORKFLOW)).status_code == 201
