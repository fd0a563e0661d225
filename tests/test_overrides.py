"""Per-run overrides (`overrides` at start: max_attempts, timeout_secs,
backoff, priority, labels, add_labels) applied to the run's jobs, and
restarting a run (a new run of its version, inputs and tags, its overrides
merged with new ones: Strait's restart with a machine preset). Over HTTP on
both stores."""

from __future__ import annotations

import pytest

from tests.test_runs import YAML, claim, finish

BUILD = """
name: build
on: {workflow_dispatch: {inputs: {tag: {default: latest}}}}
jobs:
  compile: {run: make, labels: [linux], retries: 1, timeout-minutes: 5}
  approve: {needs: compile, wait: {event: ok}}
  ship: {needs: approve, run: ./ship, labels: [linux]}
"""


@pytest.fixture
async def build(api):
    assert (await api.put("/api/workflows/build", content=BUILD, headers=YAML)).status_code == 201


async def start(api, **body) -> dict:
    resp = await api.post("/api/workflows/build/runs", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def jobs(run: dict) -> dict:
    return {j["id"]: j for j in run["jobs"]}


async def view(api, run_id: str) -> dict:
    return (await api.get(f"/api/runs/{run_id}")).json()


async def test_overrides_apply_to_every_job_but_gates(api, build):
    run = await start(api, overrides={"max_attempts": 4, "timeout_secs": 90, "priority": 50, "labels": ["big"],
                                      "backoff": {"fixed": {"delay_secs": 7}}})
    assert run["overrides"] == {"max_attempts": 4, "timeout_secs": 90, "priority": 50, "labels": ["big"],
                                "backoff": {"Fixed": {"delay_secs": 7}}}
    shown = jobs(await view(api, run["run_id"]))
    assert (shown["compile"]["required_labels"], shown["compile"]["max_retries"]) == (["big"], 3)
    assert shown["approve"]["required_labels"] == [] and shown["ship"]["required_labels"] == ["big"]
    assert await claim(api, "linux-box", ["linux"]) is None  # its jobs need [big] now
    got = await claim(api, "big-box", ["big"])
    assert got["job"]["job_id"] == "compile" and got["job"]["timeout_secs"] == 90
    assert got["job"]["retry_policy"] == {"max_retries": 3, "backoff": {"Fixed": {"delay_secs": 7}}}
    # the definition itself is untouched: the next run is as written
    plain = jobs(await view(api, (await start(api))["run_id"]))
    assert (plain["compile"]["required_labels"], plain["compile"]["max_retries"]) == (["linux"], 1)


async def test_add_labels_adds_to_each_jobs_own(api, build):
    run = await start(api, overrides={"add_labels": ["large", "linux"]})
    assert jobs(await view(api, run["run_id"]))["compile"]["required_labels"] == ["large", "linux"]
    assert await claim(api, "small", ["linux"]) is None
    assert (await claim(api, "large", ["linux", "large"]))["job"]["job_id"] == "compile"


async def test_a_priority_override_puts_a_run_first_in_line(api, build):
    first = await start(api)
    urgent = await start(api, overrides={"priority": 100})
    got = await claim(api, "w", ["linux"])
    assert got["job"]["run_id"] == urgent["run_id"] and first["run_id"] != urgent["run_id"]


async def test_runs_with_the_same_overrides_share_a_version(api, build):
    a = await start(api, overrides={"priority": 5})
    b = await start(api, overrides={"priority": 5})
    c = await start(api, overrides={"priority": 6})
    plain = await start(api)
    assert a["version"] == b["version"] != c["version"]
    assert a["version"].startswith(plain["version"] + "+")


@pytest.mark.parametrize("overrides, field", [
    ({"backoff": "sometimes"}, "overrides.backoff"),
    ({"backoff": {"exponential": {"base_secs": 10, "max_secs": 1}}}, "overrides.backoff"),
    ({"max_attempts": 0}, "$.overrides.max_attempts"),
    ({"max_attempts": 102}, "$.overrides.max_attempts"),
    ({"priority": 101}, "$.overrides.priority"),
    ({"labels": ["no spaces"]}, "$.overrides.labels[0]"),
    ({"add_labels": [f"l{i}" for i in range(32)]}, "overrides.add_labels"),
    ({"machine": "big"}, "$.overrides"),
])
async def test_bad_overrides_are_refused_naming_the_field(api, build, overrides, field):
    resp = await api.post("/api/workflows/build/runs", json={"overrides": overrides})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"]["field"] == field
    assert (await api.get("/api/runs")).json()["runs"] == []


LABEL_WORDS = "must be a label: letters, digits and _ . : / = + -, 1 to 64 characters"
ID_WORDS = "must be an id: letters, digits and _ . -, starting with a letter or digit, 1 to 128 characters"


@pytest.mark.parametrize("path, body, words, field", [
    ("/api/workflows/build/runs", {"overrides": {"labels": ["bad label"]}}, LABEL_WORDS, "$.overrides.labels[0]"),
    ("/api/dead-letters/replay", {"filter": {"label": "bad label"}}, LABEL_WORDS, "$.filter.label"),
    ("/api/dead-letters/replay", {"filter": {"workflow_id": "bad id"}}, ID_WORDS, "$.filter.workflow_id"),
], ids=["override-label", "filter-label", "filter-id"])
async def test_a_bad_label_or_id_is_refused_in_words_not_as_a_regex(api, build, path, body, words, field):
    resp = await api.post(path, json=body)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["message"] == f"{words} - at `{field}`" and error["details"]["field"] == field


async def test_a_restart_is_a_new_run_of_the_same_version_inputs_and_tags(api, build):
    old = await start(api, inputs={"tag": "v1"}, tags={"team": "core"})
    # the definition changes after the run started
    changed = BUILD.replace("run: make,", "run: make all,")
    assert (await api.put("/api/workflows/build", content=changed, headers=YAML)).status_code == 200
    resp = await api.post(f"/api/runs/{old['run_id']}/restart", json={"overrides": {"labels": ["gpu"]}})
    assert resp.status_code == 201, resp.text
    new = resp.json()
    assert (new["triggered_by"], new["restarted_from"], new["number"]) == ("restart", old["run_id"], old["number"] + 1)
    assert new["inputs"] == {"tag": "v1"} and new["tags"] == {"team": "core"}
    assert new["overrides"] == {"labels": ["gpu"]} and new["version"].startswith(old["version"] + "+")
    compile_ = jobs(await view(api, new["run_id"]))["compile"]
    assert (compile_["command"], compile_["required_labels"]) == ("make", ["gpu"])
    events = (await api.get(f"/api/runs/{old['run_id']}/events")).json()
    assert events[-1]["status"] == "restarted" and new["run_id"] in events[-1]["detail"]
    # a restart of the restart keeps its overrides, with new ones over them
    again = (await api.post(f"/api/runs/{new['run_id']}/restart",
                            json={"overrides": {"max_attempts": 2}, "tags": {"why": "flaky"}})).json()
    assert again["overrides"] == {"max_attempts": 2, "labels": ["gpu"]} and again["tags"] == {"why": "flaky"}
    assert again["version"].startswith(old["version"] + "+") and again["restarted_from"] == new["run_id"]


async def test_a_restart_may_be_delayed_and_is_idempotent_with_a_key(api, build):
    old = await start(api)
    headers = {"Idempotency-Key": "restart-1"}
    first = await api.post(f"/api/runs/{old['run_id']}/restart", json={"delay": "1h"}, headers=headers)
    assert first.status_code == 201 and first.json()["status"] == "delayed"
    again = await api.post(f"/api/runs/{old['run_id']}/restart", json={"delay": "1h"}, headers=headers)
    assert again.json()["run_id"] == first.json()["run_id"] and again.headers["Idempotent-Replayed"] == "true"
    assert (await api.post("/api/runs/nope/restart")).status_code == 404


async def test_overridden_versions_go_with_their_runs(app, api, build):
    run = await start(api, overrides={"priority": 9})
    await finish(api, await claim(api, "w", ["linux"]), ok=False, error="no")  # for good: the run fails
    assert (await view(api, run["run_id"]))["status"] == "failure"
    assert (await api.delete("/api/workflows/build")).status_code == 204
    store = app.state.store
    assert not [k async for k in store.redis.scan_iter(store.key("def", "*"))]
