"""`rota pause | resume`, `rota paused` and `rota groups`, and what `rota
runs`, `rota status`, `rota workflows` and `rota workers` show of pauses
and concurrency groups, against the real app in process."""

from __future__ import annotations

import json

import pytest

from tests.test_concurrency import doc
from tests.test_runs import claim, put, start
from worker.cli import main as cli


async def test_pause_and_resume_a_run(api, rota):
    await put(api, "ci", doc("x", "  a: {run: x}\n  b: {run: x, needs: a}\n"))
    run = (await start(api, "ci"))["run_id"]
    code, out, err = await rota("pause", run)
    assert code == 0, err
    assert out == f"ci run #1 ({run}): paused: 1 queued job(s) held; running jobs go on\n"
    code, out, _ = await rota("pause", run)
    assert out == f"ci run #1 ({run}): already paused (no-op)\n"
    code, out, _ = await rota("runs")
    assert out.splitlines()[1].split()[3:5] == ["queued", "(paused)"], out
    code, out, _ = await rota("status", run)
    assert out.splitlines()[0] == (f"ci (workflow) run #1 ({run}): queued (paused: no job of it goes to a worker until"
                                   f" `rota resume {run}`; concurrency group x)")
    code, out, _ = await rota("resume", run, "--json")
    assert code == 0 and json.loads(out)["changed"] is True and json.loads(out)["run"]["paused"] is False
    code, out, _ = await rota("resume", run)
    assert out == f"ci run #1 ({run}): not paused: nothing to resume (no-op)\n"


async def test_a_workflow_named_bare_is_not_taken_for_its_latest_run(api, rota):
    await put(api, "ci", doc("x"))
    await start(api, "ci")
    code, _, err = await rota("pause", "ci")
    assert code == 2
    assert "ci is a workflow: `rota pause --workflow ci` pauses it (its new runs)" in err


async def test_the_id_submit_prints_for_a_one_off_pauses_its_run(api, rota, tmp_path):
    # `rota submit` prints one id for a one-off: it names the workflow and its one run both
    path = tmp_path / "once.yml"
    path.write_text(doc("x", "  a: {run: x}\n  b: {run: x, needs: a}\n"))
    code, out, err = await rota("submit", str(path))
    assert code == 0, err
    oneoff = out.strip()
    code, out, err = await rota("pause", oneoff)
    assert code == 0, err
    assert out.endswith("paused: 1 queued job(s) held; running jobs go on\n"), out
    code, out, err = await rota("resume", oneoff, "--json")
    assert code == 0 and json.loads(out)["run"]["paused"] is False, err


@pytest.mark.parametrize(("argv", "message"), [
    (["pause"], "give one of RUN, --workflow WORKFLOW or --label LABEL"),
    (["resume", "RUN", "--label", "gpu"], "give one of RUN, --workflow WORKFLOW or --label LABEL"),
    (["pause", "--label", "gpu", "--new-runs", "skip"], "--new-runs is for --workflow"),
    (["resume", "--workflow", "ci", "--new-runs", "skip"], "unrecognized arguments: --new-runs"),
])
def test_pause_takes_one_thing_to_pause(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.parse(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


async def test_pause_a_workflow_and_list_what_is_paused(api, rota):
    await put(api, "ci", doc("x"))
    code, out, err = await rota("pause", "--workflow", "ci", "--new-runs", "skip")
    assert (code, out) == (0, "workflow ci: paused: new runs are refused\n"), err
    code, _, err = await rota("run", "ci")
    assert code == 2 and "workflow 'ci' is paused and refuses new runs" in err
    code, out, _ = await rota("workflows")
    assert out.splitlines()[1].startswith("ci (paused: new runs refused)")
    code, out, _ = await rota("status", "ci")
    assert out.splitlines()[0] == "workflow ci is paused: its new runs are refused (rota resume --workflow ci)"
    await rota("pause", "--label", "gpu")
    code, out, _ = await rota("paused")
    rows = [line.split()[:2] for line in out.splitlines()[1:]]
    assert rows == [["workflow", "ci"], ["label", "gpu"]]
    code, out, _ = await rota("resume", "--workflow", "ci")
    assert out == "workflow ci: resumed: 0 run(s) that waited for it started\n"
    await rota("resume", "--label", "gpu")
    code, out, _ = await rota("paused")
    assert out == "nothing is paused\n"


async def test_workers_mark_a_paused_label(api, rota):
    await claim(api, "box-1", ["gpu", "linux"])
    await rota("pause", "--label", "gpu")
    code, out, _ = await rota("workers")
    assert out.splitlines()[1].split()[2:4] == ["gpu", "(paused),linux"]
    code, out, _ = await rota("workers", "--json")
    assert json.loads(out)[0]["paused_labels"] == ["gpu"]


async def test_runs_and_status_say_which_group_a_run_waits_for(api, rota):
    await put(api, "deploy", doc("{group: prod, queue: max}", "  a: {run: x}\n"))
    first = await start(api, "deploy")
    second = await start(api, "deploy")
    code, out, _ = await rota("runs")
    statuses = [line.split()[3:6] for line in out.splitlines()[1:]]
    assert statuses[0] == ["queued", "(group", "prod)"] and statuses[1][0] == "queued"
    code, out, _ = await rota("status", second["run_id"])
    assert out.splitlines()[0].endswith("queued (waiting for a place in concurrency group prod)")
    code, out, _ = await rota("groups")
    header, row = out.splitlines()
    assert row.split()[:4] == ["prod", "1", "1", "1"] and first["run_id"] in row and second["run_id"] in row
    code, out, _ = await rota("groups", "nope")
    assert out == "group nope is not in use\n"


async def test_groups_shows_a_rate_as_a_rate(api, rota):
    await put(api, "ping", doc("{group: rate-g, limit: 2 per 20s, queue: max}", "  a: {run: x}\n"))
    await start(api, "ping")
    code, out, _ = await rota("groups")
    header, row = out.splitlines()
    assert row.split()[:4] == ["rate-g", "2/20s", "1", "0"], out


async def test_status_says_a_job_waits_for_its_group(api, rota):
    await put(api, "app", "jobs:\n  deploy: {run: x, concurrency: prod}\n")
    await start(api, "app")
    second = await start(api, "app")
    code, out, _ = await rota("status", second["run_id"])
    deploy = next(line for line in out.splitlines() if line.startswith("deploy"))
    assert "queued (group prod)" in deploy
