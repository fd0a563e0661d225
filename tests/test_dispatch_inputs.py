"""`on: workflow_dispatch: inputs:` as GitHub types them: a start is checked
(422 naming the input), defaults applied, values typed in the run and
handed to jobs as ROTA_INPUT_<NAME> text; a workflow that declares none
takes JSON values as they come (the seeds' payloads); bounds. Over HTTP on
both stores."""

from __future__ import annotations

import pytest

from server import limits
from tests.test_runs import YAML, claim

DEPLOY = """
name: deploy
on:
  workflow_dispatch:
    inputs:
      environment: {type: choice, options: [staging, production], default: staging, description: where to}
      replicas: {type: number, default: 2}
      dry_run: {type: boolean, default: false}
      version: {type: string, required: true, description: the release tag}
      region: {type: environment}
      note: {}
jobs:
  ship: {run: ./ship, spawn: {workflows: [deploy, free]}}
"""
FREE = "name: free\njobs:\n  go: {run: ./go, spawn: {workflows: [deploy]}}\n"


@pytest.fixture
async def workflows(api):
    for wf, doc in (("deploy", DEPLOY), ("free", FREE)):
        resp = await api.put(f"/api/workflows/{wf}", content=doc, headers=YAML)
        assert resp.status_code == 201, resp.text


def refused(resp, field: str) -> str:
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_input" and error["details"]["field"] == field, error
    return error["message"]


