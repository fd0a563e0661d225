"""Concurrency groups over HTTP, on both stores: GitHub's `concurrency:`
(one running, one waiting, the newest replacing the one waiting;
cancel-in-progress; `queue: max` in order) and Buildkite's `limit: N`, at
the workflow and the job level, across workflows, and Strait's per-run
`concurrency_key`."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from server import limits
from server.reaper import reap_once
from tests.test_api import assert_error
from tests.test_runs import as_layout_2, claim, finish, put, start

ROOT = Path(__file__).resolve().parent.parent


def doc(concurrency: str, jobs: str = "  a: {run: 'true'}\n") -> str:
    return f"concurrency: {concurrency}\njobs:\n{jobs}"


async def run_of(api, run_id: str) -> dict:
    resp = await api.get(f"/api/runs/{run_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def events(api, run_id: str, kind: str | None = None) -> list[dict]:
    found = (await api.get(f"/api/runs/{run_id}/events")).json()
    return [e for e in found if kind is None or e["type"] == kind]


async def drain(api, worker: str = "w", labels=()) -> list[tuple[str, str]]:
    """Claims and completes whatever can be claimed now, one at a time:
    (run, job) in the order they went."""
    done = []
    while (claimed := await claim(api, worker, labels)) is not None:
        done.append((claimed["job"]["run_id"], claimed["job"]["job_id"]))
        await finish(api, claimed)
    return done


async def group(api, name: str) -> dict:
    found = (await api.get("/api/concurrency-groups", params={"group": name})).json()["groups"]
    return found[0] if found else {"running": [], "waiting": []}


# ---- GitHub's default: one running, one waiting ---------------------------------------------


async def test_one_runs_one_waits_and_a_newer_run_replaces_the_waiting_one(api):
    await put(api, "deploy", doc("prod"))
    first, second = await start(api, "deploy"), await start(api, "deploy")
    assert first["concurrency_group"] == "prod" and first["waiting_for_group"] is None
    assert second["status"] == "queued" and second["waiting_for_group"] == "prod"
    assert second["job_counts"] == {"queued": 1}

    held = await claim(api)
    assert held["job"]["run_id"] == first["run_id"]
    assert await claim(api) is None, "the waiting run's jobs go to no worker"
    blocked = (await api.get(f"/api/runs/{second['run_id']}/jobs/a")).json()["blocked_by"]
    assert blocked["run_held"] == "concurrency_group"

    third = await start(api, "deploy")
    replaced = await run_of(api, second["run_id"])
    assert replaced["status"] == "cancelled" and replaced["waiting_for_group"] is None
    why = [e["detail"] for e in await events(api, second["run_id"], "group")]
    assert any(f"replaced by run {third['run_id']} in concurrency group prod" in d for d in why), why
    assert (await group(api, "prod"))["waiting"] == [
        {"run_id": third["run_id"], "job_id": None, "workflow_id": "deploy", "since_ms": None}]

    await finish(api, held)
    assert (await run_of(api, first["run_id"]))["status"] == "success"
    assert (await run_of(api, third["run_id"]))["waiting_for_group"] is None
    assert await drain(api) == [(third["run_id"], "a")]
    assert (await group(api, "prod")) == {"running": [], "waiting": []}, "an empty group is forgotten"
    kinds = [(e["status"], e["detail"]) for e in await events(api, third["run_id"], "group")]
    assert kinds == [("waiting", "waiting for concurrency group prod"), ("admitted", "concurrency group prod")]


async def test_cancel_in_progress_cancels_the_running_run_and_starts_at_once(api):
    await put(api, "ci", doc("{group: 'ci-${{ inputs.ref }}', cancel-in-progress: true}"))
    first = await start(api, "ci", inputs={"ref": "main"})
    running = await claim(api)
    other = await start(api, "ci", inputs={"ref": "dev"})  # another group: untouched
    second = await start(api, "ci", inputs={"ref": "main"})

    assert (await run_of(api, first["run_id"]))["status"] == "cancelled"
    beat = await api.post(f"/api/jobs/{running['lease']['lease_id']}/heartbeat", json={})
    assert beat.json()["cancelled"] is True, "the running job hears it was cancelled"
    why = (await run_of(api, first["run_id"]))["jobs"][0]["attempts"]
    detail = [e["detail"] for e in await events(api, first["run_id"], "job") if e["status"] == "cancelled"]
    assert detail == [f"cancelled by run {second['run_id']} (concurrency group ci-main, cancel-in-progress)"], why
    assert second["waiting_for_group"] is None and other["waiting_for_group"] is None
    assert sorted(await drain(api)) == sorted([(other["run_id"], "a"), (second["run_id"], "a")])


async def test_queue_max_waits_in_order(api):
    await put(api, "release", doc("{group: release, queue: max}"))
    runs = [(await start(api, "release"))["run_id"] for _ in range(5)]
    waiting = [m["run_id"] for m in (await group(api, "release"))["waiting"]]
    assert waiting == runs[1:]
    assert [r for r, _ in await drain(api)] == runs, "first in, first out; none replaced"
    assert [(await run_of(api, r))["status"] for r in runs] == ["success"] * 5


async def test_a_full_queue_turns_the_newcomer_away_cancelled(api):
    await put(api, "release", doc("{group: release, queue: max}"))
    runs = [(await start(api, "release"))["run_id"] for _ in range(limits.MAX_GROUP_PENDING + 1)]
    turned_away = await start(api, "release")
    assert turned_away["status"] == "cancelled"
    why = [e["detail"] for e in await events(api, turned_away["run_id"], "group")]
    assert why == [f"concurrency group release has {limits.MAX_GROUP_PENDING} waiting already (queue: max)"]
    assert len((await group(api, "release"))["waiting"]) == limits.MAX_GROUP_PENDING
    assert {(await run_of(api, r))["status"] for r in runs} == {"queued"}


async def test_limit_lets_n_run_at_once(api):
    await put(api, "load", doc("{group: load, limit: 3, queue: max}"))
    runs = [(await start(api, "load"))["run_id"] for _ in range(7)]
    first = [await claim(api) for _ in range(4)]
    assert first[3] is None and {c["job"]["run_id"] for c in first[:3]} == set(runs[:3])
    assert len((await group(api, "load"))["running"]) == 3
    await finish(api, first[1])
    nxt = await claim(api)
    assert nxt["job"]["run_id"] == runs[3] and await claim(api) is None
    for c in (first[0], first[2], nxt):
        await finish(api, c)
    assert [r for r, _ in await drain(api)] == runs[4:]


async def test_groups_span_workflows_and_ignore_case(api):
    await put(api, "web", doc("Deploy-Prod"))
    await put(api, "api", doc("deploy-prod"))
    web = await start(api, "web")
    api_run = await start(api, "api")
    assert api_run["waiting_for_group"] == "deploy-prod"
    assert [r for r, _ in await drain(api)] == [web["run_id"], api_run["run_id"]]


async def test_a_group_rendered_empty_is_no_group(api):
    await put(api, "ci", doc("\"${{ inputs.lock }}\""))
    one, two = await start(api, "ci"), await start(api, "ci")
    assert one["concurrency_group"] is None and two["waiting_for_group"] is None
    locked = await start(api, "ci", inputs={"lock": "x"})
    assert locked["concurrency_group"] == "x"
    assert len(await drain(api)) == 3


async def test_a_group_that_cannot_render_refuses_the_start_naming_it(api):
    await put(api, "ci", doc("\"${{ fromJSON(inputs.cfg).lock }}\""))
    resp = await api.post("/api/workflows/ci/runs", json={"inputs": {"cfg": "not json"}})
    assert_error(resp, 422, "invalid_concurrency_group")
    assert resp.json()["error"]["details"]["field"] == "concurrency.group"
    assert (await api.get("/api/workflows/ci/runs")).json()["runs"] == [], "nothing was started"
    long = await api.post("/api/workflows/ci/runs", json={"inputs": {"cfg": '{"lock": "' + "x" * 300 + '"}'}})
    assert_error(long, 422, "invalid_concurrency_group")
    assert "at most 256" in long.json()["error"]["message"]


async def test_the_run_context_names_the_run(api):
    await put(api, "ci", doc("\"${{ run.workflow }}-${{ run.triggered_by }}-${{ run.tags.branch }}\""))
    run = await start(api, "ci", triggered_by="cli", tags={"branch": "main"})
    assert run["concurrency_group"] == "ci-cli-main"
    own = await put(api, "solo", doc("\"${{ run.id }}\""))
    assert own["id"] == "solo"
    one, two = await start(api, "solo"), await start(api, "solo")
    assert one["concurrency_group"] == one["run_id"] and two["waiting_for_group"] is None


async def test_a_rate_limit_lets_n_in_per_window(app, api):
    await put(api, "sync", doc("{group: partner-api, limit: 2 per 1h, queue: max}"))
    runs = [(await start(api, "sync"))["run_id"] for _ in range(4)]
    assert [(await run_of(api, r))["waiting_for_group"] for r in runs] == [None, None, "partner-api", "partner-api"]
    assert [r for r, _ in await drain(api)] == runs[:2]
    assert (await run_of(api, runs[2]))["waiting_for_group"] == "partner-api", "a rate, not a count at once"
    listed = await group(api, "partner-api")
    assert (listed["limit"], listed["per_secs"], len(listed["waiting"])) == (2, 3600, 2)
    store = app.state.store
    await reap_once(store)
    assert (await run_of(api, runs[2]))["waiting_for_group"] == "partner-api"
    # an hour on: the admissions leave the window, and the reaper lets the next in
    window = store.prefix + "cgr:partner-api"
    await store.redis.zadd(window, {m: 0 for m in await store.redis.zrange(window, 0, -1)})
    await store.redis.zadd(store.prefix + "cgdue", {"partner-api": 0})
    await reap_once(store)
    assert [(await run_of(api, r))["waiting_for_group"] for r in runs[2:]] == [None, None]
    assert [r for r, _ in await drain(api)] == runs[2:]


# ---- jobs ---------------------------------------------------------------------------------------

JOB_LEVEL = """
jobs:
  build: {run: make}
  deploy:
    needs: build
    run: make deploy
    concurrency: {group: "deploy-${{ inputs.env }}", queue: max}
