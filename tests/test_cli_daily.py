"""`rota` in daily use (issue 10): global flags, what --wait says it waits
for, --timeout, --json, stdin and idempotent submits, problems as
FILE:LINE:COL, --follow to each job's end, completion. Unit tests run on the
app in process; the `slow` ones run real `rota` and `rota worker` processes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import uuid

import httpx
import pytest
import yaml

from server import __version__
from server.reaper import reap_once
from tests.helpers import expire
from tests.procs import ROOT, ROTA, WorkerProc, rota_background, wait_until
from tests.procs import rota as rota_proc
from tests.server_proc import ServerProcess
from tests.test_runs import claim, finish, put, start
from worker.cli import completion as cli_completion, main as cli, watch as cli_watch
from worker.cli.runs import problem_lines
from worker.client.api import Client
from worker.client.errors import ApiError


# ---- global flags -------------------------------------------------------------------


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert (info.value.code, capsys.readouterr().out) == (0, f"rota {__version__}\n")


def test_server_and_token_before_the_subcommand(monkeypatch):
    monkeypatch.delenv("ROTA_SERVER", raising=False)
    monkeypatch.delenv("ROTA_TOKEN", raising=False)
    args = cli.parse(["--server", "ci.example:3000", "--token", "t-before", "workers"])
    assert (args.server, args.token, args.token_source) == ("http://ci.example:3000", "t-before", "--token")
    args = cli.parse(["--server", "http://a:1", "workers", "--server", "http://b:2"])  # after wins
    assert args.server == "http://b:2"


def test_rota_server_without_a_scheme_means_http(monkeypatch):
    monkeypatch.setenv("ROTA_SERVER", "build-box:3000")
    assert cli.parse(["workers"]).server == "http://build-box:3000"
    monkeypatch.setenv("ROTA_SERVER", "https://rota.example")
    assert cli.parse(["workers"]).server == "https://rota.example"


def test_a_server_url_ending_in_api_is_explained(capsys):
    def not_found(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no such path", "details": None}})

    def connect(server: str, token: str | None = None) -> Client:
        return Client(server, token=token, transport=httpx.MockTransport(not_found))

    assert cli.main(["workers", "--server", "http://rota.example:3000/api"], client_factory=connect) == 2
    err = capsys.readouterr().err
    assert "ends in /api" in err and "http://rota.example:3000;" in err, err


# ---- --wait ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def until(condition, what: str, tries: int = 2000):
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never: {what}")


GPU = """
name: train
jobs:
  train:
    labels: [gpu]
    run: python train.py
"""


# A test's watch reads the run often, and asks why jobs queue at every read.
FAST = cli_watch.Pace(interval=0.005, blocked_check_secs=0.0)


async def test_wait_says_it_waits_for_a_worker_with_the_labels_once_a_minute(app, api):
    await put(api, "train", GPU)
    run = await start(api, "train")
    out, clock = io.StringIO(), Clock()
    said = lambda: out.getvalue().count("waiting for a worker with [gpu]: none registered")  # noqa: E731
    async with Client("http://localhost", transport=httpx.ASGITransport(app=app)) as client:
        task = asyncio.create_task(cli_watch.watch(client, run["run_id"], follow=False, out=out, clock=clock,
                                                   pace=FAST))
        await until(lambda: said() == 1, "the first waiting line")
        clock.now = 30.0
        await until(lambda: out.getvalue().count("\n") >= 2 and said() == 1 and clock.now == 30.0, "30 s on")
        for _ in range(20):  # many more checks within the minute: still said once
            await asyncio.sleep(0.005)
        assert said() == 1
        clock.now = 61.0
        await until(lambda: said() == 2, "the line again a minute later")
        assert "[1:01] waiting for a worker with [gpu]: none registered" in out.getvalue()
        await api.post(f"/api/runs/{run['run_id']}/cancel")
        assert await task == 1
    assert out.getvalue().splitlines()[0] == "[0:00] train: queued"


async def test_wait_timeout_cancels_the_run_and_fails(app, api):
    await put(api, "train", GPU)
    run = await start(api, "train")
    out, clock = io.StringIO(), Clock()
    async with Client("http://localhost", transport=httpx.ASGITransport(app=app)) as client:
        task = asyncio.create_task(cli_watch.watch(client, run["run_id"], follow=False, out=out, clock=clock,
                                                   timeout=90, pace=FAST))
        await until(lambda: "train: queued" in out.getvalue(), "the first state")
        assert not task.done()
        clock.now = 91.0
        assert await asyncio.wait_for(task, 10) == 1
    assert f"timed out after 90s: cancelling run {run['run_id']}" in out.getvalue()
    assert (await api.get(f"/api/runs/{run['run_id']}")).json()["status"] == "cancelled"


FLAKY = """
name: flaky
jobs:
  f:
    retries: 1
    run: ./flaky.sh
