"""Job conditions over HTTP, on both stores: `if:` decided once a job's
needs have settled, with GitHub's status functions (success(), failure(),
cancelled(), always()) and its implicit `success() &&`; skipped jobs
saying why; a run cancel that still runs its cleanup jobs;
continue-on-error; the workflow's env, defaults and run-name; and a
decision left behind by a process that died, made by the reaper."""

from __future__ import annotations

from server.reaper import reap_once
from tests.test_runs import claim, finish, put, start

NOTIFY = """
name: notify
jobs:
  build:
    run: make
  notify:
    needs: build
    if: failure()
    run: ./notify
  deploy:
    needs: build
    run: ./deploy
"""


async def run_view(api, run: str) -> dict:
    resp = await api.get(f"/api/runs/{run}")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def jobs_of(api, run: str) -> dict[str, dict]:
    return {j["id"]: j for j in (await run_view(api, run))["jobs"]}


async def statuses(api, run: str) -> dict[str, str]:
    return {job: j["status"] for job, j in (await jobs_of(api, run)).items()}


async def claim_job(api, job_id: str, worker: str = "w", labels=()) -> dict:
    got = await claim(api, worker, labels)
    assert got is not None and got["job"]["job_id"] == job_id, got
    return got


async def test_a_failure_job_runs_after_a_failure(api):
    await put(api, "notify", NOTIFY)
    run = (await start(api, "notify"))["run_id"]
    await finish(api, await claim_job(api, "build"), ok=False)
    assert await statuses(api, run) == {"build": "failure", "notify": "queued", "deploy": "skipped"}
    jobs = await jobs_of(api, run)
    assert jobs["deploy"]["error"] == "upstream build failed"
    await finish(api, await claim_job(api, "notify"))
    view = await run_view(api, run)
    assert view["status"] == "failure"
    assert {j["id"]: j["status"] for j in view["jobs"]} == {"build": "failure", "notify": "success",
                                                           "deploy": "skipped"}


async def test_a_failure_job_is_skipped_after_a_success(api):
    await put(api, "notify", NOTIFY)
    run = (await start(api, "notify"))["run_id"]
    await finish(api, await claim_job(api, "build"))
    assert await statuses(api, run) == {"build": "success", "notify": "skipped", "deploy": "queued"}
    assert (await jobs_of(api, run))["notify"]["error"] == "if: 'failure()' is false"
    await finish(api, await claim_job(api, "deploy"))
    assert (await run_view(api, run))["status"] == "success"


async def test_failure_reaches_down_the_chain_of_ancestors(api):
    await put(api, "chain", """
jobs:
  a: {run: x}
  b: {needs: a, run: x}
  c: {needs: b, if: failure(), run: x}
  d: {needs: b, if: always(), run: x}
  e: {needs: d, run: x}
""")
    run = (await start(api, "chain"))["run_id"]
    await finish(api, await claim_job(api, "a"), ok=False)
    # b is skipped (a failed); c's failure() sees a, an ancestor; d always runs
    assert await statuses(api, run) == {"a": "failure", "b": "skipped", "c": "queued", "d": "queued",
                                        "e": "queued"}
    first, second = await claim(api), await claim(api)
    assert {first["job"]["job_id"], second["job"]["job_id"]} == {"c", "d"}
    await finish(api, first)
    await finish(api, second)
    # e has no if: something upstream of d failed, so success() is false
    jobs = await jobs_of(api, run)
    assert jobs["e"]["status"] == "skipped" and jobs["e"]["error"] == "a job upstream of d failed"


async def test_a_condition_reads_needs_results_and_outputs_and_inputs(api):
    await put(api, "cond", """
jobs:
  plan: {run: x}
  yes:
    needs: plan
    if: ${{ needs.plan.outputs.go == 'yes' && inputs.env == 'prod' && needs.plan.result == 'success' }}
    run: x
  no:
    needs: plan
    if: needs.plan.outputs.go == 'no'
    run: x
""")
    run = (await start(api, "cond", inputs={"env": "prod"}))["run_id"]
    await finish(api, await claim_job(api, "plan"), outputs={"go": "yes"})
    assert await statuses(api, run) == {"plan": "success", "yes": "queued", "no": "skipped"}
    await finish(api, await claim_job(api, "yes"))
    assert (await run_view(api, run))["status"] == "success"


async def test_a_root_job_with_a_condition_is_decided_when_the_run_starts(api):
    await put(api, "root", """
jobs:
  deploy: {if: "inputs.deploy == 'true'", run: x}
  always: {run: x}
""")
    run = (await start(api, "root", inputs={"deploy": "false"}))["run_id"]
    assert await statuses(api, run) == {"deploy": "skipped", "always": "queued"}
    run = (await start(api, "root", inputs={"deploy": "true"}))["run_id"]
    assert await statuses(api, run) == {"deploy": "queued", "always": "queued"}


