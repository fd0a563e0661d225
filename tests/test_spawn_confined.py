"""A job reaches no further than its run allows (issue 14, items 1 and 2).

The audit's reproductions, on both stores: a `linux` job spawning onto the
`deploy` fleet, a job starting runs of any stored workflow, a spawned job
running beside an approval gate nobody has passed, and child runs without
end. What a job may spawn comes from its stored definition (its labels and
its `spawn:` allow-list), never from what the spawn request says."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from server import limits
from server.definitions import DefinitionError, parse_workflow
from server.definitions.spawn import parse_spawn
from tests.test_api import assert_error
from tests.test_runs import YAML, claim, finish, put, start

# build (linux) -> approve (a gate) -> deploy (the exclusive deploy fleet);
# lint runs beside the gate and may spawn onto deploy.
RELEASE = """
name: release
jobs:
  build:
    runs-on: linux
    run: make
  approve:
    needs: build
    wait: {event: release.ok}
  deploy:
    needs: approve
    runs-on: deploy
    run: ./deploy
  lint:
    runs-on: linux
    run: lint
    spawn:
      labels: [deploy]
"""


def url(claimed: dict, call: str = "spawn") -> str:
    return f"/api/jobs/{claimed['lease']['lease_id']}/{call}"


async def job(api, run: str, job_id: str) -> dict:
    resp = await api.get(f"/api/runs/{run}/jobs/{job_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def claim_job(api, job_id: str, labels=("linux",), worker: str = "w") -> dict:
    """The next claim, which must be `job_id`."""
    got = await claim(api, worker, labels)
    assert got is not None and got["job"]["job_id"] == job_id, got
    return got


async def build_and_lint(api) -> tuple[dict, dict]:
    """The claims of a release run's two first jobs (build first: FIFO)."""
    return await claim_job(api, "build"), await claim_job(api, "lint")


async def release_run(api) -> str:
    await put(api, "release", RELEASE)
    return (await start(api, "release"))["run_id"]


async def run_jobs(api, run: str) -> list[str]:
    resp = await api.get(f"/api/runs/{run}")
    assert resp.status_code == 200, resp.text
    return sorted(j["id"] for j in resp.json()["jobs"])


# ---- labels ------------------------------------------------------------------------------------------------


async def test_a_linux_job_cannot_spawn_onto_the_deploy_fleet(api):
    run = await release_run(api)
    build = await claim_job(api, "build")
    before = await run_jobs(api, run)
    doc = {"jobs": {"inject": {"run": "echo INJECTED; env", "runs-on": "deploy"}}}
    err = assert_error(await api.post(url(build), json=doc), 403, "spawn_not_allowed")
    assert "'deploy'" in err["message"] and "build" in err["message"]
    assert err["details"] == {"field": "jobs.inject.labels", "job": "inject", "label": "deploy"}
    assert await run_jobs(api, run) == before
    assert await claim(api, "deployer", ["deploy"]) is None  # nothing reached the deploy fleet


async def test_labels_beyond_the_spawners_are_refused_even_beside_allowed_ones(api):
    run = await release_run(api)
    build = await claim_job(api, "build")
    doc = b"jobs:\n  ok:\n    runs-on: linux\n    run: a\n  wide:\n    runs-on: [linux, gpu]\n    run: b\n"
    err = assert_error(await api.post(url(build), content=doc, headers=YAML), 403, "spawn_not_allowed")
    assert err["details"]["label"] == "gpu"
    assert "ok" not in await run_jobs(api, run)  # the whole spawn is refused


async def test_a_spawned_job_may_carry_the_spawners_labels_or_fewer(api):
    run = await release_run(api)
    build = await claim_job(api, "build")
    doc = {"jobs": {"same": {"run": "a", "runs-on": "linux"}, "fewer": {"run": "b"}}}
    assert (await api.post(url(build), json=doc)).status_code == 201
    assert (await job(api, run, "same"))["required_labels"] == ["linux"]
    assert (await job(api, run, "fewer"))["required_labels"] == []


async def test_the_spawn_allow_list_permits_more_labels(api):
    run = await release_run(api)
    _, lint = await build_and_lint(api)
    doc = {"jobs": {"hotfix": {"run": "./hotfix", "runs-on": "deploy"}}, "wait": False}
    assert (await api.post(url(lint), json=doc)).status_code == 201
    assert (await job(api, run, "hotfix"))["required_labels"] == ["deploy"]


# ---- gates ------------------------------------------------------------------------------------------------