"""


async def _end_attempt(app, api, claimed: dict, how: str) -> None:
    lid = claimed["lease"]["lease_id"]
    if how == "failed":
        await finish(api, claimed, ok=False, error="exit code 7", retryable=True)
    elif how == "lost":
        await expire(app.state.store, lid)
        await reap_once(app.state.store)
    else:  # its worker stopped and handed it back
        assert (await api.post(f"/api/jobs/{lid}/release", json={"reason": "draining"})).status_code == 200


@pytest.mark.parametrize("how, said", [
    ("failed", "after attempt 0 failed: exit code 7"),
    ("lost", "after attempt 0 was lost: lease expired"),
    ("handed back", "after attempt 0 was handed back by worker w: draining"),
])
async def test_wait_says_why_a_retry_already_running_was_retried(app, api, how, said):
    """The trial's case: attempt 0 ends and the next is claimed before the
    wait reads the run; it reads `running (attempt 1)` and says why."""
    await put(api, "flaky", FLAKY)
    run = await start(api, "flaky")
    await _end_attempt(app, api, await claim(api), how)
    again = await claim(api)
    assert again["job"]["attempt"] == 1
    out = io.StringIO()
    async with Client("http://localhost", transport=httpx.ASGITransport(app=app)) as client:
        task = asyncio.create_task(cli_watch.watch(client, run["run_id"], follow=False, out=out, pace=FAST))
        await until(lambda: "f: running" in out.getvalue(), "the first state")
        await finish(api, again)
        assert await asyncio.wait_for(task, 30) == 0
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines[:2] == [f"f: running (attempt 1) {said}", "f: success (attempt 1)"]


def test_timeout_without_wait_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        cli.parse(["run", "ci", "--timeout", "5m"])
    assert "--timeout bounds a wait" in capsys.readouterr().err


# ---- status --full, problems ------------------------------------------------------------


async def test_status_full_shows_errors_whole(api, rota):
    await put(api, "train", GPU.replace("labels: [gpu]\n", ""))
    await start(api, "train")
    long = "exit code 1: " + "x" * 120 + "\nTraceback line two"
    await finish(api, await claim(api), ok=False, error=long)
    _, short, _ = await rota("status", "train")
    assert "x" * 120 not in short and "…" in short
    _, full, _ = await rota("status", "train", "--full")
    assert "x" * 120 in full and "  Traceback line two" in full


def test_problem_lines_are_file_line_col():
    exc = ApiError(422, "invalid_workflow", "2 problems", {"problems": [
        {"field": "jobs.a.needs", "message": "unknown job 'ghost'", "line": 4, "column": 12},
        {"field": "name", "message": "required"},
    ]})
    assert problem_lines("ci.yml", exc) == (
        "ci.yml:4:12: jobs.a.needs: unknown job 'ghost'\nci.yml: name: required\n"
        "rota: ci.yml: 2 problems; nothing was submitted"
    )
    assert problem_lines("ci.yml", ApiError(422, "invalid_body", "x", {"field": "$"})) is None


# ---- completion -------------------------------------------------------------------------


def test_completion_is_generated_from_the_parser():
    parser = cli.build_parser()
    script = cli_completion.bash_script(parser)
    for word in ("submit", "dead-letters", "--idempotency-key", "--attempt", "revoke"):
        assert word in script
    extra = parser._subparsers._group_actions[0].add_parser("frobnicate")  # type: ignore[union-attr]
    extra.add_argument("--zap")
    script = cli_completion.bash_script(parser)
    assert "frobnicate" in script and "--zap" in script


def complete_in_bash(line: str) -> list[str]:
    script = subprocess.run([*ROTA, "completion", "bash"], capture_output=True, text=True, check=True).stdout
    probe = (script + '\nread -ra COMP_WORDS <<< "$LINE"; [[ "$LINE" == *" " ]] && COMP_WORDS+=("");'
             ' COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _rota; printf "%s\\n" "${COMPREPLY[@]}"')
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env={**os.environ, "LINE": line})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completion_completes_commands_flags_and_choices():
    assert complete_in_bash("rota dead") == ["dead-letters"]
    assert complete_in_bash("rota token re") == ["revoke"]
    assert "--idempotency-key" in complete_in_bash("rota submit --")
    assert sorted(complete_in_bash("rota runs --status ")) == ["cancelled", "delayed", "expired", "failure", "queued",
                                                                "running", "success"]
    assert {"bash", "zsh"} <= set(complete_in_bash("rota completion "))
    zsh = subprocess.run([*ROTA, "completion", "zsh"], capture_output=True, text=True, check=True).stdout
    assert zsh.startswith("#compdef rota") and "dead-letters" in zsh


# ---- real processes -----------------------------------------------------------------------


@pytest.fixture
def worker(server, tmp_path, label):
    proc = WorkerProc(server, tmp_path, f"w-{label}", "--labels", label, "--cancel-grace", "5")
    yield proc
    proc.stop()


def document(label: str, jobs: dict, name: str = "wf") -> str:
    for job in jobs.values():
        job["labels"] = [label]
    return yaml.safe_dump({"name": name, "on": "push", "jobs": jobs})


def rota_stdin(server: ServerProcess, text: str, *args: str, env: dict | None = None):
    return subprocess.run([*ROTA, *args], cwd=ROOT, input=text, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ROTA_SERVER": server.url, **(env or {})})


@pytest.mark.slow
def test_submit_from_stdin_with_json_output(server, worker, label):
    done = rota_stdin(server, document(label, {"hi": {"run": "echo from stdin"}}), "submit", "-", "--wait", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)  # stdout is the JSON alone; the state lines went to stderr
    assert answer["run"]["status"] == "success" and answer["workflow"]["id"] == answer["run"]["workflow_id"]
    assert "hi: success" in done.stderr
    logs = rota_proc("logs", answer["workflow"]["id"], "hi", server=server)
    assert logs.stdout == "from stdin\n"


@pytest.mark.slow
def test_an_idempotency_key_makes_a_retried_submit_create_nothing_new(server, label, tmp_path):
    path = tmp_path / "ci.yml"
    path.write_text(document(label, {"a": {"run": "true"}}))
    key = f"ci-{uuid.uuid4().hex}"
    first = rota_proc("submit", str(path), "--idempotency-key", key, server=server)
    again = rota_proc("submit", str(path), server=server, env={"ROTA_IDEMPOTENCY_KEY": key})
    other = rota_proc("submit", str(path), server=server)
    assert first.returncode == again.returncode == other.returncode == 0, first.stderr + again.stderr
    assert first.stdout == again.stdout != other.stdout


@pytest.mark.slow
def test_every_problem_of_a_refused_file_as_file_line_col(server, tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("name: x\njobs:\n  a:\n    needs: [ghost]\n    run: 'true'\n  b:\n    retries: many\n"
                    "    run: 'true'\n")
    done = rota_proc("submit", str(path), server=server)
    assert done.returncode == 2 and done.stdout == ""
    *problems, summary = done.stderr.splitlines()
    where = re.escape(str(path))
    assert len(problems) == 2, done.stderr  # every problem, one a line, in the server's order
    assert any(re.fullmatch(rf"{where}:4:\d+: jobs\.a\.needs.*: .*ghost.*", line) for line in problems), problems
    assert any(re.fullmatch(rf"{where}:7:\d+: jobs\.b\.retries: .+", line) for line in problems), problems
    assert summary == f"rota: {path}: 2 problems; nothing was submitted"
    stdin = rota_stdin(server, path.read_text(), "submit", "-")
    assert sorted(line.split(":")[:2] for line in stdin.stderr.splitlines()[:2]) == [["<stdin>", "4"],
                                                                                  ["<stdin>", "7"]]


@pytest.mark.slow
def test_json_output_parses_for_every_command(server, worker, label, tmp_path):
    path = tmp_path / "ci.yml"
    path.write_text(document(label, {"a": {"run": "true"}}))
    workflow_id = f"json-{label}"
    submitted = rota_proc("submit", str(path), "--id", workflow_id, "--wait", "--json", server=server)
    assert json.loads(submitted.stdout)["run"]["status"] == "success", submitted.stderr
    run_id = json.loads(submitted.stdout)["run"]["run_id"]
    for argv, check in [
        (["status", workflow_id], lambda v: v["run_id"] == run_id),
        (["status", run_id], lambda v: v["jobs"][0]["status"] == "success"),
        (["runs", workflow_id], lambda v: [r["run_id"] for r in v] == [run_id]),
        (["run", workflow_id, "--wait"], lambda v: v["number"] == 2 and v["status"] == "success"),
        (["workers"], lambda v: worker.worker_id in [w["worker_id"] for w in v]),
        (["dead-letters", "--workflow", workflow_id], lambda v: v == []),
        (["token", "list"], lambda v: isinstance(v, list)),
    ]:
        done = rota_proc(*argv, "--json", server=server)
        assert done.returncode == 0, (argv, done.stderr)
        assert check(json.loads(done.stdout)), (argv, done.stdout)


@pytest.mark.slow
def test_wait_says_why_a_job_was_retried_with_a_real_worker(server, worker, label, tmp_path):
    """The trial's repro: retries 1, no backoff, attempt 0 exits 7. Whether
    the wait reads the job queued, running again or already done, it says why."""
    path = tmp_path / "flaky.yml"
    path.write_text(document(label, {"f": {"retries": 1, "run": 'test "$ROTA_ATTEMPT" != 0 || exit 7'}}))
    done = rota_proc("submit", str(path), "--id", f"flaky-{label}", "--wait", server=server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"f: (queued|running|success) \(attempt 1\) after attempt 0 failed: exit code 7", done.stdout), done.stdout


@pytest.mark.slow
def test_follow_prints_a_cancelled_jobs_last_lines(server, worker, label, tmp_path):
    path = tmp_path / "trap.yml"
    path.write_text(document(label, {"hang": {"run": (
        "trap 'sleep 0.3; echo cleanup done; exit 1' TERM\necho started\nwhile true; do sleep 0.05; done")}}))
    follower = rota_background("submit", str(path), "--follow", server=server, logdir=tmp_path, name="follow")
    wait_until(lambda: "hang | started" in follower.log(), "the job to start", logs=lambda: follower.log() + worker.log())
    workflow_id = follower.logfile.read_text().splitlines()[0]
    cancel = rota_proc("cancel", workflow_id, server=server)
    assert cancel.returncode == 0, cancel.stderr
    assert follower.wait(30) == 1
    lines = [re.sub(r"^\[\d+:\d\d\] ", "", line) for line in follower.logfile.read_text().splitlines()]
    assert "hang | cleanup done" in lines, lines
    assert lines[-1] == f"workflow {workflow_id} run #1: cancelled"
    again = rota_proc("cancel", workflow_id, server=server)
    assert again.returncode == 0 and "nothing to cancel (no-op)" in again.stdout


def test_output_into_a_pipe_whose_reader_has_gone_is_no_traceback():
    read_end, write_end = os.pipe()
    os.close(read_end)  # `rota ... | head -0`: nobody will read
    try:
        done = subprocess.run([*ROTA, "completion", "bash"], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")
