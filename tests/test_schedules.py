"""Schedules (`on: schedule:`): each tick starts one run (`triggered_by:
cron`), however many schedulers race for it; catch-up after downtime;
changed, removed, paused and resumed schedules; and the listing. On both
stores. The scheduler is driven with a fake clock passed in (the app under
test runs none: API_ONLY)."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest

from server import scheduler
from server.limits import MAX_CATCH_UP_RUNS
from server.store import Store

QUARTER = 15 * 60 * 1000
YAML = {"Content-Type": "application/yaml"}


class FakeClock:
    """The scheduler's clock, moved by the test (Redis TIME in production)."""

    def __init__(self, ms: int):
        self.ms = ms

    async def __call__(self) -> int:
        return self.ms

    def advance(self, secs: float) -> None:
        self.ms += round(secs * 1000)


@pytest.fixture
async def quiet_app(redis, settings):
    """An app with no reaper and no scheduler of its own: the test drives them."""
    from server.app import create_app

    app = create_app(dataclasses.replace(settings, api_only=True), redis=redis)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(quiet_app):
    transport = httpx.ASGITransport(app=quiet_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


@pytest.fixture
def store(quiet_app) -> Store:
    return quiet_app.state.store


async def put(api, wf: str, on: str, extra: str = "") -> dict:
    doc = f"on:\n{on}\n{extra}jobs:\n  a: {{run: echo}}\n"
    resp = await api.put(f"/api/workflows/{wf}", content=doc, headers=YAML)
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


async def cron_runs(api, wf: str) -> list[dict]:
    runs = (await api.get(f"/api/workflows/{wf}/runs", params={"limit": 1000})).json()["runs"]
    return sorted((r for r in runs if r["triggered_by"] == "cron"), key=lambda r: r["scheduled_at"])


async def clock_now(store: Store) -> FakeClock:
    return FakeClock(await store.now_ms())


async def test_each_tick_starts_one_run_triggered_by_cron(api, store):
    await put(api, "nightly", "  schedule: [{cron: '*/15 * * * *'}]")
    clock = await clock_now(store)
    assert await scheduler.fire_due(store, clock.ms) == 0  # the first pass only computes the next tick
    (schedule,) = (await api.get("/api/schedules")).json()
    assert schedule["id"] == "nightly:0" and schedule["next_fire_at"] % QUARTER == 0
    clock.ms = schedule["next_fire_at"] + 1500  # a scheduler pass 1.5 s after the tick
    assert await scheduler.fire_due(store, clock.ms) == 1
    assert await scheduler.fire_due(store, clock.ms) == 0  # the same tick again: nothing
    clock.advance(15 * 60)
    assert await scheduler.fire_due(store, clock.ms) == 1
    runs = await cron_runs(api, "nightly")
    assert [r["scheduled_at"] for r in runs] == [schedule["next_fire_at"], schedule["next_fire_at"] + QUARTER]
    assert all(r["schedule_id"] == "nightly:0" and r["created_at"] >= 0 for r in runs)
    (after,) = (await api.get("/api/schedules", params={"workflow_id": "nightly"})).json()
    assert after["runs_started"] == 2 and after["last_run_id"] == runs[-1]["run_id"]
    assert after["last_fired_at"] == runs[-1]["scheduled_at"]


async def test_schedulers_racing_for_the_same_ticks_start_one_run_per_tick(api, store, redis):
    await put(api, "race", "  schedule: [{cron: '*/15 * * * *'}, {cron: '*/30 * * * *'}]")
    clock = await clock_now(store)
    replicas = [Store(redis) for _ in range(8)]  # as many server processes on one Redis
    await asyncio.gather(*(scheduler.fire_due(s, clock.ms) for s in replicas))
    fired = 0
    for _ in range(6):
        clock.advance(15 * 60)
        fired += sum(await asyncio.gather(*(scheduler.fire_due(s, clock.ms) for s in replicas)))
    runs = await cron_runs(api, "race")
    assert fired == len(runs) == 6 + 3
    ticks = [(r["schedule_id"], r["scheduled_at"]) for r in runs]
    assert len(set(ticks)) == len(ticks)


async def test_after_downtime_latest_catches_up_with_one_run_for_the_newest_tick(api, store):
    await put(api, "latest", "  schedule: [{cron: '*/15 * * * *'}]")
    clock = await clock_now(store)
    await scheduler.fire_due(store, clock.ms)
    clock.advance(2 * 3600)  # no scheduler ran for two hours: eight ticks missed
    assert await scheduler.fire_due(store, clock.ms) == 1
    (run,) = await cron_runs(api, "latest")
    assert run["scheduled_at"] == clock.ms - clock.ms % QUARTER  # the newest
    clock.advance(15 * 60)
    assert await scheduler.fire_due(store, clock.ms) == 1  # and on it goes, once per tick


async def test_after_downtime_all_fires_every_missed_tick_up_to_the_bound(api, store):
    await put(api, "all", "  schedule: [{cron: '*/15 * * * *', catch-up: all}]")
    clock = await clock_now(store)
    await scheduler.fire_due(store, clock.ms)
    clock.advance(2 * 3600)
    assert await scheduler.fire_due(store, clock.ms) == 8
    ticks = [r["scheduled_at"] for r in await cron_runs(api, "all")]
    assert ticks == [clock.ms - clock.ms % QUARTER - i * QUARTER for i in range(7, -1, -1)]
    clock.advance(3 * 86_400)  # 288 ticks missed: only the newest MAX_CATCH_UP_RUNS start
    assert await scheduler.fire_due(store, clock.ms) == MAX_CATCH_UP_RUNS
    ticks = [r["scheduled_at"] for r in await cron_runs(api, "all")][8:]
    assert ticks[-1] == clock.ms - clock.ms % QUARTER and ticks[0] == ticks[-1] - (MAX_CATCH_UP_RUNS - 1) * QUARTER


async def test_after_downtime_none_skips_the_missed_ticks_but_fires_on_time_ones(api, store):
    await put(api, "none", "  schedule: [{cron: '*/15 * * * *', catch-up: none}]")
    clock = await clock_now(store)
    await scheduler.fire_due(store, clock.ms)
    clock.advance(2 * 3600)
    clock.ms = clock.ms - clock.ms % QUARTER + 5 * 60 * 1000  # five minutes past the newest tick: late
    assert await scheduler.fire_due(store, clock.ms) == 0
    clock.ms += 10 * 60 * 1000 + 2000  # two seconds past the next tick: on time
    assert await scheduler.fire_due(store, clock.ms) == 1


async def test_a_changed_cron_counts_from_the_change_and_a_removed_schedule_stops(api, store):
    await put(api, "change", "  schedule: [{cron: '*/15 * * * *'}, {cron: '0 3 * * *'}]")
    clock = await clock_now(store)
    await scheduler.fire_due(store, clock.ms)
    await store.pause_schedule("change:1", True)
    clock.advance(60 * 60)  # four ticks of the first missed
    await put(api, "change", "  schedule: [{cron: '*/30 * * * *'}]")  # changed; the second removed
    assert [s["id"] for s in (await api.get("/api/schedules")).json()] == ["change:0"]
    assert (await api.get("/api/schedules/change:1")).status_code == 404
    # Ticks count from the change (Redis time, behind this clock): the
    # hour-old */30 ticks before it fire nothing.
    real = await store.now_ms()
    assert await scheduler.fire_due(store, real) == 0
    clock.ms = real + 30 * 60 * 1000
    assert await scheduler.fire_due(store, clock.ms) == 1
    (run,) = await cron_runs(api, "change")
    assert run["scheduled_at"] % (30 * 60 * 1000) == 0


async def test_a_paused_schedule_fires_nothing_and_resumed_does_not_catch_up(api, store):
    await put(api, "hold", "  schedule: [{cron: '*/15 * * * *'}]")
    clock = await clock_now(store)
    await scheduler.fire_due(store, clock.ms)
    resp = await api.post("/api/schedules/hold:0/pause")
    assert resp.status_code == 200 and resp.json()["paused"] and resp.json()["next_fire_at"] is None
    assert (await api.post("/api/schedules/hold:0/pause")).json()["paused"]  # again: a no-op
    clock.advance(2 * 3600)
    assert await scheduler.fire_due(store, clock.ms) == 0
    resumed = (await api.post("/api/schedules/hold:0/resume")).json()
    assert not resumed["paused"] and resumed["next_fire_at"] is not None
    # resumed, its ticks count from the resume (Redis time): the paused ones never fire
    real = await store.now_ms()
    assert await scheduler.fire_due(store, real) == 0
    assert await scheduler.fire_due(store, real + QUARTER + 1000) == 1
    assert (await api.post("/api/schedules/nope:0/resume")).status_code == 404


async def test_a_deleted_workflow_takes_its_schedules_along(api, store):
    await put(api, "gone", "  schedule: [{cron: '*/15 * * * *'}]")
    clock = await clock_now(store)
    await scheduler.fire_due(store, clock.ms)
    assert (await api.delete("/api/workflows/gone")).status_code == 204
    assert (await api.get("/api/schedules")).json() == []
    clock.advance(3600)
    assert await scheduler.fire_due(store, clock.ms) == 0
    assert not await store.redis.zcard(store.key("schedq"))


async def test_overlap_skip_skips_a_tick_while_the_previous_run_goes_on(api, store):
    await put(api, "slow", "  schedule: [{cron: '*/15 * * * *', overlap: skip}]")
    clock = await clock_now(store)
    await scheduler.fire_due(store, clock.ms)
    clock.advance(15 * 60)
    assert await scheduler.fire_due(store, clock.ms) == 1  # its run is queued: nobody claims it
    clock.advance(15 * 60)
    assert await scheduler.fire_due(store, clock.ms) == 0
    (schedule,) = (await api.get("/api/schedules")).json()
    assert schedule["ticks_skipped"] == 1 and schedule["runs_started"] == 1
    (run,) = await cron_runs(api, "slow")
    await api.post(f"/api/runs/{run['run_id']}/cancel")
    clock.advance(15 * 60)
    assert await scheduler.fire_due(store, clock.ms) == 1


async def test_a_scheduled_run_gets_the_declared_inputs_defaults(api, store):
    await put(api, "typed", "  schedule: [{cron: '*/15 * * * *'}]\n  workflow_dispatch:\n    inputs:\n"
              "      env: {type: choice, options: [dev, prod], default: prod}\n"
              "      dry: {type: boolean, default: true}\n      n: {type: number, default: 3}\n"
              "      note: {}\n")
    clock = await clock_now(store)
    await scheduler.fire_due(store, clock.ms)
    clock.advance(15 * 60)
    await scheduler.fire_due(store, clock.ms)
    (run,) = await cron_runs(api, "typed")
    assert run["inputs"] == {"env": "prod", "dry": True, "n": 3, "note": ""}


async def test_schedules_live_on_stored_definitions_only(api):
    doc = "on: {schedule: [{cron: '0 3 * * *'}]}\njobs: {a: {run: x}}\n"
    resp = await api.post("/api/workflows", content=doc, headers=YAML)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_workflow"
    assert "one-off" in resp.json()["error"]["message"] and "PUT" in resp.json()["error"]["message"]
    assert resp.json()["error"]["details"]["problems"][0]["field"] == "on.schedule"
    bad = await api.put("/api/workflows/x", content="on: {schedule: [{cron: '0 25 * * *'}]}\njobs: {a: {run: x}}\n",
                        headers=YAML)
    assert bad.status_code == 422
    problem = bad.json()["error"]["details"]["problems"][0]
    assert (problem["field"], problem["message"], problem["line"]) == (
        "on.schedule[0].cron", "invalid cron expression '0 25 * * *': bad hour", 1)
    assert (await api.get("/api/schedules")).json() == []


async def test_the_listing_shows_the_next_fire_time_in_the_schedules_time_zone(api, store):
    await put(api, "berlin", "  schedule: [{cron: '0 9 * * *', timezone: Europe/Berlin, catch-up: none}]")
    (schedule,) = (await api.get("/api/schedules")).json()
    assert schedule["timezone"] == "Europe/Berlin" and schedule["catch_up"] == "none"
    assert schedule["overlap"] == "allow" and not schedule["paused"]
    from datetime import datetime
    from zoneinfo import ZoneInfo

    local = datetime.fromtimestamp(schedule["next_fire_at"] / 1000, ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (9, 0)
    assert schedule["next_fire_at"] > await store.now_ms()
    assert (await api.get("/api/schedules", params={"workflow_id": "nope"})).status_code == 404
    assert (await api.get("/api/schedules/berlin:0")).json() == schedule


async def test_one_broken_schedule_leaves_the_others_to_fire(api, store, caplog):
    await put(api, "broken", "  schedule: [{cron: '*/15 * * * *'}]")
    await put(api, "fine", "  schedule: [{cron: '*/15 * * * *'}]")
    # a schedule as no submit would store it (data from elsewhere, a bug)
    await store.redis.hset(store.key("sched", "broken:0"), "cron", "not a cron")
    clock = await clock_now(store)
    clock.advance(15 * 60)
    broken: set = set()
    assert await scheduler.fire_due(store, clock.ms, broken) == 1
    assert await scheduler.fire_due(store, clock.ms + 1, broken) == 0
    assert [r.getMessage() for r in caplog.records if "could not be fired" in r.getMessage()] == [
        "schedule broken:0 could not be fired"]  # once, not every pass
    assert len(await cron_runs(api, "fine")) == 1


async def test_a_workflow_file_with_a_schedule_fires_and_loading_it_again_changes_nothing(api, store, tmp_path):
    from server.workflow_files import load_directory

    (tmp_path / "nightly.yml").write_text("on: {schedule: [{cron: '*/15 * * * *'}]}\njobs: {a: {run: x}}\n")
    await load_directory(store, tmp_path)
    clock = await clock_now(store)
    await scheduler.fire_due(store, clock.ms)
    clock.advance(15 * 60)
    assert await scheduler.fire_due(store, clock.ms) == 1
    await load_directory(store, tmp_path)  # another replica starting: the same file, the same version
    (schedule,) = (await api.get("/api/schedules")).json()
    assert schedule["runs_started"] == 1 and schedule["last_fired_at"] is not None
    assert await scheduler.fire_due(store, clock.ms) == 0


async def test_a_workflow_counts_its_schedules_and_each_names_its_workflow(api):
    """What the dashboard needs to show schedules beside their workflows:
    the workflow listing says how many each has, and each schedule carries
    its workflow's name (which the submitter wrote: shown as text)."""
    name = "<b>nightly</b>"
    await put(api, "two", "  schedule: [{cron: '0 3 * * *'}, {cron: '0 4 * * *'}]", f"name: '{name}'\n")
    await put(api, "none", "  workflow_dispatch: {}")
    by_id = {w["id"]: w for w in (await api.get("/api/workflows")).json()}
    assert (by_id["two"]["schedules"], by_id["none"]["schedules"]) == (2, 0)
    assert (await api.get("/api/workflows/two")).json()["schedules"] == 2
    listed = (await api.get("/api/schedules")).json()
    assert [(s["id"], s["workflow_name"]) for s in listed] == [("two:0", name), ("two:1", name)]
    assert (await api.get("/api/schedules/two:1")).json()["workflow_name"] == name
    await put(api, "two", "  schedule: [{cron: '0 3 * * *'}]", "name: renamed\n")
    assert (await api.get("/api/workflows/two")).json()["schedules"] == 1
    assert [s["workflow_name"] for s in (await api.get("/api/schedules")).json()] == ["renamed"]


async def test_a_ticks_run_gets_its_run_name(api, store):
    await put(api, "named", "  schedule: [{cron: '*/15 * * * *'}]",
              "run-name: 'nightly ${{ run.triggered_by }} #${{ run.number }}'\n")
    clock = await clock_now(store)
    await scheduler.fire_due(store, clock.ms)
    (schedule,) = (await api.get("/api/schedules")).json()
    clock.ms = schedule["next_fire_at"] + 1500
    assert await scheduler.fire_due(store, clock.ms) == 1
    (run,) = await cron_runs(api, "named")
    assert run["name"] == "nightly cron #1"