async def test_a_spawned_job_beside_an_unapproved_gate_waits_for_it(api):
    """The audit's reproduction: a job put work onto `deploy` while the run's
    approval gate was still unapproved."""
    run = await release_run(api)
    build, lint = await build_and_lint(api)
    doc = {"jobs": {"hotfix": {"run": "./hotfix", "runs-on": "deploy"}}}
    assert (await api.post(url(lint), json=doc)).status_code == 201
    await finish(api, lint)
    hotfix = await job(api, run, "hotfix")
    assert hotfix["status"] == "queued"
    assert hotfix["blocked_by"]["needs"] == [{"job": "approve", "status": "queued"}]
    assert await claim(api, "deployer", ["deploy"]) is None
    await finish(api, build)
    assert (await job(api, run, "approve"))["status"] == "waiting"  # at the gate now
    assert (await job(api, run, "hotfix"))["blocked_by"]["needs"] == [{"job": "approve", "status": "waiting"}]
    assert await claim(api, "deployer", ["deploy"]) is None
    resp = await api.post(f"/api/runs/{run}/jobs/approve/approve", json={"payload": {"by": "ann"}})
    assert resp.status_code == 202, resp.text
    got = {(await claim(api, "deployer", ["deploy"]))["job"]["job_id"],
           (await claim(api, "deployer", ["deploy"]))["job"]["job_id"]}
    assert got == {"hotfix", "deploy"}


async def test_a_job_spawned_upstream_of_a_gate_runs_before_it_and_the_gate_waits_for_it(api):
    """build is upstream of the gate: what it spawns (wait: true) joins the
    work before the approval, as a Buildkite pipeline upload before a block
    step does."""
    run = await release_run(api)
    build, _ = await build_and_lint(api)
    assert (await api.post(url(build), json={"jobs": {"test": {"run": "t", "runs-on": "linux"}}})).status_code == 201
    await finish(api, build)
    test = await claim_job(api, "test")
    gate = await job(api, run, "approve")
    assert gate["status"] == "queued" and {"job": "test", "status": "running"} in gate["blocked_by"]["needs"]
    await finish(api, test)
    assert (await job(api, run, "approve"))["status"] == "waiting"


async def test_a_job_spawned_without_wait_by_a_job_upstream_of_the_gate_waits_for_the_gate(api):
    run = await release_run(api)
    build = await claim_job(api, "build")
    doc = {"jobs": {"notify": {"run": "n", "runs-on": "linux"}}, "wait": False}
    assert (await api.post(url(build), json=doc)).status_code == 201
    await finish(api, build)
    assert (await job(api, run, "notify"))["blocked_by"]["needs"] == [{"job": "approve", "status": "waiting"}]
    assert (await claim(api, "w", ["linux"]))["job"]["job_id"] == "lint"
    assert await claim(api, "w", ["linux"]) is None


async def test_a_spawned_job_beside_a_gate_that_failed_is_skipped(api, store):
    from server.reaper import reap_once

    run = await release_run(api)
    build, lint = await build_and_lint(api)
    await finish(api, build)
    await store.redis.zadd(store.key("evtimeouts"), {f"{run}:approve": 0})  # nobody approved in time
    await reap_once(store)
    assert (await api.post(url(lint), json={"jobs": {"hotfix": {"run": "h", "runs-on": "deploy"}}})).status_code == 201
    hotfix = await job(api, run, "hotfix")
    assert (hotfix["status"], hotfix["error"]) == ("skipped", "upstream approve did not succeed")


async def test_a_passed_gate_holds_nothing_back(api):
    run = await release_run(api)
    build, lint = await build_and_lint(api)
    await finish(api, build)
    await api.post(f"/api/runs/{run}/jobs/approve/approve", json={})
    assert (await api.post(url(lint), json={"jobs": {"hotfix": {"run": "h", "runs-on": "deploy"}}})).status_code == 201
    assert (await job(api, run, "hotfix"))["status"] == "queued"
    got = {(await claim(api, "d", ["deploy"]))["job"]["job_id"], (await claim(api, "d", ["deploy"]))["job"]["job_id"]}
    assert got == {"hotfix", "deploy"}


