"""Per-token caps (issue 14, item 9). An idempotency key is kept only when
its request created or changed something; one API token (with auth off,
everyone as one) holds at most MAX_IDEMPOTENCY_KEYS_PER_TOKEN live keys,
MAX_ONEOFF_WORKFLOWS_PER_TOKEN one-off workflows and MAX_WORKERS_PER_TOKEN
worker ids. Past a cap a request is 429 `limit_exceeded` naming the
setting, and changes nothing; a slot frees when what holds it goes."""

from __future__ import annotations

import asyncio
import time

import pytest

from server.errors import LimitExceeded
from server.models import RegisterRequest, WorkflowSpec
from server.store import Store
from tests.conftest import ADMIN_TOKEN
from tests.helpers import job
from tests.test_api import assert_error
from tests.test_auth import bearer, make_token
from tests.test_hardening import app_client

ADMIN = bearer(ADMIN_TOKEN)
DOC = {"name": "ci", "jobs": [{"id": "a", "command": "one"}]}


def doc(command: str) -> dict:
    return {"name": "ci", "jobs": [{"id": "a", "command": command}]}


def key(k: str, headers: dict | None = None) -> dict:
    return {**(headers or {}), "Idempotency-Key": k}


async def _keys(redis, pattern: str) -> list[str]:
    return [k async for k in redis.scan_iter(match=pattern)]


def limited(resp, setting: str, limit: int) -> None:
    err = assert_error(resp, 429, "limit_exceeded")
    assert err["details"] == {"limit": limit, "limit_name": setting}
    assert setting in err["message"] and "nothing was done" in err["message"]


# ---- idempotency keys ----------------------------------------------------------------


async def test_fresh_keys_on_an_unchanged_put_keep_nothing(api, redis, backend):
    """The audit's reproduction: 3,000 fresh keys on an unchanged PUT left
    3,000 Redis keys for 24 h (fewer on fakeredis, which is slower)."""
    assert (await api.put("/api/workflows/ci", json=DOC)).status_code == 201
    # the fleet's metrics keys (m:n, m:f, m:p) made now, not by a flush midway
    assert (await api.get("/metrics")).status_code == 200
    before = await redis.dbsize()
    for batch in range(0, 3000 if backend == "redis" else 300, 10):
        answers = await asyncio.gather(*(api.put("/api/workflows/ci", json=DOC, headers=key(f"fresh-{i}"))
                                         for i in range(batch, batch + 10)))
        assert {a.status_code for a in answers} == {200}
        assert not any("idempotent-replayed" in a.headers for a in answers)
    assert await redis.dbsize() == before
    assert await _keys(redis, "*idem*") == []


async def test_a_key_is_kept_only_when_its_put_changed_something(api):
    assert (await api.put("/api/workflows/ci", json=doc("one"), headers=key("k1"))).status_code == 201
    again = await api.put("/api/workflows/ci", json=doc("one"), headers=key("k1"))
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert_error(await api.put("/api/workflows/ci", json=doc("two"), headers=key("k1")), 422, "idempotency_key_reused")
    # a key whose PUT changed nothing was not kept: with another document it
    # is a new request, as it would be without a key
    assert (await api.put("/api/workflows/ci", json=doc("one"), headers=key("k2"))).status_code == 200
    changed = await api.put("/api/workflows/ci", json=doc("two"), headers=key("k2"))
    assert changed.status_code == 200 and "idempotent-replayed" not in changed.headers
    assert (await api.get("/api/workflows/ci")).json()["jobs"][0]["command"] == "two"


async def test_live_idempotency_keys_are_capped_per_token(redis, auth_settings):
    _, api = await app_client(redis, auth_settings, max_idempotency_keys_per_token=3)
    try:
        a = bearer((await make_token(api, "submit", name="a"))["token"])
        b = bearer((await make_token(api, "submit", name="b"))["token"])
        for i in range(3):
            assert (await api.post("/api/workflows?run=true", json=DOC, headers=key(f"k{i}", a))).status_code == 201
        limited(await api.post("/api/workflows?run=true", json=DOC, headers=key("k3", a)),
                "MAX_IDEMPOTENCY_KEYS_PER_TOKEN", 3)
        wf = (await api.get("/api/workflows", headers=a)).json()
        assert len(wf) == 3  # nothing was created
        limited(await api.post(f"/api/workflows/{wf[0]['id']}/runs", json={}, headers=key("k3", a)),
                "MAX_IDEMPOTENCY_KEYS_PER_TOKEN", 3)
        assert len((await api.get("/api/runs", headers=a)).json()["runs"]) == 3
        # a retry of a kept key is still answered; a request without a key is not counted
        replay = await api.post("/api/workflows?run=true", json=DOC, headers=key("k0", a))
        assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
        assert (await api.post("/api/workflows", json=DOC, headers=a)).status_code == 201
        # another token has its own count
        assert (await api.post("/api/workflows", json=DOC, headers=key("k3", b))).status_code == 201
    finally:
        await api.aclose()