async def test_a_condition_that_cannot_be_evaluated_fails_the_job(api):
    await put(api, "bad", """
jobs:
  plan: {run: x}
  use:
    needs: plan
    if: fromJSON(needs.plan.outputs.flag)
    run: x
""")
    run = (await start(api, "bad"))["run_id"]
    await finish(api, await claim_job(api, "plan"), outputs={"flag": "not json"})
    job = (await jobs_of(api, run))["use"]
    assert job["status"] == "failure"
    assert job["error"].startswith("cannot evaluate the job's expressions: fromJSON")
    assert (await run_view(api, run))["status"] == "failure"
    dead = (await api.get("/api/dead-letters")).json()["items"]
    assert [(d["job_id"], d["run_id"]) for d in dead] == [("use", run)]


CLEANUP = """
jobs:
  build: {run: make}
  test: {needs: build, run: make test}
  cleanup:
    needs: test
    if: always()
    run: ./cleanup
  on-cancel:
    needs: test
    if: cancelled()
    run: ./say-cancelled
  report:
    needs: test
    if: ${{ !cancelled() }}
    run: ./report
"""


async def test_an_always_job_runs_after_a_cancel(api):
    await put(api, "cleanup", CLEANUP)
    run = (await start(api, "cleanup"))["run_id"]
    building = await claim_job(api, "build")
    assert (await api.post(f"/api/runs/{run}/cancel")).status_code == 202
    # build and test are cancelled; the jobs that ask are decided with cancelled() true
    assert await statuses(api, run) == {"build": "cancelled", "test": "cancelled", "cleanup": "queued",
                                        "on-cancel": "queued", "report": "skipped"}
    assert (await run_view(api, run))["status"] == "running"
    assert (await api.post(f"/api/jobs/{building['lease']['lease_id']}/complete", json={})).status_code == 409
    first, second = await claim(api), await claim(api)
    assert {first["job"]["job_id"], second["job"]["job_id"]} == {"cleanup", "on-cancel"}
    await finish(api, first)
    await finish(api, second)
    view = await run_view(api, run)
    assert view["status"] == "cancelled"
    assert {j["id"]: j["status"] for j in view["jobs"]} == {
        "build": "cancelled", "test": "cancelled", "cleanup": "success", "on-cancel": "success", "report": "skipped"}


async def test_a_cancelled_runs_cleanup_jobs_finish_it_and_a_second_cancel_forces(api):
    await put(api, "cleanup", CLEANUP)
    run = (await start(api, "cleanup"))["run_id"]
    assert (await api.post(f"/api/runs/{run}/cancel")).status_code == 202
    cleanup = await claim(api)
    second = await claim(api)
    await finish(api, cleanup)
    assert (await run_view(api, run))["status"] == "running"
    # the second cancel cancels what still runs
    assert (await api.post(f"/api/runs/{run}/cancel")).status_code == 202
    view = await run_view(api, run)
    assert view["status"] == "cancelled"
    assert {j["id"]: j["status"] for j in view["jobs"]}[second["job"]["job_id"]] == "cancelled"


async def test_cancelling_one_job_runs_what_asks_about_it(api):
    await put(api, "one", """
jobs:
  a: {run: x}
  b: {needs: a, run: x}
  c: {needs: a, if: always(), run: x}
  d: {needs: a, if: cancelled(), run: x}
""")
    run = (await start(api, "one"))["run_id"]
    assert (await api.post(f"/api/runs/{run}/jobs/a/cancel")).status_code == 202
    # cancelled() is about the run, which goes on
    assert await statuses(api, run) == {"a": "cancelled", "b": "skipped", "c": "queued", "d": "skipped"}


async def test_continue_on_error_lets_the_run_succeed(api):
    await put(api, "coe", """
jobs:
  flaky:
    continue-on-error: true
    run: ./flaky
  next:
    needs: flaky
    if: needs.flaky.result == 'success'
    run: x
""")
    run = (await start(api, "coe"))["run_id"]
    await finish(api, await claim_job(api, "flaky"), ok=False)
    jobs = await jobs_of(api, run)
    # the job failed; its conclusion, as needs.flaky.result says, is success (GitHub's)
    assert jobs["flaky"]["status"] == "failure" and jobs["flaky"]["continue_on_error"] is True
    assert jobs["next"]["status"] == "queued"
    got = await claim_job(api, "next")
    assert got["job"]["contexts"]["needs"] == {"flaky": {"result": "success", "outputs": {}}}
    await finish(api, got)
    assert (await run_view(api, run))["status"] == "success"


async def test_continue_on_error_as_an_expression(api):
    await put(api, "coe", """
jobs:
  maybe:
    continue-on-error: ${{ inputs.allow == 'yes' }}
    run: ./flaky
""")
    run = (await start(api, "coe", inputs={"allow": "yes"}))["run_id"]
    await finish(api, await claim_job(api, "maybe"), ok=False)
    assert (await run_view(api, run))["status"] == "success"
    run = (await start(api, "coe", inputs={"allow": "no"}))["run_id"]
    await finish(api, await claim_job(api, "maybe"), ok=False)
    assert (await run_view(api, run))["status"] == "failure"