async def test_a_spawned_job_that_names_the_gate_itself_waits_for_it_once(api):
    run = await release_run(api)
    build, lint = await build_and_lint(api)
    doc = {"jobs": {"hotfix": {"run": "h", "runs-on": "deploy", "needs": "approve"}}, "wait": False}
    assert (await api.post(url(lint), json=doc)).status_code == 201
    await finish(api, build)
    assert (await job(api, run, "hotfix"))["blocked_by"]["needs"] == [{"job": "approve", "status": "waiting"}]
    await api.post(f"/api/runs/{run}/jobs/approve/approve", json={})
    got = {(await claim(api, "d", ["deploy"]))["job"]["job_id"], (await claim(api, "d", ["deploy"]))["job"]["job_id"]}
    assert got == {"hotfix", "deploy"}


# ---- nested spawns -----------------------------------------------------------------------------------------


async def test_a_spawned_job_may_not_allow_itself_more_than_its_spawner_could(api):
    run = await release_run(api)
    build = await claim_job(api, "build")
    doc = {"jobs": {"sneaky": {"run": "s", "runs-on": "linux", "spawn": {"labels": ["deploy"]}}}}
    err = assert_error(await api.post(url(build), json=doc), 403, "spawn_not_allowed")
    assert err["details"] == {"field": "jobs.sneaky.spawn.labels", "job": "sneaky", "label": "deploy"}
    doc = {"jobs": {"sneaky": {"run": "s", "runs-on": "linux", "spawn": {"workflows": ["release"]}}}}
    err = assert_error(await api.post(url(build), json=doc), 403, "spawn_not_allowed")
    assert err["details"] == {"field": "jobs.sneaky.spawn.workflows", "job": "sneaky", "workflow_id": "release"}
    assert "sneaky" not in await run_jobs(api, run)


async def test_a_nested_spawn_is_confined_by_the_spawned_jobs_own_spec(api):
    run = await release_run(api)
    build, lint = await build_and_lint(api)
    await finish(api, build)
    await api.post(f"/api/runs/{run}/jobs/approve/approve", json={})  # no gate holds these back
    doc = {"jobs": {"plain": {"run": "p", "runs-on": "linux"},
                    "relay": {"run": "r", "runs-on": "linux", "spawn": {"labels": ["deploy"]}}}}
    assert (await api.post(url(lint), json=doc)).status_code == 201
    await finish(api, lint)
    # spawned jobs do not inherit lint's allow-list: plain has none
    plain, relay = await claim_job(api, "plain"), await claim_job(api, "relay")
    err = assert_error(await api.post(url(plain), json={"jobs": {"x": {"run": "x", "runs-on": "deploy"}}}), 403,
                       "spawn_not_allowed")
    assert err["details"]["label"] == "deploy"
    assert (await api.post(url(relay), json={"jobs": {"y": {"run": "y", "runs-on": "deploy"}}})).status_code == 201
    assert (await job(api, run, "y"))["required_labels"] == ["deploy"]


# ---- child runs -------------------------------------------------------------------------------------------

TREE = """
name: tree
jobs:
  grow:
    run: grow
    spawn:
      workflows: [tree, leaf]
"""


async def test_a_child_run_of_a_workflow_not_in_the_allow_list_is_refused(api):
    await put(api, "ci", "jobs:\n  c: {run: c}\n")
    run = await release_run(api)
    build = await claim_job(api, "build")
    err = assert_error(await api.post(url(build), json={"workflow_id": "ci"}), 403, "spawn_not_allowed")
    assert "'ci'" in err["message"]
    assert err["details"] == {"field": "workflow_id", "workflow_id": "ci"}
    # the same answer whether or not the workflow exists: a job learns nothing of others
    err = assert_error(await api.post(url(build), json={"workflow_id": "nope"}), 403, "spawn_not_allowed")
    assert (await api.get(f"/api/runs/{run}/children")).json() == []
    assert (await api.get("/api/workflows/ci")).json()["runs"] == 0


async def test_a_listed_workflow_starts_as_a_child_at_depth_one(api):
    await put(api, "leaf", "jobs:\n  l: {run: l}\n")
    await put(api, "tree", TREE)
    root = (await start(api, "tree"))["run_id"]
    grow = await claim_job(api, "grow", labels=())
    child = (await api.post(url(grow), json={"workflow_id": "leaf"})).json()["child_run_id"]
    view = (await api.get(f"/api/runs/{child}")).json()
    assert (view["parent_run_id"], view["depth"]) == (root, 1)
    assert (await api.get(f"/api/runs/{root}")).json()["depth"] == 0