async def test_inputs_are_typed_and_defaults_applied(api, workflows):
    resp = await api.post("/api/workflows/deploy/runs", json={"inputs": {"version": "v1.2", "replicas": "5",
                                                                          "DRY_RUN": "true"}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["inputs"] == {"version": "v1.2", "replicas": 5, "dry_run": True, "environment": "staging",
                                     "region": "", "note": ""}
    typed = await api.post("/api/workflows/deploy/runs", json={"inputs": {
        "version": "v2", "replicas": 2.5, "dry_run": False, "environment": "production", "region": "eu"}})
    assert typed.json()["inputs"] == {"version": "v2", "replicas": 2.5, "dry_run": False,
                                      "environment": "production", "region": "eu", "note": ""}


@pytest.mark.parametrize("inputs, field, says", [
    ({}, "inputs.version", "required (the release tag)"),
    ({"version": "v1", "replicas": "many"}, "inputs.replicas", "number input must be a number (got 'many')"),
    ({"version": "v1", "replicas": True}, "inputs.replicas", "must be a number (got a boolean)"),
    ({"version": "v1", "dry_run": "yes"}, "inputs.dry_run", "boolean input must be true or false (got 'yes')"),
    ({"version": "v1", "environment": "prod"}, "inputs.environment", "must be one of staging, production"),
    ({"version": 12}, "inputs.version", "string input must be a string (got a number)"),
    ({"version": "v1", "colour": "red"}, "inputs.colour", "not an input of workflow 'deploy' (its inputs:"
                                                          " environment, replicas, dry_run, version, region, note)"),
])
async def test_a_start_with_a_bad_input_is_refused_naming_it(api, workflows, inputs, field, says):
    message = refused(await api.post("/api/workflows/deploy/runs", json={"inputs": inputs}), field)
    assert says in message
    assert (await api.get("/api/workflows/deploy/runs")).json()["runs"] == []  # nothing started


async def test_jobs_get_each_input_as_text(api, workflows):
    await api.post("/api/workflows/deploy/runs", json={"inputs": {"version": "v1", "replicas": 1.5}})
    claimed = await claim(api)
    assert claimed["job"]["inputs"] == {"environment": "staging", "replicas": "1.5", "dry_run": "false",
                                        "version": "v1", "region": "", "note": ""}
    payload = (await api.get(f"/api/jobs/{claimed['lease']['lease_id']}/payload")).json()
    assert payload["inputs"]["replicas"] == 1.5 and payload["inputs"]["dry_run"] is False


async def test_a_workflow_declaring_no_inputs_takes_json_values_as_they_come(api, workflows):
    inputs = {"batch": {"size": 100, "ids": [1, 2, 3]}, "flag": True, "n": 7, "name": "x", "none": None}
    resp = await api.post("/api/workflows/free/runs", json={"inputs": inputs})
    assert resp.status_code == 201 and resp.json()["inputs"] == inputs
    claimed = await claim(api)
    assert claimed["job"]["inputs"] == {"batch": '{"size":100,"ids":[1,2,3]}', "flag": "true", "n": "7",
                                        "name": "x", "none": ""}
    payload = (await api.get(f"/api/jobs/{claimed['lease']['lease_id']}/payload")).json()
    assert payload["inputs"] == inputs


async def test_the_cli_shaped_string_map_keeps_working(api, workflows):
    resp = await api.post("/api/workflows/free/runs", json={"inputs": {"A": "1", "b": "two"}, "triggered_by": "cli"})
    assert resp.json()["inputs"] == {"A": "1", "b": "two"}
    assert (await claim(api))["job"]["inputs"] == {"A": "1", "b": "two"}


def nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("inputs, field", [
    ({f"k{i}": "v" for i in range(limits.MAX_INPUTS + 1)}, "$.inputs"),
    ({"deep": nested(limits.MAX_INPUT_DEPTH + 1)}, "inputs.deep"),
    ({"big": "x" * (limits.MAX_INPUT_CHARS + 1)}, "inputs.big"),
    ({"bad-name": "x"}, "inputs.bad-name"),
    ({f"k{i}": "x" * 60_000 for i in range(20)}, "inputs"),
])
async def test_inputs_are_bounded(api, workflows, inputs, field):
    resp = await api.post("/api/workflows/free/runs", json={"inputs": inputs})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"]["field"] == field
    assert (await api.get("/api/workflows/free/runs")).json()["runs"] == []


async def test_a_child_run_is_checked_against_its_workflows_inputs(api, workflows):
    await api.post("/api/workflows/free/runs", json={})
    claimed = await claim(api)
    url = f"/api/jobs/{claimed['lease']['lease_id']}/spawn"
    refused(await api.post(url, json={"workflow_id": "deploy", "inputs": {"version": "v1", "replicas": "x"}}),
            "inputs.replicas")
    child = (await api.post(url, json={"workflow_id": "deploy", "inputs": {"version": "v9", "replicas": "4"}}))
    assert child.status_code in (200, 201), child.text
    run = (await api.get(f"/api/runs/{child.json()['child_run_id']}")).json()
    assert run["inputs"]["replicas"] == 4 and run["triggered_by"] == "spawn"


async def test_declared_inputs_are_checked_at_submit(api):
    doc = """
on:
  workflow_dispatch:
    inputs:
      a-b: {}
      kind: {type: choice}
      n: {type: number, default: ten}
      flag: {type: boolean, default: 'maybe'}
      s: {type: text}
      x: {options: [a]}
jobs: {a: {run: x}}
"""
    resp = await api.put("/api/workflows/bad", content=doc, headers=YAML)
    assert resp.status_code == 422
    problems = {p["field"]: p["message"] for p in resp.json()["error"]["details"]["problems"]}
    assert problems == {
        "on.workflow_dispatch.inputs.a-b": "an input name is letters, digits and '_', not starting with a digit,"
                                           " at most 64 characters: a job sees it as $ROTA_INPUT_<NAME>",
        "on.workflow_dispatch.inputs.kind.options": "required for a choice input: the values it may take",
        "on.workflow_dispatch.inputs.n.default": "the default of a number input must be a number (got 'ten')",
        "on.workflow_dispatch.inputs.flag.default": "the default of a boolean input must be true or false (got 'maybe')",
        "on.workflow_dispatch.inputs.s.type": "must be one of string, number, boolean, choice, environment"
                                              " (got 'text')",
        "on.workflow_dispatch.inputs.x.options": "only a choice input has options",
    }


async def test_a_scheduled_workflow_needs_defaults_for_required_inputs(api):
    doc = ("on:\n  schedule: [{cron: '0 3 * * *'}]\n  workflow_dispatch:\n    inputs:\n"
           "      tag: {required: true}\njobs: {a: {run: x}}\n")
    resp = await api.put("/api/workflows/cron", content=doc, headers=YAML)
    assert resp.status_code == 422
    (problem,) = resp.json()["error"]["details"]["problems"]
    assert problem["field"] == "on.workflow_dispatch.inputs.tag" and "give it a default" in problem["message"]


async def test_the_definition_lists_its_declared_inputs_in_order_for_a_form(api, workflows):
    """The dashboard's Run form is built from these: every field explicit."""
    declared = (await api.get("/api/workflows/deploy/definition")).json()["inputs"]
    assert declared == [
        {"name": "environment", "type": "choice", "description": "where to", "required": False,
         "default": "staging", "options": ["staging", "production"]},
        {"name": "replicas", "type": "number", "description": "", "required": False, "default": 2, "options": []},
        {"name": "dry_run", "type": "boolean", "description": "", "required": False, "default": False, "options": []},
        {"name": "version", "type": "string", "description": "the release tag", "required": True, "default": None,
         "options": []},
        {"name": "region", "type": "environment", "description": "", "required": False, "default": None,
         "options": []},
        {"name": "note", "type": "string", "description": "", "required": False, "default": None, "options": []},
    ]
    assert (await api.get("/api/workflows/free/definition")).json()["inputs"] == []
