"""`rota` for daily operation (issue 14, items 16 and 20) against the real
app in process: removing and pruning workers, one-off workflows named by
their name, `rota workflows`, and guesses that leave no refusal in the
server's log."""

from __future__ import annotations

import json
import logging

from tests.test_api import create
from tests.test_daily_api import set_last_seen
from tests.test_runs import claim, finish, put, start


# ---- 16: workers rm, --prune -------------------------------------------------------------


async def test_workers_rm_removes_each_worker_named(app, api, rota):
    for name in ("box-1", "box-2"):
        await api.post("/api/workers/register", json={"worker_id": name})
    code, out, err = await rota("workers", "rm", "box-1", "box-2")
    assert code == 0, err
    assert out.splitlines() == ["removed worker box-1", "removed worker box-2"]
    code, out, _ = await rota("workers", "--json")
    assert {w["worker_id"]: w["status"] for w in json.loads(out)} == {"box-1": "stopped", "box-2": "stopped"}
    code, _, err = await rota("workers", "rm", "ghost")
    assert code == 2 and "no worker 'ghost'" in err


async def test_workers_prune_removes_the_gone_ones_or_those_unseen_for_long(app, api, rota):
    store = app.state.store
    for name in ("fresh", "gone", "quiet"):
        await api.post("/api/workers/register", json={"worker_id": name, "claim_wait_secs": 30,
                                                      "lease_ttl_secs": 30})
    await set_last_seen(store, "gone", 3_600_000)
    code, out, err = await rota("workers", "--prune")
    assert code == 0, err
    assert out.splitlines() == ["removed worker gone (offline, last seen 1h00m ago)"]
    await set_last_seen(store, "quiet", 50_000)  # within its grace: not gone, but quiet for 50 s
    code, out, _ = await rota("workers", "--prune", "--older-than", "40s")
    assert out.splitlines() == ["removed worker quiet (idle, last seen 50s ago)"]
    code, out, _ = await rota("workers", "--prune", "--older-than", "1h")
    assert (code, out) == (0, "no worker to remove\n")


async def test_workers_usage_errors(rota, capsys):
    import pytest

    for argv, says in ((["workers", "--older-than", "1h"], "--older-than goes with --prune"),
                       (["workers", "rm"], "rota workers rm ID"),
                       (["workers", "kill", "x"], "rota workers rm ID"),
                       (["workers", "rm", "x", "--prune"], "not both")):
        with pytest.raises(SystemExit):
            await rota(*argv)
        assert says in capsys.readouterr().err, argv


# ---- 20: one-off workflows by name; rota workflows ----------------------------------------


BATCH = {"name": "batch", "jobs": [{"id": "a", "command": "true"}]}


async def test_a_one_off_workflow_is_named_by_its_name_while_that_is_unique(api, rota):
    first = await create(api, BATCH)
    code, out, err = await rota("status", "batch")
    assert code == 0, err
    assert out.splitlines()[0] == f"{first['id']} (batch) run #1 ({first['latest_run_id']}): queued"
    await finish(api, await claim(api))
    code, out, _ = await rota("logs", "batch", "a")
    assert code == 0
    second = await create(api, BATCH)
    code, _, err = await rota("status", "batch")
    assert code == 2
    assert f"2 one-off workflows are named 'batch': {second['id']}, {first['id']}" in err
    assert "name one by its id" in err
    # an id wins over a name
    await put(api, "batch", "name: other\njobs:\n  x:\n    run: 'true'\n")
    code, out, _ = await rota("status", "batch")
    assert (code, out.splitlines()[0]) == (0, "batch (other): not started (start it: rota run batch)")


async def test_run_cancel_and_retry_take_a_one_off_name(api, rota):
    made = await create(api, BATCH, run=False)
    code, out, err = await rota("run", "batch")
    assert code == 0, err
    assert out.startswith(f"started {made['id']} run #1: ")
    code, out, err = await rota("cancel", "batch")
    assert code == 0 and "cancel requested" in out, err
    code, out, err = await rota("retry", "batch")
    assert code == 0 and "retrying" in out, err


async def test_guessing_what_a_name_is_leaves_no_refusal_in_the_servers_log(api, rota, caplog):
    made = await create(api, BATCH)
    await put(api, "ci", "jobs:\n  a:\n    run: 'true'\n")
    run = await start(api, "ci")
    with caplog.at_level(logging.INFO, logger="rota.access"):
        for target in ("batch", made["id"], "ci", run["run_id"], made["latest_run_id"]):
            code, _, err = await rota("status", target)
            assert code == 0, (target, err)
    assert [r.getMessage() for r in caplog.records if r.name == "rota.access"] == []
    code, _, err = await rota("status", "nothing-by-this-name")
    assert code == 2 and "no run or workflow 'nothing-by-this-name', nor a one-off workflow of that name" in err


async def test_workflows_lists_definitions(api, rota):
    await put(api, "ci", "name: CI\njobs:\n  a:\n    run: 'true'\n")
    await start(api, "ci")
    one_off = await create(api, BATCH, run=False)
    code, out, err = await rota("workflows")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["WORKFLOW", "NAME", "KIND", "RUNS", "LATEST", "UPDATED"]
    assert [row.split()[:5] for row in rows] == [[one_off["id"], "batch", "oneoff", "0", "-"],
                                                 ["ci", "CI", "put", "1", "#1"]]
    assert rows[1].split()[5] == "queued"
    code, out, _ = await rota("workflows", "--json")
    assert [w["id"] for w in json.loads(out)] == [one_off["id"], "ci"]


# ---- 13: --cancel-on-interrupt ---------------------------------------------------------------


def test_cancel_on_interrupt_goes_with_a_wait(capsys):
    import pytest

    from worker.cli import main as cli

    for argv in (["run", "ci", "--cancel-on-interrupt"], ["retry", "RUN", "--cancel-on-interrupt"]):
        with pytest.raises(SystemExit):
            cli.parse(argv)
        assert "--cancel-on-interrupt is for a wait" in capsys.readouterr().err
    assert cli.parse(["submit", "ci.yml", "--follow", "--cancel-on-interrupt"]).cancel_on_interrupt