async def test_the_41st_child_run_is_refused(api):
    await put(api, "leaf", "jobs:\n  l: {run: l}\n")
    await put(api, "tree", TREE)
    root = (await start(api, "tree"))["run_id"]
    grow = await claim_job(api, "grow", labels=())
    assert limits.MAX_CHILD_RUNS == 40
    for n in range(40):
        resp = await api.post(url(grow), json={"workflow_id": "leaf", "inputs": {"n": str(n)}})
        assert resp.status_code == 201, resp.text
    err = assert_error(await api.post(url(grow), json={"workflow_id": "leaf", "inputs": {"n": "40"}}), 422,
                       "limit_exceeded")
    assert err["details"] == {"field": "workflow_id", "limit": 40, "limit_name": "MAX_CHILD_RUNS"}
    # a resent spawn of one it started is still answered with that run
    again = await api.post(url(grow), json={"workflow_id": "leaf", "inputs": {"n": "3"}})
    assert again.status_code == 201, again.text
    assert len((await api.get(f"/api/runs/{root}/children")).json()) == 40
    assert (await api.get("/api/workflows/leaf")).json()["runs"] == 40


async def test_concurrent_child_spawns_stop_at_the_limit_exactly(api, monkeypatch):
    monkeypatch.setattr(limits, "MAX_CHILD_RUNS", 5)
    await put(api, "leaf", "jobs:\n  l: {run: l}\n")
    await put(api, "tree", TREE)
    root = (await start(api, "tree"))["run_id"]
    grow = await claim_job(api, "grow", labels=())
    answers = await asyncio.gather(*(api.post(url(grow), json={"workflow_id": "leaf", "inputs": {"n": str(n)}})
                                     for n in range(12)))
    assert sorted(a.status_code for a in answers) == [201] * 5 + [422] * 7
    assert len((await api.get(f"/api/runs/{root}/children")).json()) == 5


async def test_a_self_spawning_workflow_stops_at_the_depth_limit(api):
    await put(api, "tree", TREE)
    run = (await start(api, "tree"))["run_id"]
    chain = [run]
    while True:
        grow = await claim_job(api, "grow", labels=())
        resp = await api.post(url(grow), json={"workflow_id": "tree"})
        await finish(api, grow)
        if resp.status_code != 201:
            break
        chain.append(resp.json()["child_run_id"])
    err = assert_error(resp, 422, "limit_exceeded")
    assert err["details"] == {"field": "workflow_id", "limit": limits.MAX_RUN_DEPTH, "limit_name": "MAX_RUN_DEPTH"}
    assert len(chain) == limits.MAX_RUN_DEPTH + 1
    depths = [(await api.get(f"/api/runs/{r}")).json()["depth"] for r in chain]
    assert depths == list(range(limits.MAX_RUN_DEPTH + 1))
    assert await claim(api) is None


async def test_a_run_tree_is_bounded_however_it_branches(api, monkeypatch):
    monkeypatch.setattr(limits, "MAX_RUN_TREE", 6)
    await put(api, "tree", TREE)
    root = (await start(api, "tree"))["run_id"]
    started, refused = 0, None
    while (grow := await claim(api)) is not None:
        for n in range(2):  # each run tries two children: 2, 4, 8, ... without the bound
            resp = await api.post(url(grow), json={"workflow_id": "tree", "inputs": {"n": str(n)}})
            if resp.status_code == 201:
                started += 1
            else:
                refused = resp
        await finish(api, grow)
    assert started == 6
    err = assert_error(refused, 422, "limit_exceeded")
    assert err["details"] == {"field": "workflow_id", "limit": 6, "limit_name": "MAX_RUN_TREE"}
    assert (await api.get("/api/workflows/tree")).json()["runs"] == 7
    assert len((await api.get(f"/api/runs/{root}/children")).json()) == 2


async def test_a_tree_outliving_its_purged_root_grows_without_bringing_it_back(api, store):
    from server.reaper import reap_once

    await put(api, "tree", TREE)
    root = (await start(api, "tree"))["run_id"]
    grow = await claim_job(api, "grow", labels=())
    child = (await api.post(url(grow), json={"workflow_id": "tree"})).json()["child_run_id"]
    await finish(api, grow)
    await store.redis.zadd(store.key("finished"), {root: 0})  # its retention is up
    await reap_once(store)
    assert (await api.get(f"/api/runs/{root}")).status_code == 404
    grow = await claim_job(api, "grow", labels=())
    grandchild = (await api.post(url(grow), json={"workflow_id": "tree"})).json()["child_run_id"]
    assert (await api.get(f"/api/runs/{grandchild}")).json()["depth"] == 2
    assert (await api.get(f"/api/runs/{grandchild}")).json()["parent_run_id"] == child
    assert not await store.redis.exists(store.key("run", root))