async def test_a_key_frees_its_slot_when_it_expires(redis):
    store = Store(redis, idempotency_ttl_secs=1, max_idempotency_keys=1)
    await store.define_workflow(WorkflowSpec(name="ci", jobs=[job("a")]), "ci", kind="put")
    await store.start_run("ci", idempotency_key="a", request_hash="h")
    with pytest.raises(LimitExceeded):
        await store.start_run("ci", idempotency_key="b", request_hash="h")
    deadline = time.monotonic() + 30
    while True:
        try:
            started = await store.start_run("ci", idempotency_key="b", request_hash="h")
            break
        except LimitExceeded:
            assert time.monotonic() < deadline, "key a never expired"
            await asyncio.sleep(0.2)
    assert not started.replayed


# ---- one-off workflows ---------------------------------------------------------------


async def test_one_off_workflows_are_capped_per_token(redis, auth_settings):
    _, api = await app_client(redis, auth_settings, max_oneoff_workflows_per_token=2)
    try:
        a = bearer((await make_token(api, "submit", name="a"))["token"])
        b = bearer((await make_token(api, "submit", name="b"))["token"])
        ids = [(await api.post("/api/workflows", json=DOC, headers=a)).json()["id"] for _ in range(2)]
        limited(await api.post("/api/workflows?run=true", json=DOC, headers=a), "MAX_ONEOFF_WORKFLOWS_PER_TOKEN", 2)
        assert len((await api.get("/api/workflows", headers=a)).json()) == 2
        assert (await api.put("/api/workflows/stable", json=DOC, headers=a)).status_code == 201  # not a one-off
        assert (await api.post("/api/workflows", json=DOC, headers=b)).status_code == 201
        # a deleted one-off frees its slot, and so does one PUT over (no longer a one-off)
        assert (await api.delete(f"/api/workflows/{ids[0]}", headers=ADMIN)).status_code == 204
        assert (await api.post("/api/workflows", json=DOC, headers=a)).status_code == 201
        limited(await api.post("/api/workflows", json=DOC, headers=a), "MAX_ONEOFF_WORKFLOWS_PER_TOKEN", 2)
        assert (await api.put(f"/api/workflows/{ids[1]}", json=DOC, headers=a)).status_code == 200
        assert (await api.post("/api/workflows", json=DOC, headers=a)).status_code == 201
    finally:
        await api.aclose()


async def test_a_one_off_purged_by_retention_frees_its_slot(redis):
    store = Store(redis, max_oneoffs=1)
    spec = WorkflowSpec(name="x", jobs=[job("a")])
    await store.define_workflow(spec, "first")
    with pytest.raises(LimitExceeded):
        await store.define_workflow(spec, "second")
    assert not await redis.exists(store.key("wf", "second"))
    await redis.zadd(store.key("oneoffs"), {"first": 0})  # its retention is over
    await store.reap()
    assert not await redis.exists(store.key("wf", "first"))
    assert (await store.define_workflow(spec, "second")).outcome == "created"


# ---- worker ids ----------------------------------------------------------------------


async def _register(api, worker: str, headers: dict):
    return await api.post("/api/workers/register", json={"worker_id": worker, "labels": []}, headers=headers)


async def test_worker_ids_are_capped_per_token(redis, auth_settings):
    app, api = await app_client(redis, auth_settings, max_workers_per_token=2)
    try:
        a = bearer((await make_token(api, "worker", name="a"))["token"])
        b = bearer((await make_token(api, "worker", name="b"))["token"])
        for w in ("w1", "w2"):
            assert (await _register(api, w, a)).status_code == 200
        limited(await _register(api, "w3", a), "MAX_WORKERS_PER_TOKEN", 2)
        limited(await api.post("/api/jobs/claim", json={"worker_id": "w4"}, headers=a), "MAX_WORKERS_PER_TOKEN", 2)
        listed = {w["worker_id"] for w in (await api.get("/api/workers", headers=ADMIN)).json()}
        assert listed == {"w1", "w2"}
        # the ids it holds go on working
        assert (await _register(api, "w1", a)).status_code == 200
        claimed = await api.post("/api/jobs/claim", json={"worker_id": "w2"}, headers=a)
        assert claimed.status_code == 200 and claimed.json() is None
        assert (await _register(api, "w3", b)).status_code == 200  # another token has its own count
        # a worker stopped cleanly, or removed by an admin, is forgotten ten
        # minutes later, and its slot with it
        assert (await api.delete("/api/workers/w2", headers=a)).status_code == 204
        assert (await api.delete("/api/workers/w1", headers=ADMIN)).status_code == 204
        store = app.state.store
        await redis.zadd(store.key("stopped"), {"w1": 0, "w2": 0})
        await store.reap()
        assert (await _register(api, "w5", a)).status_code == 200
        assert (await _register(api, "w6", a)).status_code == 200
        limited(await _register(api, "w7", a), "MAX_WORKERS_PER_TOKEN", 2)
    finally:
        await api.aclose()


