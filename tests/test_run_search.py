"""Finding runs, on both stores: GET /api/runs?label= (runs with a job that
needs the label) and ?q= (a run id, workflow id or name, job id or name),
as the dashboard's runs page asks for them."""

from __future__ import annotations

from tests.test_api import assert_error
from tests.test_runs import put, start

BUILD = """
name: Nightly Build
jobs:
  compile:
    name: Compile the kernel
    run: make
  publish:
    needs: compile
    labels: [deploy, linux]
    run: make publish
"""
LINT = """
name: lint
jobs:
  ruff:
    run: ruff check
"""


async def ids(api, **params) -> list[str]:
    resp = await api.get("/api/runs", params=params)
    assert resp.status_code == 200, resp.text
    return [r["run_id"] for r in resp.json()["runs"]]


async def two_workflows(api) -> tuple[str, str]:
    await put(api, "nightly", BUILD)
    await put(api, "lint", LINT)
    return (await start(api, "nightly"))["run_id"], (await start(api, "lint"))["run_id"]


async def test_runs_by_a_label_one_of_their_jobs_needs(api):
    build, lint = await two_workflows(api)
    assert await ids(api, label="deploy") == [build]
    assert await ids(api, label="linux") == [build]
    assert await ids(api, label="gpu") == []
    assert set(await ids(api)) == {build, lint}


async def test_search_finds_a_run_by_its_id_its_workflow_and_its_jobs(api):
    build, lint = await two_workflows(api)
    assert await ids(api, q=build) == [build]
    assert await ids(api, q=build[:8]) == [build]
    assert await ids(api, q="nightly") == [build]  # workflow id
    assert await ids(api, q="night") == [build]  # part of its name, any case
    assert await ids(api, q="RUFF") == [lint]  # a job id
    assert await ids(api, q="kernel") == [build]  # a job's name
    assert await ids(api, q="no such thing") == []


async def test_search_and_filters_combine(api):
    build, lint = await two_workflows(api)
    assert await ids(api, q="lint", label="deploy") == []
    assert await ids(api, q="compile", workflow_id="nightly") == [build]


async def test_bad_search_or_label_is_named(api):
    err = assert_error(await api.get("/api/runs", params={"label": "a,b"}), 422, "invalid_query")
    assert err["details"]["field"] == "label"
    err = assert_error(await api.get("/api/runs", params={"q": "x" * 201}), 422, "invalid_query")
    assert err["details"]["field"] == "q"


async def test_a_run_names_its_workflow(api):
    build, _ = await two_workflows(api)
    listed = (await api.get("/api/runs", params={"workflow_id": "nightly"})).json()["runs"]
    assert [r["workflow_name"] for r in listed] == ["Nightly Build"]
    assert (await api.get(f"/api/runs/{build}")).json()["workflow_name"] == "Nightly Build"