# ---- with auth: the run token and the worker token --------------------------------------------------------


async def test_neither_the_run_token_nor_the_worker_token_spawns_beyond_the_job(auth_api):
    from tests.test_auth import bearer, make_token

    submit = bearer((await make_token(auth_api, "submit", name="ci"))["token"])
    worker = bearer((await make_token(auth_api, "worker", name="linux-fleet"))["token"])
    resp = await auth_api.put("/api/workflows/release", content=RELEASE.encode(), headers={**YAML, **submit})
    assert resp.status_code == 201, resp.text
    await auth_api.put("/api/workflows/ci", content=b"jobs:\n  c: {run: c}\n", headers={**YAML, **submit})
    assert (await auth_api.post("/api/workflows/release/runs", json={}, headers=submit)).status_code == 201
    build = (await auth_api.post("/api/jobs/claim", json={"worker_id": "l1", "labels": ["linux"]},
                                 headers=worker)).json()
    assert build["job"]["job_id"] == "build"
    doc = {"jobs": {"inject": {"run": "env", "runs-on": "deploy"}}}
    for token in (bearer(build["lease"]["run_token"]), worker):
        assert_error(await auth_api.post(url(build), json=doc, headers=token), 403, "spawn_not_allowed")
        assert_error(await auth_api.post(url(build), json={"workflow_id": "ci"}, headers=token), 403,
                     "spawn_not_allowed")


# ---- the spawn: key ---------------------------------------------------------------------------------------


def parse(text: str):
    return parse_workflow(textwrap.dedent(text).encode(), "application/yaml")


def problems(text: str) -> list[dict]:
    with pytest.raises(DefinitionError) as info:
        parse(text)
    return info.value.problems


def test_the_spawn_key_is_read_in_both_shapes():
    spec = parse("""\
        jobs:
          plan:
            run: plan
            spawn: {labels: [deploy, gpu], workflows: ci}
        """)
    assert (spec.jobs[0].spawn.labels, spec.jobs[0].spawn.workflows) == (["deploy", "gpu"], ["ci"])
    seed = parse_workflow(b'{"name": "s", "jobs": [{"id": "plan", "command": "plan",'
                          b' "spawn": {"labels": ["deploy"]}}]}', "application/json")
    assert (seed.jobs[0].spawn.labels, seed.jobs[0].spawn.workflows) == (["deploy"], [])
    assert parse("jobs:\n  a: {run: a}\n").jobs[0].spawn is None


@pytest.mark.parametrize("value, field, words", [
    ("deploy", "jobs.plan.spawn", "must be a mapping"),
    ("{labels: ['bad label']}", "jobs.plan.spawn.labels[0]", "invalid label"),
    ("{workflows: ['no/such']}", "jobs.plan.spawn.workflows[0]", "invalid workflow id"),
    ("{workflow: [ci]}", "jobs.plan.spawn.workflow", "did you mean 'workflows'"),
    ("{labels: 3}", "jobs.plan.spawn.labels", "must be a string or a list of strings"),
])
def test_a_bad_spawn_key_is_refused_with_its_line_and_column(value, field, words):
    found = problems(f"""\
        jobs:
          plan:
            run: plan
            spawn: {value}
        """)
    assert any(p["field"] == field and words in p["message"] and p["line"] == 4 for p in found), found


def test_a_spawn_allow_list_is_bounded():
    many = ", ".join(f"w{n}" for n in range(limits.MAX_SPAWN_WORKFLOWS + 1))
    found = problems(f"jobs:\n  plan:\n    run: plan\n    spawn: {{workflows: [{many}]}}\n")
    assert found[0]["field"] == "jobs.plan.spawn.workflows"
    assert str(limits.MAX_SPAWN_WORKFLOWS) in found[0]["message"]


def test_a_gate_takes_no_spawn_key():
    found = problems("jobs:\n  hold:\n    wait: {event: go}\n    spawn: {labels: [x]}\n")
    assert found[0]["field"] == "jobs.hold.spawn" and "runs nothing on a worker" in found[0]["message"]


def test_a_spawn_document_may_give_its_jobs_a_spawn_key():
    doc = parse_spawn(b"jobs:\n  relay:\n    run: r\n    spawn: {labels: [deploy]}\n", "application/yaml", ["plan"])
    assert doc.jobs[0].spawn.labels == ["deploy"]
