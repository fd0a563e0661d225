"""`rota run --at/--in/--expires-in` and its per-run overrides, `rota
restart`, `rota reschedule` and `rota schedules [pause|resume]`, parsed as
the command line parses them and run against the in-process app."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.test_runs import YAML, claim, put
from worker.cli import main as cli
from worker.client.api import Client

TYPED = """
name: typed
on:
  schedule: [{cron: '0 3 * * *', timezone: Europe/Berlin}, {cron: '*/15 * * * *', catch-up: none}]
  workflow_dispatch:
    inputs:
      n: {type: number, default: 1}
      dry: {type: boolean, default: false}
jobs:
  a: {run: echo, labels: [linux]}
"""


def soon(days: int = 30) -> datetime:
    """A time within the year a run may be scheduled ahead, on a whole minute."""
    return (datetime.now(timezone.utc) + timedelta(days=days)).replace(second=0, microsecond=0)


def shown(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%SZ")


@pytest.fixture
async def typed(api):
    assert (await api.put("/api/workflows/typed", content=TYPED, headers=YAML)).status_code == 201


async def test_run_in_a_while_is_delayed_and_typed(api, rota, typed):
    code, out, err = await rota("run", "typed", "--in", "2h", "--input", "n=3", "--input", "dry=true",
                                "--expires-in", "3h", "--json")
    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "delayed" and run["inputs"] == {"n": 3, "dry": True}
    assert run["expires_at"] - run["scheduled_at"] == 3_600_000
    at = soon()
    code, out, _ = await rota("run", "typed", "--at", at.isoformat().replace("+00:00", "Z"))
    assert code == 0 and out.startswith("started typed run #2: ") and f"(delayed until {shown(at)})" in out
    code, out, _ = await rota("status", run["run_id"])
    lines = out.splitlines()
    assert lines[0].endswith(": delayed") and lines[1] == "inputs n=3, dry=true"
    assert lines[2].startswith("delayed until ") and "expires at " in lines[2]


async def test_a_bad_input_is_refused_naming_it(rota, typed):
    code, _, err = await rota("run", "typed", "--input", "n=many")
    assert code == 2 and "inputs.n" in err and "must be a number" in err


def usage_error(rota, capsys, *argv: str) -> bool:
    """The command line refuses `argv` (argparse exits 2 before anything is sent)."""
    from worker.cli import main as cli

    with pytest.raises(SystemExit) as info:
        cli.parse(["--server", "http://localhost", *argv])
    return info.value.code == 2


async def test_at_without_an_offset_is_this_machines_local_time(rota, typed, capsys):
    from worker.cli.timing import parse_time

    local = datetime(2099, 1, 1, 9, 0).astimezone()
    assert parse_time("2099-01-01T09:00") == round(local.timestamp() * 1000)
    assert parse_time("2099-01-01T09:00:00Z") == round(datetime(2099, 1, 1, 9, tzinfo=timezone.utc).timestamp() * 1000)
    assert parse_time("4070941200000") == 4070941200000
    assert usage_error(rota, capsys, "run", "typed", "--at", "next tuesday") and "is not a time like" in \
        capsys.readouterr().err


async def test_run_overrides_and_restart_on_other_labels(api, rota, typed):
    code, out, err = await rota("run", "typed", "--max-attempts", "3", "--priority", "9", "--job-timeout", "90s",
                                "--json")
    assert code == 0, err
    run = json.loads(out)
    assert run["overrides"] == {"max_attempts": 3, "timeout_secs": 90, "priority": 9}
    code, out, err = await rota("restart", run["run_id"], "--label", "gpu", "--json")
    assert code == 0, err
    new = json.loads(out)
    assert new["restarted_from"] == run["run_id"] and new["triggered_by"] == "restart"
    assert new["overrides"] == {"max_attempts": 3, "timeout_secs": 90, "priority": 9, "labels": ["gpu"]}
    assert (await claim(api, "gpu-box", ["gpu"]))["job"]["run_id"] == new["run_id"]
    code, out, _ = await rota("status", new["run_id"])
    assert f"restart of run {run['run_id']}" in out and "labels=gpu" in out
    code, out, _ = await rota("restart", "typed")  # a workflow: its latest run
    assert code == 0 and out.startswith("restarted as typed run #3: ")


async def test_reschedule_moves_or_starts_a_delayed_run(api, rota, typed, capsys):
    run = json.loads((await rota("run", "typed", "--in", "1h", "--json"))[1])
    at = soon(40)
    code, out, _ = await rota("reschedule", run["run_id"], "--at", at.isoformat())
    assert code == 0 and out.strip().endswith(f"now starts at {shown(at)}")
    code, out, _ = await rota("reschedule", run["run_id"], "--in", "now")
    assert code == 0 and out.strip().endswith("starts now")
    code, _, err = await rota("reschedule", run["run_id"], "--in", "0")
    assert code == 2 and "only a delayed run can be rescheduled" in err
    assert usage_error(rota, capsys, "reschedule", run["run_id"])
    assert "--at TIME or --in DURATION" in capsys.readouterr().err


async def test_schedules_lists_pauses_and_resumes(rota, typed, capsys):
    code, out, _ = await rota("schedules")
    header, first, second = out.splitlines()
    assert header.split()[:5] == ["SCHEDULE", "CRON", "TIMEZONE", "CATCH-UP", "STATE"]
    assert first.split()[:2] == ["typed:0", "0"] and "Europe/Berlin" in first and "active" in first
    assert second.split()[0] == "typed:1" and " none " in second
    code, out, _ = await rota("schedules", "pause", "typed:1")
    assert (code, out) == (0, "schedule typed:1 paused: its ticks start nothing until `rota schedules resume"
                              " typed:1`\n")
    code, out, _ = await rota("schedules", "--workflow", "typed", "--json")
    assert [s["paused"] for s in json.loads(out)] == [False, True]
    code, out, _ = await rota("schedules", "resume", "typed:1")
    assert code == 0 and out.startswith("schedule typed:1 resumed: next run at ")
    assert usage_error(rota, capsys, "schedules", "pause")
    assert "needs the schedule's id" in capsys.readouterr().err
    code, _, err = await rota("schedules", "pause", "typed:9")
    assert code == 2 and "no schedule 'typed:9'" in err


async def test_wait_on_a_delayed_run_says_until_when(api, rota, typed):
    from worker.cli import watch as cli_watch

    code, out, err = await rota("run", "typed", "--in", "1h", "--wait", "--timeout", "1s", "--json")
    # it waits delayed (said once, not "waiting for a worker"), then --timeout cancels it
    assert code == 1 and json.loads(out)["status"] == "cancelled"
    assert err.count("delayed until ") == 1 and "waiting for" not in err
    assert "expired" in cli_watch.FINISHED


async def test_runs_filters_delayed_and_expired(api, rota, typed):
    run = json.loads((await rota("run", "typed", "--in", "1h", "--json"))[1])
    code, out, _ = await rota("runs", "--status", "delayed")
    assert code == 0 and run["run_id"] in out
    code, out, _ = await rota("runs", "--status", "expired")
    assert code == 0 and run["run_id"] not in out
    await put(api, "plain", "jobs: {a: {run: x}}\n")


LABEL_WORDS = "must be a label: letters, digits and _ . : / = + -, 1 to 64 characters"


@pytest.mark.parametrize("command", [["run", "typed"], ["restart", "typed"]])
@pytest.mark.parametrize("flags, said", [
    (["--label", "bad label"], f"argument --label: invalid label 'bad label': {LABEL_WORDS}"),
    (["--add-label", "a,b"], f"argument --add-label: invalid label 'a,b': {LABEL_WORDS}"),
    (["--max-attempts", "0"], "argument --max-attempts: invalid value '0': must be a whole number from 1 to 101"),
    (["--priority", "500"], "argument --priority: invalid value '500': must be a whole number from -100 to 100"),
    (["--priority", "high"], "argument --priority: invalid value 'high': must be a whole number from -100 to 100"),
    (["--job-timeout", "8d"], "argument --job-timeout: invalid value '8d': must be a duration from 1s to 7d"),
    ([arg for i in range(33) for arg in ("--label", f"l{i}")], "--label: 33 labels, more than a job may need (32)"),
])
def test_bad_override_flags_are_refused_before_anything_is_sent(command, flags, said, capsys):
    sent = []

    def connect(server: str, token: str | None = None) -> Client:
        return Client(server, token=token, transport=httpx.MockTransport(lambda request: sent.append(request)))

    with pytest.raises(SystemExit) as info:
        cli.main([*command, *flags], client_factory=connect)
    err = capsys.readouterr().err
    assert info.value.code == 2 and said in err, err
    assert sent == []