async def test_workflow_env_defaults_and_run_name_reach_the_claim(api):
    await put(api, "wenv", """
name: release
run-name: Release ${{ inputs.version }} (#${{ run.number }})
env:
  STAGE: prod
  VERSION: v${{ inputs.version }}
defaults:
  run:
    shell: sh
    working-directory: app
jobs:
  build:
    env:
      STAGE: staging
    defaults:
      run:
        working-directory: src
    outputs:
      artifact: ${{ steps.pack.outputs.path }}
    steps:
      - run: make
      - id: pack
        if: ${{ success() && env.STAGE != '' }}
        run: make pack
        env:
          LEVEL: ${{ env.STAGE }}
        timeout-minutes: 5
        continue-on-error: true
""")
    started = await start(api, "wenv", inputs={"version": "1.2"})
    assert started["name"] == "Release 1.2 (#1)"
    got = await claim_job(api, "build")
    job = got["job"]
    assert job["env"] == {"STAGE": "staging", "VERSION": "v1.2"} and job["env_resolved"] is True
    assert job["defaults"] == {"shell": "sh", "working-directory": "src"}
    assert job["outputs"] == {"artifact": "${{ steps.pack.outputs.path }}"}
    assert job["steps"] == [{"name": "make", "run": "make"}, {"name": "make pack", "run": "make pack"}]
    assert job["step_options"] == [
        {}, {"id": "pack", "if": " success() && env.STAGE != '' ", "env": {"LEVEL": "${{ env.STAGE }}"},
             "timeout-minutes": 5, "continue-on-error": True}]
    contexts = job["contexts"]
    assert contexts["env"] == {"STAGE": "staging", "VERSION": "v1.2"}
    assert contexts["inputs"] == {"version": "1.2"}
    assert contexts["run"] == {"id": started["run_id"], "number": 1, "workflow": "wenv", "triggered_by": "api",
                               "tags": {}, "attempt": 1}
    assert contexts["strategy"] == {"fail-fast": True, "job-index": 0, "job-total": 1, "max-parallel": 1}
    assert contexts["matrix"] is None
    runs = (await api.get("/api/runs")).json()["runs"]
    assert runs[0]["name"] == "Release 1.2 (#1)"


async def test_a_static_workflow_env_is_merged_and_the_fast_path_kept(api, store):
    await put(api, "static", """
env: {A: one, B: two}
jobs:
  build: {run: x}
  use:
    needs: build
    env:
      B: ${{ needs.build.outputs.b }}
    run: x
""")
    run = (await start(api, "static"))["run_id"]
    await finish(api, await claim_job(api, "build"), outputs={"b": "from build"})
    job = (await claim_job(api, "use"))["job"]
    # not decided: the worker resolves the needs output itself, as before
    assert job["env"] == {"A": "one", "B": "${{ needs.build.outputs.b }}"} and job["env_resolved"] is False
    assert job["contexts"]["env"] == {"A": "one", "B": "from build"}
    assert await store.redis.zcard(store.prefix + "deciding") == 0
    assert run


async def test_a_decision_left_by_a_dead_process_is_made_by_the_reaper(api, store):
    """The script that settles a need and the decision are two steps: a
    process that dies between them leaves the job `deciding`, which the
    reaper decides once it has been there DECIDE_GRACE_MS."""
    await put(api, "crash", NOTIFY)
    run = (await start(api, "crash"))["run_id"]
    got = await claim_job(api, "build")
    # the complete script alone, as if the process died before deciding
    reply, pending = await store.scripts.call_deciding(
        "fail", got["lease"]["lease_id"], "*", "boom", 0, "d", 60, "", "")
    assert reply[0] == "ok" and pending == [(run, "notify")]
    view = await api.get(f"/api/runs/{run}/jobs/notify")
    assert view.json()["status"] == "queued" and view.json()["blocked_by"]["deciding"] is True
    await reap_once(store)  # too soon: it leaves it to the process that may still be deciding
    assert (await api.get(f"/api/runs/{run}/jobs/notify")).json()["blocked_by"]["deciding"] is True
    await store.redis.zadd(store.prefix + "deciding", {f"{run}:notify": 0})
    await reap_once(store)
    assert await statuses(api, run) == {"build": "failure", "notify": "queued", "deploy": "skipped"}
    assert (await api.get(f"/api/runs/{run}/jobs/notify")).json()["blocked_by"]["deciding"] is False
    # deciding again changes nothing
    assert await store.decide_job(run, "notify") == []
    await finish(api, await claim_job(api, "notify"))
    assert (await run_view(api, run))["status"] == "failure"


async def test_a_retried_run_decides_again(api):
    await put(api, "retry", NOTIFY)
    run = (await start(api, "retry"))["run_id"]
    await finish(api, await claim_job(api, "build"), ok=False)
    await finish(api, await claim_job(api, "notify"))
    assert (await run_view(api, run))["status"] == "failure"
    assert (await api.post(f"/api/runs/{run}/retry")).status_code == 202
    assert await statuses(api, run) == {"build": "queued", "notify": "success", "deploy": "queued"}
    await finish(api, await claim_job(api, "build"))
    await finish(api, await claim_job(api, "deploy"))
    view = await run_view(api, run)
    assert view["status"] == "success"
    assert (await api.get(f"/api/runs/{run}")).json()["jobs"][0]["attempt"] == 1
