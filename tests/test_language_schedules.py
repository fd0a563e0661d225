"""Where the workflow language meets when runs start (issue 17): typed
dispatch inputs in expressions, a delayed run whose roots must be decided,
and a delayed run cancelled before it starts. Over HTTP on both stores."""

from __future__ import annotations

from tests.test_conditions import claim_job, jobs_of, run_view, statuses
from tests.test_delayed_runs import due_now, started
from tests.test_runs import finish, put

TYPED = """
name: typed
run-name: deploy ${{ inputs.count }} to ${{ inputs.target }}${{ inputs.dry && ' (dry run)' || '' }}
on:
  workflow_dispatch:
    inputs:
      count: {type: number, default: 3}
      dry: {type: boolean, default: false}
      target: {type: choice, options: [staging, prod], default: staging}
jobs:
  deploy:
    if: inputs.count > 2 && !inputs.dry
    env:
      MANY: ${{ inputs.count >= 4 }}
      WHERE: ${{ inputs.target }}
      RAW: ${{ toJSON(inputs) }}
    run: ./deploy
  rehearse:
    if: inputs.dry == true
    run: ./rehearse
"""


async def test_typed_inputs_are_values_to_expressions_and_text_to_the_job(api):
    await put(api, "typed", TYPED)
    run = (await started(api, "typed", inputs={"count": 4, "dry": False, "target": "prod"}))["run_id"]
    assert (await run_view(api, run))["name"] == "deploy 4 to prod"
    got = await claim_job(api, "deploy")
    job = got["job"]
    assert job["inputs"] == {"count": "4", "dry": "false", "target": "prod"}  # ROTA_INPUT_<NAME>, as text
    assert job["contexts"]["inputs"] == {"count": 4, "dry": False, "target": "prod"}
    env = job["env"]
    assert (env["MANY"], env["WHERE"], env["RAW"].replace(" ", "").replace("\n", "")) == (
        "true", "prod", '{"count":4,"dry":false,"target":"prod"}')
    assert await statuses(api, run) == {"deploy": "running", "rehearse": "skipped"}


async def test_a_dry_run_by_a_boolean_input(api):
    await put(api, "typed", TYPED)
    run = (await started(api, "typed", inputs={"dry": True}))["run_id"]
    assert (await run_view(api, run))["name"] == "deploy 3 to staging (dry run)"
    await finish(api, await claim_job(api, "rehearse"))
    assert (await run_view(api, run))["status"] == "success"
    deploy = (await jobs_of(api, run))["deploy"]
    assert (deploy["status"], deploy["error"]) == ("skipped", "if: 'inputs.count > 2 && !inputs.dry' is false")


DECIDED_ROOTS = """
name: later
jobs:
  plan:
    env:
      TARGET: ${{ inputs.target || 'staging' }}
    run: ./plan
  matrix:
    strategy:
      matrix:
        n: [1, 2]
    run: ./build
  never:
    if: inputs.target == 'nowhere'
    run: ./never
  cleanup:
    needs: [plan]
    if: always()
    run: ./cleanup
"""


async def test_a_delayed_run_decides_its_roots_when_its_time_comes(app, api):
    await put(api, "later", DECIDED_ROOTS)
    run = (await started(api, "later", delay="1h", inputs={"target": "prod"}))["run_id"]
    assert set((await statuses(api, run)).values()) == {"queued"}
    await due_now(app.state.store, "delayedruns", run)
    assert await app.state.store.due_runs() == (1, 0)
    jobs = await jobs_of(api, run)
    assert jobs["never"]["status"] == "skipped"
    assert jobs["matrix"]["combinations"] and jobs["matrix"]["status"] == "running"
    got = await claim_job(api, "plan")
    assert got["job"]["env"] == {"TARGET": "prod"} and got["job"]["env_resolved"] is True


async def test_a_delayed_run_cancelled_before_it_starts_runs_nothing(app, api):
    await put(api, "later", DECIDED_ROOTS)
    run = (await started(api, "later", delay="1h"))["run_id"]
    assert (await api.post(f"/api/runs/{run}/cancel")).status_code in (200, 202)
    view = await run_view(api, run)
    assert view["status"] == "cancelled", view
    # the always() job is not spared: nothing of the run started for it to clean up
    assert set((await statuses(api, run)).values()) == {"cancelled"}