async def test_a_worker_id_taken_over_from_a_revoked_token_moves_between_counts(redis, auth_settings):
    _, api = await app_client(redis, auth_settings, max_workers_per_token=1)
    try:
        a = await make_token(api, "worker", name="a")
        b = bearer((await make_token(api, "worker", name="b"))["token"])
        assert (await _register(api, "w1", bearer(a["token"]))).status_code == 200
        assert (await api.delete(f"/api/tokens/{a['id']}", headers=ADMIN)).status_code == 200
        assert (await _register(api, "w1", b)).status_code == 200  # A's id is free: B takes it
        limited(await _register(api, "w2", b), "MAX_WORKERS_PER_TOKEN", 1)
    finally:
        await api.aclose()


async def test_with_auth_off_the_caps_count_everyone_as_one(redis, settings):
    _, api = await app_client(redis, settings, max_workers_per_token=2, max_oneoff_workflows_per_token=1)
    try:
        for w in ("w1", "w2"):
            assert (await _register(api, w, {})).status_code == 200
        limited(await _register(api, "w3", {}), "MAX_WORKERS_PER_TOKEN", 2)
        assert (await api.post("/api/workflows", json=DOC)).status_code == 201
        limited(await api.post("/api/workflows", json=DOC), "MAX_ONEOFF_WORKFLOWS_PER_TOKEN", 1)
    finally:
        await api.aclose()


async def test_the_worker_cap_holds_under_concurrent_registrations_and_claims(store: Store):
    store.max_workers = 10

    async def register(i: int) -> bool:
        try:
            await store.register_worker(RegisterRequest(worker_id=f"r{i}", labels=[]), owner="tok")
        except LimitExceeded:
            return False
        return True

    async def claim_as(i: int) -> bool:
        try:
            await store.claim(f"c{i}", [], 30, f"lease-{i}", owner="tok")
        except LimitExceeded:
            return False
        return True

    won = await asyncio.gather(*(f(i) for i in range(30) for f in (register, claim_as)))
    assert sum(won) == 10
    assert await store.redis.scard(store.key("quota", "workers", "tok")) == 10
    assert len(await store.list_workers()) == 10


async def test_workers_known_before_the_caps_are_counted_once(store: Store):
    await store.register_worker(RegisterRequest(worker_id="old", labels=[]), owner="tok")
    await store.redis.delete(store.key("quota", "workers", "tok"), store.key("layout"))
    await store.upgrade()
    assert await store.redis.smembers(store.key("quota", "workers", "tok")) == {"old"}


def test_a_worker_refused_by_a_cap_retries():
    """The daemon retries a 429 as it does a 503: the cap frees as old
    workers are forgotten."""
    from worker.client.errors import ApiError, is_transient

    assert is_transient(ApiError(429, "limit_exceeded", "at the cap"))
    assert not is_transient(ApiError(409, "worker_id_taken", "taken"))


def test_the_caps_are_settings():
    from server.settings import Settings, SettingsError

    s = Settings.from_env({})
    assert (s.max_workers_per_token, s.max_oneoff_workflows_per_token, s.max_idempotency_keys_per_token) == (
        10_000, 10_000, 100_000)
    s = Settings.from_env({"MAX_WORKERS_PER_TOKEN": "5", "MAX_ONEOFF_WORKFLOWS_PER_TOKEN": "6",
                           "MAX_IDEMPOTENCY_KEYS_PER_TOKEN": "7"})
    assert (s.max_workers_per_token, s.max_oneoff_workflows_per_token, s.max_idempotency_keys_per_token) == (5, 6, 7)
    with pytest.raises(SettingsError, match="MAX_WORKERS_PER_TOKEN"):
        Settings.from_env({"MAX_WORKERS_PER_TOKEN": "0"})

