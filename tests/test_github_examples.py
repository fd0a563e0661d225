"""GitHub's own example workflows from its pages on conditions, matrices,
status functions and job outputs (tests/data/github/, each with its source
and how it was adapted: only what rota refuses, `uses:`, the github
context, `${{ }}` in a script), accepted as they are and behaving as
those pages say, on the server's side: what runs, skips, expands,
cancels and waits, over HTTP on both stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.definitions import parse_workflow
from tests.test_conditions import claim_job, jobs_of, run_view, statuses
from tests.test_runs import YAML, claim, finish, start

EXAMPLES = Path(__file__).parent / "data" / "github"


def text(name: str) -> str:
    return (EXAMPLES / f"{name}.yml").read_text()


async def put(api, name: str) -> str:
    resp = await api.put(f"/api/workflows/{name}", content=text(name).encode(), headers=YAML)
    assert resp.status_code == 201, resp.text
    return name


def matrices(jobs: dict[str, dict], of: str) -> list[dict]:
    return [jobs[c]["matrix"] for c in jobs[of]["combinations"]]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yml")), ids=lambda p: p.stem)
def test_each_example_is_accepted(path):
    source = path.read_text()
    assert source.startswith("# Source: https://docs.github.com/"), "each example names the page it is from"
    parse_workflow(source.encode(), "application/yaml")


async def test_the_repository_condition_runs_only_for_that_repository(api):
    await put(api, "conditions-repository")
    run = (await start(api, "conditions-repository", inputs={"repository": "octo-org/octo-repo-prod"}))["run_id"]
    assert await statuses(api, run) == {"production-deploy": "queued"}
    run = (await start(api, "conditions-repository", inputs={"repository": "someone/fork"}))["run_id"]
    view = await run_view(api, run)
    # "Otherwise, the job will be marked as skipped" (and a skipped job fails no run)
    assert view["status"] == "success" and view["jobs"][0]["status"] == "skipped"


async def test_job_level_status_functions(api):
    await put(api, "status-functions")
    run = (await start(api, "status-functions"))["run_id"]
    # nothing is upstream of these jobs: success() holds, failure() and cancelled() do not
    assert await statuses(api, run) == {"succeeded": "queued", "always": "queued", "cancelled": "skipped",
                                        "failed": "queued", "failure-with-conditions": "queued"}
    # the steps' own if: are the worker's to evaluate, and reach it with the claim
    got = await claim_job(api, "succeeded")
    assert got["job"]["step_options"] == [{}, {"if": " success() "}]


async def test_a_multi_dimension_matrix_makes_six_jobs_in_order(api):
    await put(api, "matrix-multi-dimension")
    run = (await start(api, "matrix-multi-dimension"))["run_id"]
    # "The above matrix will create the jobs in the following order"
    assert matrices(await jobs_of(api, run), "example_matrix") == [
        {"version": 10, "os": "ubuntu-latest"}, {"version": 10, "os": "windows-latest"},
        {"version": 12, "os": "ubuntu-latest"}, {"version": 12, "os": "windows-latest"},
        {"version": 14, "os": "ubuntu-latest"}, {"version": 14, "os": "windows-latest"}]
    got = await claim(api, "win", ["windows-latest"])
    assert got["job"]["job_id"] == "example_matrix-10-windows-latest"
    assert got["job"]["name"] == "example_matrix (10, windows-latest)"
    assert got["job"]["step_options"] == [{"env": {"NODE_VERSION": "${{ matrix.version }}"}}]


async def test_a_matrix_from_the_runs_payload(api):
    await put(api, "matrix-from-context")
    run = (await start(api, "matrix-from-context", inputs={"versions": "[12, 14, 16]"}))["run_id"]
    # "the matrix version variable will have a value of [12, 14, 16]"
    assert matrices(await jobs_of(api, run), "example_matrix") == [{"version": 12}, {"version": 14},
                                                                   {"version": 16}]


async def test_include_expands_and_adds_as_the_page_lists(api):
    await put(api, "matrix-include")
    run = (await start(api, "matrix-include"))["run_id"]
    assert matrices(await jobs_of(api, run), "example_matrix") == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"}]


async def test_expanding_configurations_adds_npm_to_one_job(api):
    await put(api, "matrix-expand-include")
    run = (await start(api, "matrix-expand-include"))["run_id"]
    jobs = await jobs_of(api, run)
    # "the following workflow will run four jobs ... an additional variable called npm"
    assert matrices(jobs, "example_matrix") == [
        {"os": "windows-latest", "node": 14}, {"os": "windows-latest", "node": 16, "npm": 6},
        {"os": "ubuntu-latest", "node": 14}, {"os": "ubuntu-latest", "node": 16}]
    envs = []
    while (got := await claim(api, "w", ["windows-latest", "ubuntu-latest"])) is not None:
        envs.append(got["job"]["env"])
    assert envs == [{"NODE": "14", "NPM": ""}, {"NODE": "16", "NPM": "6"}, {"NODE": "14", "NPM": ""},
                    {"NODE": "16", "NPM": ""}]


async def test_adding_configurations_makes_ten_jobs(api):
    await put(api, "matrix-add-include")
    run = (await start(api, "matrix-add-include"))["run_id"]
    combos = matrices(await jobs_of(api, run), "example_matrix")
    # "this matrix will run 10 jobs ... plus a job for the os value of windows-latest and version value of 17"
    assert len(combos) == 10 and combos[-1] == {"os": "windows-latest", "version": 17}


async def test_exclude_leaves_nine_jobs(api):
    await put(api, "matrix-exclude")
    run = (await start(api, "matrix-exclude"))["run_id"]
    combos = matrices(await jobs_of(api, run), "example_matrix")
    # "the following workflow will run nine jobs"
    assert len(combos) == 9
    assert {"os": "macos-latest", "version": 12, "environment": "production"} not in combos
    assert not [c for c in combos if c["os"] == "windows-latest" and c["version"] == 16]


async def test_handling_failures(api):
    await put(api, "matrix-fail-fast")
    run = (await start(api, "matrix-fail-fast"))["run_id"]
    claims = {}
    while (got := await claim(api, "w", ["ubuntu-latest"])) is not None:
        claims[got["job"]["job_id"]] = got
    # "the following workflow will start four jobs"
    assert sorted(claims) == ["test-6-false", "test-7-false", "test-8-false", "test-9-true"]
    # "If the job with continue-on-error: true fails, the other jobs will not be affected."
    await finish(api, claims["test-9-true"], ok=False)
    assert (await statuses(api, run))["test-6-false"] == "running"
    # "If any of the jobs with continue-on-error: false fail, all jobs that are in progress or queued will be cancelled."
    await finish(api, claims["test-6-false"], ok=False)
    got = await statuses(api, run)
    assert (got["test-7-false"], got["test-8-false"], got["test"]) == ("cancelled", "cancelled", "failure")


async def test_max_parallel_runs_two_at_a_time(api):
    await put(api, "matrix-max-parallel")
    run = (await start(api, "matrix-max-parallel"))["run_id"]
    first, second = await claim(api), await claim(api)
    # "will run a maximum of two jobs at a time, even if there are runners available to run all six"
    assert first and second and await claim(api) is None
    await finish(api, first)
    assert (await claim(api)) is not None and await claim(api) is None
    assert len((await jobs_of(api, run))["example_matrix"]["combinations"]) == 6


async def test_an_output_defines_two_matrices(api):
    await put(api, "matrix-shared-output")
    run = (await start(api, "matrix-shared-output"))["run_id"]
    define = await claim_job(api, "define-matrix", labels=["ubuntu-latest"])
    assert define["job"]["outputs"] == {"colors": "${{ steps.colors.outputs.colors }}"}
    # what the worker reports for the declared output
    await finish(api, define, outputs={"colors": '["red", "green", "blue"]'})
    jobs = await jobs_of(api, run)
    assert matrices(jobs, "produce-artifacts") == [{"color": "red"}, {"color": "green"}, {"color": "blue"}]
    assert jobs["consume-artifacts"]["status"] == "queued" and jobs["consume-artifacts"]["combinations"] == []
    for _ in range(3):
        await finish(api, await claim(api, "w", ["ubuntu-latest"]))
    jobs = await jobs_of(api, run)
    assert matrices(jobs, "consume-artifacts") == [{"color": "red"}, {"color": "green"}, {"color": "blue"}]


async def test_object_values_make_four_jobs(api):
    await put(api, "matrix-object-values")
    run = (await start(api, "matrix-object-values"))["run_id"]
    jobs = await jobs_of(api, run)
    assert len(jobs["test"]["combinations"]) == 4
    got = await claim(api, "mac", ["macos-latest"])
    assert got["job"]["env"] == {"NODE_VERSION": "14", "NODE_ENV_LINE": ""}
    got = await claim(api, "mac", ["macos-latest"])
    assert got["job"]["env"] == {"NODE_VERSION": "20", "NODE_ENV_LINE": "NODE_OPTIONS=--openssl-legacy-provider"}


async def test_job_outputs_reach_the_next_job(api):
    await put(api, "job-outputs")
    run = (await start(api, "job-outputs"))["run_id"]
    await finish(api, await claim_job(api, "job1", labels=["ubuntu-latest"]),
                 outputs={"output1": "hello", "output2": "world"})
    got = await claim_job(api, "job2", labels=["ubuntu-latest"])
    assert got["job"]["contexts"]["needs"] == {"job1": {"result": "success",
                                                        "outputs": {"output1": "hello", "output2": "world"}}}
    assert got["job"]["step_options"] == [{"env": {"OUTPUT1": "${{needs.job1.outputs.output1}}",
                                                   "OUTPUT2": "${{needs.job1.outputs.output2}}"}}]
    assert run