"""


async def test_a_job_level_group_holds_only_that_job(api):
    await put(api, "app", JOB_LEVEL)
    one, two = await start(api, "app", inputs={"env": "prod"}), await start(api, "app", inputs={"env": "prod"})
    builds = [await claim(api), await claim(api)]
    assert {c["job"]["job_id"] for c in builds} == {"build"}, "ungrouped jobs run side by side"
    for c in builds:
        await finish(api, c)
    deploy = await claim(api)
    assert deploy["job"]["job_id"] == "deploy" and await claim(api) is None
    waiting = deploy["job"]["run_id"] == one["run_id"] and two["run_id"] or one["run_id"]
    view = (await api.get(f"/api/runs/{waiting}/jobs/deploy")).json()
    assert view["status"] == "queued" and view["waiting_for_group"] == "deploy-prod"
    assert view["blocked_by"]["concurrency_group"] == "deploy-prod"
    assert (await run_of(api, waiting))["jobs"][1]["waiting_for_group"] == "deploy-prod"
    assert (await group(api, "deploy-prod"))["waiting"][0] == {
        "run_id": waiting, "job_id": "deploy", "workflow_id": "app", "since_ms": None}
    await finish(api, deploy)
    assert await drain(api) == [(waiting, "deploy")]
    assert [e["status"] for e in await events(api, waiting, "group")] == ["waiting", "admitted"]


async def test_a_job_keeps_its_place_through_its_retries(api):
    await put(api, "app", "jobs:\n  a: {run: x, retries: 1, concurrency: lock}\n")
    first, second = await start(api, "app"), await start(api, "app")
    claimed = await claim(api)
    await finish(api, claimed, ok=False, retryable=True)
    again = await claim(api)
    assert again["job"]["run_id"] == first["run_id"] and again["job"]["attempt"] == 1
    await finish(api, again)
    assert await drain(api) == [(second["run_id"], "a")]


async def test_cancelling_a_member_lets_the_next_one_in(api):
    await put(api, "deploy", doc("{group: prod, queue: max}"))
    a, b, c = [await start(api, "deploy") for _ in range(3)]
    assert (await api.post(f"/api/runs/{b['run_id']}/cancel")).status_code == 202
    assert [m["run_id"] for m in (await group(api, "prod"))["waiting"]] == [c["run_id"]]
    assert (await api.post(f"/api/runs/{a['run_id']}/cancel")).status_code == 202
    assert (await run_of(api, c["run_id"]))["waiting_for_group"] is None
    assert await drain(api) == [(c["run_id"], "a")]


async def test_a_retried_run_asks_for_its_place_again(api):
    await put(api, "deploy", doc("{group: prod, queue: max}"))
    first = await start(api, "deploy")
    failed = await claim(api)
    await finish(api, failed, ok=False)
    second = await start(api, "deploy")
    holder = await claim(api)
    assert holder["job"]["run_id"] == second["run_id"]
    assert (await api.post(f"/api/runs/{first['run_id']}/retry")).status_code == 202
    assert (await run_of(api, first["run_id"]))["waiting_for_group"] == "prod"
    assert await claim(api) is None
    await finish(api, holder)
    assert await drain(api) == [(first["run_id"], "a")]


# ---- Strait's per-run key --------------------------------------------------------------------------


async def test_a_concurrency_key_at_start_groups_runs_in_order(api):
    await put(api, "task", "jobs:\n  a: {run: 'true'}\n")
    keyed = [await start(api, "task", concurrency_key="customer-42") for _ in range(3)]
    free = await start(api, "task")
    assert keyed[0]["concurrency_group"] == "customer-42" and keyed[2]["waiting_for_group"] == "customer-42"
    assert free["concurrency_group"] is None
    order = [r for r, _ in await drain(api)]
    assert order[:2] == [keyed[0]["run_id"], free["run_id"]] and order[2:] == [k["run_id"] for k in keyed[1:]]


async def test_a_concurrency_key_takes_the_workflows_group_settings(api):
    await put(api, "task", doc("{group: fallback, limit: 2, queue: max}"))
    runs = [await start(api, "task", concurrency_key="k") for _ in range(3)]
    assert [r["concurrency_group"] for r in runs] == ["k"] * 3
    assert [r["waiting_for_group"] for r in runs] == [None, None, "k"]
    bad = await api.post("/api/workflows/task/runs", json={"concurrency_key": "a\nb"})
    assert_error(bad, 422, "invalid_body")


# ---- races -----------------------------------------------------------------------------------------


async def test_many_starts_and_claims_at_once_never_pass_the_limit(api):
    await put(api, "race", doc("{group: race, limit: 2, queue: max}", "  a: {run: 'true'}\n  b: {run: 'true', needs: a}\n"))
    started = await asyncio.gather(*(start(api, "race") for _ in range(24)))
    assert len({r["run_id"] for r in started}) == 24
    seen = 0

    async def worker(name: str) -> None:
        nonlocal seen
        idle = 0
        while idle < 3:
            claimed = await claim(api, name)
            if claimed is None:
                idle += 1
                await asyncio.sleep(0)
                continue
            idle = 0
            running = (await group(api, "race"))["running"]
            seen = max(seen, len(running))
            await finish(api, claimed)

    while True:
        await asyncio.gather(*(worker(f"w{i}") for i in range(6)))
        runs = [await run_of(api, r["run_id"]) for r in started]
        if all(r["status"] == "success" for r in runs):
            break
    assert 1 <= seen <= 2
    assert max_overlap(runs) <= 2


def max_overlap(runs: list[dict]) -> int:
    """The most runs running at once, from their own records: each from its
    first claim to its finish, a finish before a start at the same moment."""
    edges = sorted([(r["started_at"], 1) for r in runs] + [(r["finished_at"], -1) for r in runs],
                   key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


# ---- what the scripts keep --------------------------------------------------------------------------


async def test_definitions_with_groups_kept_by_an_older_version_are_repacked_with_them(app, api):
    """Layout 2 kept a definition's job in four fields (s: spec, m:, n:,
    d:); upgrade packs each into one, a job's `concurrency:` inside its
    spec, and the workflow's (wcc) stays where it was: runs started after
    the upgrade meet both groups."""
    store = app.state.store
    version = (await put(api, "app", "concurrency: {group: 'app-${{ inputs.env }}', limit: 2}\n" + JOB_LEVEL))[
        "version"]
    d = store.key("def", "app", version)
    assert await store.redis.hget(d, "cc") == "1"
    packed = await as_layout_2(store, d)
    assert '"concurrency"' in packed["j:deploy"]
    assert await store.upgrade() == 3
    assert {f: v for f, v in (await store.redis.hgetall(d)).items() if f.startswith(("j:", "s:"))} == packed

    runs = [await start(api, "app", inputs={"env": "prod"}) for _ in range(3)]
    assert [r["waiting_for_group"] for r in runs] == [None, None, "app-prod"]
    assert {r["concurrency_group"] for r in runs} == {"app-prod"}
    builds = [await claim(api), await claim(api)]
    assert {c["job"]["job_id"] for c in builds} == {"build"} and await claim(api) is None
    for c in builds:
        await finish(api, c)
    deploy = await claim(api)
    assert deploy["job"]["job_id"] == "deploy" and await claim(api) is None, "the job's own group holds one"
    waiting = next(r["run_id"] for r in runs[:2] if r["run_id"] != deploy["job"]["run_id"])
    assert (await api.get(f"/api/runs/{waiting}/jobs/deploy")).json()["waiting_for_group"] == "deploy-prod"


def test_run_control_reads_job_records_through_their_defaults():
    """A job's record leaves out each field at its default (JOB_DEFAULTS in
    _keys.lua): a raw HGET of one reads nothing where the job has, say, no
    labels. Run control's scripts read job fields through jget/jmget only,
    and its `cg` is left out at its default, ''."""
    lua = ROOT / "server" / "lua"
    keys = (lua / "_keys.lua").read_text()
    assert re.search(r"cg = ''", keys.split("local JOB_DEFAULTS", 1)[1].split("}", 1)[0])
    raw = re.compile(r"redis\.call\('H(?:M)?GET', (?:jkey\(|k,|k\))")
    control = ["_control.lua", "_states.lua", *(f"{verb}_{what}.lua" for verb in ("pause", "resume")
                                                 for what in ("run", "workflow", "label"))]
    assert [name for name in control if raw.search((lua / name).read_text())] == []
    assert [p.name for p in lua.glob("*.lua") if re.search(r"redis\.call\('H(?:M)?GET', jkey\(", p.read_text())] == []


async def test_run_control_keeps_no_empty_fields(app, api):
    """What run control writes it removes when it is done with it: a
    definition without groups, a run let into its group, a run paused and
    resumed, a workflow resumed and a finished run keep none of its fields."""
    store = app.state.store
    plain = await put(api, "plain", "jobs:\n  a: {run: 'true'}\n")
    fields = set(await store.redis.hkeys(store.key("def", "plain", plain["version"])))
    assert not {"cc", "wcc"} & fields
    await put(api, "deploy", doc("prod"))
    first, second = await start(api, "deploy"), await start(api, "deploy")
    assert await store.redis.hget(store.key("run", second["run_id"]), "wait") == "group"
    assert (await api.post(f"/api/runs/{second['run_id']}/pause")).status_code == 200
    assert (await api.post(f"/api/runs/{second['run_id']}/resume")).status_code == 200
    assert (await api.post("/api/workflows/plain/pause", json={"new_runs": "queue"})).status_code == 200
    assert (await api.post("/api/workflows/plain/resume")).status_code == 200
    assert not {"paused", "paused_ms"} & set(await store.redis.hkeys(store.key("wf", "plain")))
    assert await drain(api) == [(first["run_id"], "a"), (second["run_id"], "a")]
    for run in (first, second):
        assert not {"wait", "paused", "paused_ms"} & set(await store.redis.hkeys(store.key("run", run["run_id"])))


def test_the_scripts_bound_a_waiting_queue_as_the_limits_say():
    lua = (ROOT / "server" / "lua" / "_control.lua").read_text()
    assert int(re.search(r"local MAX_GROUP_PENDING = (\d+)", lua).group(1)) == limits.MAX_GROUP_PENDING


def test_every_script_that_moves_jobs_carries_run_control():
    """_states.lua calls the hooks _control.lua fills in: a script with one
    and not the other would fail on its first grouped job. Every script
    that can settle a job or make one ready (those that carry _jobs.lua)
    carries run control; claim, kept to _states.lua, only moves a ready
    job to running, and promotes due backoffs, whose jobs entered their
    groups before their first attempt (to_ready asks a group only of a job
    outside it): it calls no transition that reaches a hook."""
    from server.scripts import _text, names, source

    moving = [name for name in names() if "local function cascade" in source(name)]
    assert {"complete", "fail", "reap", "start", "spawn", "approve", "retry_run", "decide"} <= set(moving)
    assert [name for name in moving if "function job_enters_group" not in source(name)] == []
    lean = [name for name in names() if "local function set_status" in source(name) and name not in moving]
    # claim_many runs claim whole (--- @use) for each job of a batch
    assert lean == ["claim", "claim_many"]
    for call in ("to_ready(", "enqueue(", "cancel_one(", "maybe_finish(", "hold_job("):
        assert call not in _text("claim"), call
