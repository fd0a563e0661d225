"""WORKFLOWS_DIR: files load at start with their stem as id; a broken file
is reported and skipped; a restart does not duplicate or reset anything."""

from __future__ import annotations

import shutil
from pathlib import Path

from server.workflow_files import load_directory
from tests.helpers import claim

EXAMPLES = Path(__file__).resolve().parent.parent / "workflows"


async def test_examples_load_with_their_stems_as_ids(store):
    loaded = await load_directory(store, EXAMPLES)
    assert sorted(loaded) == sorted(p.stem for p in EXAMPLES.iterdir() if p.suffix in (".yml", ".json"))
    ci = await store.get_workflow("ci")
    assert ci.status == "idle" and [j.id for j in ci.jobs] == ["lint", "test", "build", "deploy"]
    assert ci.kind == "file"
    assert await claim(store) is None, "loaded workflows wait for a run"


async def test_broken_and_badly_named_files_are_skipped(store, tmp_path, caplog):
    (tmp_path / "good.yml").write_text("jobs:\n  a: {run: 'true'}\n")
    (tmp_path / "broken.yml").write_text("jobs:\n  a: {needs: nope}\n")
    (tmp_path / "bad name.yml").write_text("jobs:\n  a: {run: 'true'}\n")
    (tmp_path / "notes.txt").write_text("not a workflow")
    assert await load_directory(store, tmp_path) == ["good"]
    assert "broken.yml" in caplog.text and "bad name" in caplog.text


async def test_reloading_keeps_state_and_picks_up_changes(store, tmp_path):
    path = tmp_path / "deploy.yml"
    path.write_text("jobs:\n  a: {run: 'echo one'}\n")
    await load_directory(store, tmp_path)
    await store.run_workflow("deploy")
    c = await claim(store)
    await store.complete(c.lease.lease_id, {})

    await load_directory(store, tmp_path)  # a restart with the same file
    wf = await store.get_workflow("deploy")
    assert wf.status == "success" and wf.runs == 1, "unchanged file: state kept"

    path.write_text("jobs:\n  a: {run: 'echo two'}\n  b: {run: 'true', needs: a}\n")
    await load_directory(store, tmp_path)
    definition = await store.get_definition("deploy")
    assert definition.version != wf.version and "echo two" in definition.document
    assert [w.id for w in await store.list_workflows()] == ["deploy"], "redefined, not duplicated"
    await store.run_workflow("deploy")  # the next run has the new definition
    wf = await store.get_workflow("deploy")
    assert [j.id for j in wf.jobs] == ["a", "b"] and wf.jobs[0].command == "echo two" and wf.runs == 2


async def test_a_running_workflow_keeps_its_definition(store, tmp_path):
    shutil.copy(EXAMPLES / "hello.json", tmp_path / "hello.json")
    await load_directory(store, tmp_path)
    await store.run_workflow("hello")
    (tmp_path / "hello.json").write_text('{"name": "x", "jobs": [{"id": "other", "command": "true"}]}')
    await load_directory(store, tmp_path)
    assert [j.id for j in (await store.get_workflow("hello")).jobs] == ["greet", "reply"]
