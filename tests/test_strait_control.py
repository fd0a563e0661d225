"""Strait's delayed, expired, rescheduled, restarted and replayed runs at
/v1/runs (seed 003), onto rota's own delayed runs, per-run overrides and
restart (issue 17, items 3 and 7): the Strait-shaped client reads and
drives them with seed 003's paths and fields only; the runs are started
with rota's own API. On both stores."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from tests.strait_client import RUN_FIELDS, StraitError, StraitRuns
from tests.test_api import assert_error
from tests.test_delayed_runs import due_now
from tests.test_strait_runs import call, claim, define, start


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


async def test_a_delayed_run_is_delayed_until_rescheduled_to_now(app, api):
    await define(api)
    run = await start(api, delay="1h")
    strait = StraitRuns(api)
    got = await strait.get(run)
    assert set(got) == RUN_FIELDS and got["status"] == "delayed"
    assert _ms(got["scheduled_at"]) - _ms(got["created_at"]) >= 3_600_000 - 5
    assert [r["id"] for r in await strait.list(status="delayed")] == [run]
    # Strait's reschedule (an RFC 3339 scheduled_at) is the native one: the run waits until then
    later = datetime.fromtimestamp(time.time() + 7200, timezone.utc).isoformat().replace("+00:00", "Z")
    moved = await strait.reschedule(run, later)
    assert moved["id"] == run and moved["status"] == "delayed" and abs(_ms(moved["scheduled_at"]) - _ms(later)) <= 1
    # a time now or past starts it at once
    now = await strait.reschedule(run, "2001-01-01T00:00:00Z")
    assert now["status"] == "queued"
    assert (await claim(api))["job"]["run_id"] == run
    with pytest.raises(StraitError) as refused:
        await strait.reschedule(run, later)
    assert refused.value.status == 409
    assert_error(await api.post(f"/v1/runs/{run}/reschedule", json={}), 422, "invalid_body")
    assert_error(await api.post(f"/v1/runs/{run}/reschedule", json={"scheduled_at": "soon"}), 422)
    assert_error(await api.post(f"/v1/runs/{run}/reschedule", json={"scheduled_at": "2030-01-01T00:00:00"}), 422)
    assert_error(await api.post("/v1/runs/nope/reschedule", json={"scheduled_at": later}), 404, "run_not_found")


async def test_a_delayed_run_can_be_cancelled_and_an_unstarted_one_expires(app, api):
    await define(api)
    strait = StraitRuns(api)
    waiting = await start(api, delay="1h")
    await strait.cancel(waiting)
    assert (await strait.get(waiting))["status"] == "canceled"
    expiring = await start(api, delay="1h", expires_in="2h")
    got = await strait.get(expiring)
    assert got["status"] == "delayed" and _ms(got["expires_at"]) - _ms(got["scheduled_at"]) >= 3_600_000 - 5
    store = app.state.store
    await due_now(store, "expiring", expiring)
    assert await store.due_runs() == (0, 1)
    gone = await strait.get(expiring)
    assert gone["status"] == "expired" and gone["error"] == "the run expired before it started"
    assert gone["finished_at"] is not None
    assert [r["id"] for r in await strait.list(status="expired")] == [expiring]
    # an expired run was never started: nothing to cancel, and Strait replays only a failed one
    with pytest.raises(StraitError) as refused:
        await strait.cancel(expiring)
    assert refused.value.status == 409
    bulk = await strait.bulk_cancel([expiring, waiting])
    assert bulk["canceled"] == 0 and {r["status"] for r in bulk["results"]} == {"expired", "canceled"}


async def test_per_run_overrides_show_as_straits_fields(api):
    await define(api)
    strait = StraitRuns(api)
    plain = await strait.get(await start(api))
    assert (plain["priority"], plain["max_attempts_override"], plain["timeout_secs_override"],
            plain["retry_backoff"]) == (None, None, None, None)
    run = await start(api, overrides={"max_attempts": 3, "timeout_secs": 90, "priority": 7,
                                      "backoff": {"exponential": {"base_secs": 2, "max_secs": 60}}})
    got = await strait.get(run)
    assert (got["max_attempts_override"], got["timeout_secs_override"], got["priority"]) == (3, 90, 7)
    assert (got["retry_backoff"], got["retry_initial_delay_secs"], got["retry_max_delay_secs"]) == \
        ("exponential", 2, 60)
    fixed = await strait.get(await start(api, overrides={"backoff": {"fixed": {"delay_secs": 5}}}))
    assert (fixed["retry_backoff"], fixed["retry_initial_delay_secs"], fixed["retry_max_delay_secs"]) == \
        ("fixed", 5, 5)


async def test_restart_with_a_machine_preset_runs_on_that_label(api):
    await define(api)
    strait = StraitRuns(api)
    first = await start(api, inputs={"region": "eu"}, overrides={"max_attempts": 2})
    c = await claim(api)
    await call(api, c, "complete", {"outputs": {}})
    again = await strait.restart(first, machine_preset="gpu-large")
    assert set(again) == RUN_FIELDS and again["id"] != first
    assert (again["status"], again["triggered_by"], again["payload"]) == ("queued", "restart", {"region": "eu"})
    # the run's own overrides go with it, the preset merged over them
    assert again["max_attempts_override"] == 2
    native = (await api.get(f"/api/runs/{again['id']}")).json()
    assert native["restarted_from"] == first and native["overrides"]["labels"] == ["gpu-large"]
    plain = await api.post("/api/jobs/claim", json={"worker_id": "plain", "lease_ttl_secs": 600})
    assert plain.json() is None  # a worker without the preset's label gets nothing
    got = await api.post("/api/jobs/claim", json={"worker_id": "big", "labels": ["gpu-large"], "lease_ttl_secs": 600})
    assert got.json()["job"]["run_id"] == again["id"]
    # no preset: the run's version and overrides again
    same = await strait.restart(first)
    assert same["triggered_by"] == "restart" and same["max_attempts_override"] == 2
    assert_error(await api.post(f"/v1/runs/{first}/restart", json={"machine_preset": "no,comma"}), 422,
                 "invalid_body")
    assert_error(await api.post("/v1/runs/nope/restart", json={}), 404, "run_not_found")


async def test_a_replay_is_a_restart_triggered_by_retry(api):
    await define(api)
    strait = StraitRuns(api)
    failed = await start(api, inputs={"n": 1}, overrides={"timeout_secs": 30})
    c = await claim(api)
    await call(api, c, "fail", {"error": "timed out after 30s", "error_type": "timeout", "retryable": True})
    assert (await strait.get(failed))["status"] == "timed_out"
    again = await strait.replay(failed)
    assert (again["status"], again["triggered_by"], again["payload"], again["timeout_secs_override"]) == \
        ("queued", "retry", {"n": 1}, 30)
    assert (await api.get(f"/api/runs/{again['id']}")).json()["restarted_from"] == failed


async def test_strait_pauses_and_resumes_a_run_as_rota_does(api):
    """Seed 003's pause and resume are rota's: the paused run keeps its
    status (queued), hands nothing out until resumed, and each answer is
    the run as Strait shows it."""
    await define(api)
    strait = StraitRuns(api)
    run = await start(api)
    paused = await strait.pause(run)
    assert set(paused) == RUN_FIELDS and paused["id"] == run and paused["status"] == "queued"
    assert (await api.get(f"/api/runs/{run}")).json()["paused"] is True
    assert (await api.post("/api/jobs/claim", json={"worker_id": "w1", "wait_secs": 0})).json() is None
    assert (await strait.pause(run))["status"] == "queued"  # pausing again changes nothing
    resumed = await strait.resume(run)
    assert resumed["id"] == run and resumed["status"] == "queued"
    assert (await claim(api))["job"]["run_id"] == run
    kinds = [e["type"] for e in await strait.events(run)]
    assert kinds.count("pause") == 2
    with pytest.raises(StraitError) as missing:
        await strait.pause("nope")
    assert missing.value.status == 404


async def test_a_runs_concurrency_key_is_its_concurrency_group(api):
    """Strait's concurrency_key is the run's concurrency group: the key it
    was started with, or its workflow's group as rendered; null in none."""
    await define(api)
    strait = StraitRuns(api)
    keyed = await start(api, concurrency_key="tenant-7")
    waiting = await start(api, concurrency_key="tenant-7")
    plain = await start(api)
    assert (await strait.get(keyed))["concurrency_key"] == "tenant-7"
    assert (await strait.get(waiting))["concurrency_key"] == "tenant-7"
    assert (await strait.get(plain))["concurrency_key"] is None
    await define(api, "grouped", b"concurrency: deploy-${{ run.triggered_by }}\njobs:\n  a: {run: 'true'}\n")
    grouped = await start(api, "grouped")
    assert (await strait.get(grouped))["concurrency_key"] == "deploy-api"
