"""GET /metrics, on both stores: every series with its labels, parsed with
prometheus_client's own parser; the counts after a scripted sequence equal
what happened and what the API says; the batch protocol counts each job
once; many claimers count exactly the jobs leased; and who may scrape."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.metrics.exposition import FAILURE_REASONS
from tests.conftest import ADMIN_TOKEN
from tests.helpers import expire
from tests.test_api import assert_error
from tests.test_auth import ADMIN, bearer, make_token
from tests.test_monitoring_files import HISTOGRAMS, SERIES

METRICS_TOKEN = "metrics-scraper-9f8e7d6c5b4a39281706f5e4d3c2b1a0"

# The series contract the monitoring examples (docs/monitoring/) are written against.
FLEET_GAUGES = {name: labels for name, labels in SERIES.items() if not name.endswith("_total")}
COUNTERS = {name[:-len("_total")]: labels for name, labels in SERIES.items() if name.endswith("_total")}


class Scrape:
    """One scrape, parsed: value(name, **labels) of a sample."""

    def __init__(self, text: str):
        # (name, type): the gauge rota_dead_letters and the counter
        # rota_dead_letters_total share a family name once parsed
        self.families = {(f.name, f.type): f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) == 1, (name, labels, found)
        return found[0]

    def by(self, name: str, label: str, **fixed: str) -> dict[str, float]:
        return {s.labels[label]: s.value for s in self.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in fixed.items())}


async def scrape(api, headers=None) -> Scrape:
    resp = await api.get("/metrics", headers=headers or {})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=")
    return Scrape(resp.text)


async def start(api, *jobs: dict) -> str:
    resp = await api.post("/api/workflows", params={"run": "true"}, json={"name": "m", "jobs": list(jobs)})
    assert resp.status_code == 201, resp.text
    return resp.json()["latest_run_id"]


async def claim(api, worker: str, labels: list[str], **extra) -> dict:
    resp = await api.post("/api/jobs/claim", json={"worker_id": worker, "labels": labels, **extra})
    assert resp.status_code == 200, resp.text
    return resp.json()


def job(job_id: str, label: str, **extra) -> dict:
    return {"id": job_id, "command": "true", "required_labels": [label], **extra}


async def test_every_series_is_there_with_its_labels(api):
    await start(api, job("a", "linux"), job("b", "linux"))
    await api.post("/api/workers/register", json={"worker_id": "w1", "labels": ["linux"], "concurrency": 2})
    got = await claim(api, "w1", ["linux"])
    await api.post(f"/api/jobs/{got['lease']['lease_id']}/complete", json={})
    s = await scrape(api)
    for name, labels in FLEET_GAUGES.items():
        family = s.families.get((name, "gauge"))
        assert family is not None, name
        assert family.samples and all(set(x.labels) == labels for x in family.samples), name
    for name, labels in COUNTERS.items():
        family = s.families[(name, "counter")]
        assert all(set(x.labels) == labels for x in family.samples), name
        assert any(x.name == f"{name}_total" for x in family.samples)
    for name, labels in HISTOGRAMS.items():
        family = s.families[(name, "histogram")]
        assert {x.name for x in family.samples} == {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        assert all(set(x.labels) - {"le"} == labels for x in family.samples), name
    assert set(s.by("rota_failures_total", "reason")) == set(FAILURE_REASONS)
    # per process: prometheus_client's own
    assert ("process_cpu_seconds", "counter") in s.families and ("python_info", "gauge") in s.families
    # the route's template, never the path
    routes = s.by("rota_http_request_duration_seconds_count", "route")
    assert "/api/jobs/{lease_id}/complete" in routes and not any(got["lease"]["lease_id"] in r for r in routes)
    assert s.value("rota_redis_script_duration_seconds_count", script="claim") >= 1


async def test_a_path_no_route_takes_is_one_series(api):
    for _ in range(3):
        assert (await api.get(f"/no/such/{uuid.uuid4()}")).status_code == 404
    s = await scrape(api)
    assert s.value("rota_http_request_duration_seconds_count", method="GET", route="unmatched") == 3


async def test_counts_and_state_after_a_scripted_sequence_match_the_api(api, app):
    store = app.state.store
    run = await start(
        api, job("ok", "ok"),
        job("retry", "retry", max_retries=1, backoff={"Fixed": {"delay_secs": 3600}}),
        job("dead", "dead"), job("exp", "exp"), job("hb", "hb"), job("cx", "cx"), job("gpu", "gpu"))
    await api.post("/api/workers/register", json={"worker_id": "big", "labels": ["gpu", "hb"], "concurrency": 3})
    leases = {name: (await claim(api, f"w-{name}", [name]))["lease"]["lease_id"]
              for name in ("ok", "retry", "dead", "exp", "hb", "cx")}
    assert (await api.post(f"/api/jobs/{leases['ok']}/complete", json={"outputs": {"x": "1"}})).status_code == 200
    # sent again (a lost reply): the same result, not a second completion
    assert (await api.post(f"/api/jobs/{leases['ok']}/complete", json={"outputs": {"x": "1"}})).json()["replayed"]
    resp = await api.post(f"/api/jobs/{leases['retry']}/fail", json={"error": "boom", "retryable": True})
    assert resp.json()["outcome"] == "retrying"
    resp = await api.post(f"/api/jobs/{leases['dead']}/fail", json={"error": "boom", "retryable": False})
    assert resp.json()["outcome"] == "failure"
    await expire(store, leases["exp"])
    await store.reap()
    resp = await api.post(f"/api/jobs/{leases['hb']}/release", json={"reason": "draining"})
    assert resp.json()["outcome"] == "handed_back"
    assert (await api.post(f"/api/runs/{run}/jobs/cx/cancel")).status_code == 202

    s = await scrape(api)
    assert s.value("rota_claims_total") == 6
    assert s.value("rota_completions_total") == 1
    assert s.by("rota_failures_total", "reason") == {
        **dict.fromkeys(FAILURE_REASONS, 0.0), "error": 2.0, "lease_expired": 1.0, "cancelled": 1.0}
    assert s.value("rota_retries_total") == 1
    assert s.value("rota_dead_letters_total") == 2
    assert s.value("rota_lease_expiries_total") == 1
    assert s.value("rota_dispatch_latency_seconds_count") == 6
    assert s.value("rota_queue_wait_seconds_count") == 6
    assert s.value("rota_job_duration_seconds_count") == 3  # a completion and two failures reported

    dead = (await api.get("/api/dead-letters")).json()["items"]
    assert s.value("rota_dead_letters") == len(dead) == 2
    queues = {",".join(q["labels"]): q for q in (await api.get("/api/queues")).json()["queues"]}
    assert set(queues) == {"hb", "gpu"}
    assert s.by("rota_queue_ready_jobs", "labels") == {k: q["ready"] for k, q in queues.items()}
    assert s.by("rota_queue_live_workers", "labels") == {k: q["live_workers"] for k, q in queues.items()}
    assert s.by("rota_queue_free_slots", "labels") == {k: q["free_slots"] for k, q in queues.items()} \
        == {"hb": 3, "gpu": 3}
    assert s.by("rota_queue_paused", "labels") == {"hb": 0, "gpu": 0}
    assert set(s.by("rota_queue_oldest_ready_age_seconds", "labels")) == {"hb", "gpu"}
    assert s.by("rota_jobs", "labels", state="ready") == {"hb": 1, "gpu": 1}
    assert s.by("rota_jobs", "labels", state="delayed") == {"retry": 1}
    assert s.by("rota_jobs", "labels", state="running") == {}
    workers = (await api.get("/api/workers", params={"limit": 1000})).json()
    statuses = {w["status"] for w in workers}
    for status, n in s.by("rota_workers", "status").items():
        assert n == sum(1 for w in workers if w["status"] == status), status
    # the expired lease's worker is lost; the cancelled job's still holds its lease
    assert sum(s.by("rota_workers", "status").values()) == len(workers) and statuses == {"idle", "busy", "lost"}
    assert s.value("rota_worker_free_slots") == 3
    assert (await api.get(f"/api/runs/{run}")).json()["status"] == "running"
    assert s.by("rota_runs", "status") == {"delayed": 0, "active": 1, "finished": 0}


async def test_finished_and_delayed_runs_are_counted(api, app):
    done = await start(api, job("a", "fin"))
    lease = (await claim(api, "w1", ["fin"]))["lease"]["lease_id"]
    await api.post(f"/api/jobs/{lease}/complete", json={})
    assert (await api.get(f"/api/runs/{done}")).json()["status"] == "success"
    wf = (await api.post("/api/workflows", json={"name": "later", "jobs": [job("a", "later")]})).json()["id"]
    resp = await api.post(f"/api/workflows/{wf}/runs", json={"delay": "1h"})
    assert resp.status_code in (200, 201), resp.text
    s = await scrape(api)
    assert s.by("rota_runs", "status") == {"delayed": 1, "active": 0, "finished": 1}


async def test_the_batch_protocol_counts_each_job_once(api):
    await start(api, *(job(f"j{i}", "batch") for i in range(5)))
    resp = await api.post("/api/jobs/claims", json={"worker_id": "w1", "labels": ["batch"], "max_jobs": 3,
                                                    "claim_id": "c1"})
    first = resp.json()["claims"]
    assert len(first) == 3
    # the same claim re-sent (its reply lost): the same leases, counted once
    again = (await api.post("/api/jobs/claims", json={"worker_id": "w1", "labels": ["batch"], "max_jobs": 3,
                                                      "claim_id": "c1"})).json()["claims"]
    assert [c["lease"]["lease_id"] for c in again] == [c["lease"]["lease_id"] for c in first]
    results = [{"lease_id": c["lease"]["lease_id"], "kind": "complete"} for c in first[:2]]
    results.append({"lease_id": first[2]["lease"]["lease_id"], "kind": "fail", "error": "no"})
    body = {"results": results, "next": {"worker_id": "w1", "labels": ["batch"], "max_jobs": 2}}
    resp = await api.post("/api/jobs/results", json=body)
    assert resp.status_code == 200, resp.text
    nxt = resp.json()["next"]
    assert len(nxt) == 2
    # the results re-sent: replayed, nothing counted again
    replay = await api.post("/api/jobs/results", json={"results": results})
    assert all(r["replayed"] for r in replay.json()["results"])
    # a single complete with `next`, which claims nothing more (the queue is empty)
    resp = await api.post(f"/api/jobs/{nxt[0]['lease']['lease_id']}/complete",
                          json={"next": {"worker_id": "w1", "labels": ["batch"]}})
    assert resp.status_code == 200, resp.text
    resp = await api.post(f"/api/jobs/{nxt[1]['lease']['lease_id']}/fail",
                          json={"error": "x", "retryable": False, "next": {"worker_id": "w1", "labels": ["batch"]}})
    assert resp.status_code == 200, resp.text
    s = await scrape(api)
    assert s.value("rota_claims_total") == 5
    assert s.value("rota_completions_total") == 3
    assert s.by("rota_failures_total", "reason")["error"] == 2
    assert s.value("rota_dead_letters_total") == 2
    assert s.value("rota_dispatch_latency_seconds_count") == 5
    assert s.value("rota_job_duration_seconds_count") == 5


async def test_many_claimers_count_exactly_the_jobs_leased(api):
    await start(api, *(job(f"j{i}", "crowd") for i in range(12)))

    async def claimer(n: int) -> int:
        got = 0
        while True:
            resp = await api.post("/api/jobs/claim", json={"worker_id": f"w{n}", "labels": ["crowd"]})
            if resp.status_code == 204 or not resp.content or resp.json() is None:
                return got
            got += 1

    leased = sum(await asyncio.gather(*(claimer(n) for n in range(8))))
    assert leased == 12
    assert (await scrape(api)).value("rota_claims_total") == 12


async def test_counters_are_the_fleets_and_outlive_a_process(redis, settings):
    """Two apps on one Redis (two processes' worth): each scrape sees both's
    counts; a new app later starts from the fleet's, not from zero."""
    import httpx

    from server.app import create_app

    async def client(app):
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")

    one, two = create_app(settings, redis=redis), create_app(settings, redis=redis)
    async with one.router.lifespan_context(one), two.router.lifespan_context(two):
        a, b = await client(one), await client(two)
        async with a, b:
            await start(a, job("x", "fleet"), job("y", "fleet"))
            await claim(a, "w1", ["fleet"])
            await claim(b, "w2", ["fleet"])
            await scrape(b)  # b's claim flushed (a's may be, by its own interval)
            assert (await scrape(a)).value("rota_claims_total") == 2
            assert (await scrape(b)).value("rota_claims_total") == 2
    three = create_app(settings, redis=redis)
    async with three.router.lifespan_context(three):
        async with await client(three) as c:
            assert (await scrape(c)).value("rota_claims_total") == 2


# ---- who may scrape ----------------------------------------------------------------------


@pytest.fixture
def metrics_settings(auth_settings):
    return dataclasses.replace(auth_settings, metrics_token=METRICS_TOKEN)


@pytest.fixture
async def metrics_api(redis, metrics_settings):
    import httpx

    from server.app import create_app

    app = create_app(metrics_settings, redis=redis)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as c:
            yield c


async def test_scraping_needs_read_or_the_metrics_token(metrics_api):
    assert_error(await metrics_api.get("/metrics"), 401, "unauthenticated")
    worker = await make_token(metrics_api, "worker")
    resp = await metrics_api.get("/metrics", headers=bearer(worker["token"]))
    assert_error(resp, 403, "forbidden")
    reader = await make_token(metrics_api, "read")
    await scrape(metrics_api, bearer(reader["token"]))
    await scrape(metrics_api, ADMIN)
    await scrape(metrics_api, bearer(METRICS_TOKEN))


async def test_the_metrics_token_opens_nothing_else(metrics_api):
    token = bearer(METRICS_TOKEN)
    for method, path in (("GET", "/api/queues"), ("GET", "/api/runs"), ("GET", "/api/workers"),
                         ("POST", "/api/stream-tickets")):
        resp = await metrics_api.request(method, path, headers=token, json={} if method == "POST" else None)
        assert resp.status_code == 403, (path, resp.text)
    resp = await metrics_api.post("/api/jobs/claim", json={"worker_id": "w1"}, headers=token)
    assert resp.status_code == 403
    # a wrong one is no token at all
    assert_error(await metrics_api.get("/metrics", headers=bearer(METRICS_TOKEN[:-1] + "x")), 401, "unauthenticated")
    assert ADMIN_TOKEN != METRICS_TOKEN


def test_a_tally_hands_over_what_it_counted_as_the_scripts_fields():
    from server.metrics.tally import Tally

    tally = Tally()
    tally.claimed(10_000, 9_000, 9_500)
    tally.result(9_000, 10_000, True)
    tally.request(0.002, "POST /api/jobs/claim")
    expected = tally.fields()
    taken = tally.take()
    assert tally.fields() == ([], [])
    assert taken.fields() == expected
    ints, floats = expected
    counts = dict(zip(ints[::2], ints[1::2]))
    assert counts["c:claims"] == counts["c:completions"] == 1
    # dispatch from the end of the backoff (0.5 s), queue wait from the enqueue (1 s)
    assert dict(zip(floats[::2], floats[1::2])) == {"dispatch:": "0.5", "queue_wait:": "1.0", "job_duration:": "1.0",
                                                     "http:POST /api/jobs/claim": "0.002"}



async def test_a_flush_whose_reply_is_lost_counts_once(app, api):
    """Redis ran the flush but its reply was lost (a reset connection): the
    client's retry, and the next flush, must not add the same counts again."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    flusher = app.state.metrics_flusher
    await flusher.flush()
    before = (await scrape(api)).value("rota_claims_total")
    await start(api, job("x", "lost-reply"), job("y", "lost-reply"))
    await claim(api, "w1", ["lost-reply"])
    scripts = app.state.store.scripts
    real = scripts.call
    calls = []

    async def applied_then_lost(name, *args):
        reply = await real(name, *args)
        if name == "metrics_flush":
            calls.append(args)
            if len(calls) == 1:
                await real(name, *args)  # a client's own retry of the same call
                raise RedisConnectionError("reply lost")
        return reply

    scripts.call = applied_then_lost
    try:
        with pytest.raises(RedisConnectionError):
            await flusher.flush()
        await claim(api, "w2", ["lost-reply"])
        await flusher.flush()  # sends the lost batch again, then the new one
    finally:
        scripts.call = real
    assert (await scrape(api)).value("rota_claims_total") == before + 2


async def test_a_lease_past_its_expiry_is_not_counted_running(app, api):
    """Its worker is gone and the reaper has not yet come by: nothing runs."""
    await start(api, job("x", "stale"), job("y", "stale"))
    first = await claim(api, "w1", ["stale"])
    await claim(api, "w2", ["stale"])
    assert (await scrape(api)).by("rota_jobs", "labels", state="running") == {"stale": 2}
    store = app.state.store
    await store.redis.zadd(store.key("leases"), {first["lease"]["lease_id"]: 1}, xx=True)  # expired long ago
    assert (await scrape(api)).by("rota_jobs", "labels", state="running") == {"stale": 1}
