"""Daily use on real build fleets, end to end with real processes: large
outputs, a cancel that reaches the job whatever the lease TTL, exclusive
workers, liveness an operator can trust, and a workdir a killed worker left.

One server serves the module; every test gives its jobs and workers a label
of its own, except where a test needs an unlabelled job (then only that
test's workers are running).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.procs import Proc, WorkerProc, kill_group, rota, wait_until
from tests.server_proc import ServerProcess
from worker.cli import main as cli

pytestmark = pytest.mark.slow


@pytest.fixture
def start_worker(server, tmp_path, label):
    workers: list[WorkerProc] = []

    def start(name: str = "w", *flags: str, labels: tuple[str, ...] | None = None) -> WorkerProc:
        offered = ",".join(labels if labels is not None else (label,))
        worker = WorkerProc(server, tmp_path, f"{name}-{label}", "--labels", offered, "--cancel-grace", "2", *flags)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def submit(server: ServerProcess, tmp_path: Path, jobs: dict, name: str = "wf") -> str:
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump({"name": name, "on": "push", "jobs": jobs}))
    done = rota("submit", str(path), server=server)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def jobs_of(server: ServerProcess, workflow_id: str) -> dict[str, dict]:
    status = httpx.get(f"{server.url}/api/workflows/{workflow_id}/status", timeout=5).json()
    return {job["id"]: job for job in status["jobs"]}


def wait_job(server: ServerProcess, workflow_id: str, job_id: str, *states: str, logs=str, timeout=30.0) -> dict:
    return wait_until(
        lambda: (job := jobs_of(server, workflow_id)[job_id])["status"] in states and job,
        f"{workflow_id}/{job_id} to become {'/'.join(states)}", timeout=timeout,
        logs=lambda: f"{jobs_of(server, workflow_id)}\n{logs()}",
    )


def worker_row(server: ServerProcess, worker_id: str) -> dict | None:
    rows = httpx.get(f"{server.url}/api/workers", timeout=5).json()
    return next((w for w in rows if w["worker_id"] == worker_id), None)


def fill(name: str, size: int, char: str = "x") -> str:
    """Shell that appends `name=<size chars>` to $ROTA_OUTPUT (printf is a builtin: no argv limit)."""
    return f"printf '{name}=%s\\n' \"$(head -c {size} /dev/zero | tr '\\0' {char})\" >> \"$ROTA_OUTPUT\""


# ---- 1. large outputs ----------------------------------------------------------------------


def test_a_200_kb_output_reaches_a_dependent_through_the_upstream_outputs_file(server, start_worker, label,
                                                                                 tmp_path):
    worker = start_worker()
    reader = (f"{sys.executable} -c \"import json, os; d = json.load(open(os.environ['ROTA_UPSTREAM_OUTPUTS']));"
              " print('size=%d' % len(d['produce']['report']))\" >> \"$ROTA_OUTPUT\"")
    workflow_id = submit(server, tmp_path, {
        "produce": {"labels": [label], "run": fill("report", 200_000)},
        "read": {"labels": [label], "needs": "produce", "run": reader},
        # The same output through env: is too large for one variable: a reason, not errno 7.
        "envvar": {"labels": [label], "needs": "produce", "env": {"REPORT": "${{ needs.produce.outputs.report }}"},
                   "run": "echo never"},
    })
    read = wait_job(server, workflow_id, "read", "success", "failure", logs=worker.log)
    assert (read["status"], read["outputs"]) == ("success", {"size": "200000"}), read
    envvar = wait_job(server, workflow_id, "envvar", "success", "failure", logs=worker.log)
    assert envvar["status"] == "failure"
    assert envvar["error"].startswith("env REPORT: the value is 200000 bytes, too large for an environment variable")


def test_a_2_mib_output_fails_its_producer_with_the_reason(server, start_worker, label, tmp_path):
    worker = start_worker()
    workflow_id = submit(server, tmp_path, {
        "huge": {"labels": [label], "retries": 2, "run": fill("big", 2 * 1024 * 1024)},
        "after": {"labels": [label], "needs": "huge", "run": "true"},
    })
    job = wait_job(server, workflow_id, "huge", "success", "failure", logs=worker.log)
    assert job["status"] == "failure" and job["attempt"] == 0, job  # not retried: it would fail the same way
    assert job["error"].startswith(
        f"outputs are {3 + 2 * 1024 * 1024} bytes, over the server's MAX_OUTPUT_BYTES (1048576 bytes)"), job
    assert wait_job(server, workflow_id, "after", "skipped")["status"] == "skipped"


# ---- 2. a cancel reaches the job whatever the lease TTL ----------------------------------


def test_a_cancel_signals_the_job_at_once_with_a_long_lease(server, start_worker, label, tmp_path):
    worker = start_worker("w", "--lease-ttl", "300")  # heartbeats only every 100 s
    started, terminated = tmp_path / "started", tmp_path / "terminated"
    workflow_id = submit(server, tmp_path, {"hang": {"labels": [label], "run": (
        f"trap 'echo TERM > {terminated}; exit 0' TERM\ntouch {started}\nsleep 300 &\nwait"
    )}})
    wait_until(started.exists, "the job to start", logs=worker.log)
    cancel = httpx.post(f"{server.url}/api/workflows/{workflow_id}/cancel", timeout=5)
    assert cancel.status_code < 300, cancel.text
    # The event, not a time: without the long-poll it would come at the next
    # heartbeat, 100 s away, past this wait's deadline.
    wait_until(terminated.exists, "the job's process group to get SIGTERM", logs=worker.log)
    assert jobs_of(server, workflow_id)["hang"]["status"] == "cancelled"


# ---- 3. exclusive workers ----------------------------------------------------------------


def test_an_exclusive_worker_leaves_an_unlabelled_job_for_another_worker(server, start_worker, label, tmp_path):
    deploy = start_worker("deploy", "--exclusive")
    plain_wf = submit(server, tmp_path, {"plain": {"run": "true"}}, name="plain")  # queued first
    mine_wf = submit(server, tmp_path, {"mine": {"labels": [label], "run": "true"}}, name="mine")
    mine = wait_job(server, mine_wf, "mine", "success", "failure", logs=deploy.log)
    assert (mine["status"], mine["worker_id"]) == ("success", deploy.worker_id)
    # Claims go oldest first: had the deploy box been able to take `plain`, it would have.
    assert jobs_of(server, plain_wf)["plain"]["status"] == "queued"
    assert worker_row(server, deploy.worker_id)["exclusive"] is True
    other = start_worker("other")
    plain = wait_job(server, plain_wf, "plain", "success", "failure", logs=other.log)
    assert (plain["status"], plain["worker_id"]) == ("success", other.worker_id)


def test_exclusive_without_labels_is_refused_before_connecting(tmp_path):
    proc = Proc("worker", [sys.executable, "-m", "worker", "--exclusive", "--server", "http://127.0.0.1:9",
                           "--workdir", str(tmp_path / "work")], tmp_path / "w.log", {"ROTA_LABELS": ""})
    assert proc.wait() == 2
    assert "--exclusive needs --labels" in proc.log(), proc.log()
    assert not (tmp_path / "work").exists()


# ---- 4. liveness ---------------------------------------------------------------------------


def test_a_worker_stopped_with_sigterm_shows_stopped(server, start_worker):
    worker = start_worker()
    assert worker_row(server, worker.worker_id)["status"] == "idle"
    worker.send(signal.SIGTERM)
    assert worker.wait() == 0, worker.log()
    row = worker_row(server, worker.worker_id)
    assert row is not None and row["status"] == "stopped", row
    assert (row["concurrency"], row["host"]) == (1, os.uname().nodename), row


def test_a_killed_worker_holding_a_job_shows_lost_after_its_grace(server, start_worker, label, tmp_path):
    # Grace: 2 x max(claim wait 1 s, TTL/3 = 8 s) + 5 s = 21 s unseen; the
    # lease (24 s) outlives it, so for 3 s the worker is lost, not offline.
    worker = start_worker("doomed", "--lease-ttl", "24", "--claim-wait", "1")
    pidfile = tmp_path / "job.pid"
    workflow_id = submit(server, tmp_path, {"job": {"labels": [label], "run": f"echo $$ > {pidfile}\nsleep 300"}})
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), "the job to start", logs=worker.log)
    assert worker_row(server, worker.worker_id)["status"] == "busy"
    worker.kill()
    kill_group(int(pidfile.read_text()))  # the machine died with its worker: so did the job
    wait_until(lambda: worker_row(server, worker.worker_id)["status"] == "lost",
               "the killed worker to show lost", timeout=30,
               logs=lambda: f"{worker_row(server, worker.worker_id)}\n{worker.log()}")
    assert jobs_of(server, workflow_id)["job"]["status"] == "running"  # its lease has not expired yet


# ---- 5. the workdir ------------------------------------------------------------------------


def test_a_killed_workers_job_directories_are_swept_and_a_workdir_is_not_shared(server, tmp_path, label):
    workdir = tmp_path / "work-shared"
    stale = workdir / "wf-old.build.k2j4h5g6"  # as a killed worker leaves it
    (stale / "work" / "obj").mkdir(parents=True)
    (stale / "output").write_text("")
    (stale / "upstream-outputs.json").write_text("{}")
    unrelated = workdir / "ccache"
    unrelated.mkdir()
    first = WorkerProc(server, tmp_path, f"first-{label}", "--labels", label, "--workdir", str(workdir))
    try:
        assert not stale.exists() and unrelated.exists()
        assert "removed 1 stale job directory" in first.log()
        second = Proc("second", [sys.executable, "-m", "worker", "--server", server.url, "--labels", label,
                                 "--worker-id", f"second-{label}", "--workdir", str(workdir)],
                      tmp_path / "second.log", {})
        assert second.wait() == 2, second.log()
        assert f"another rota worker (pid {first.pid}) is using workdir {workdir}" in second.log(), second.log()
        assert worker_row(server, f"second-{label}") is None  # refused before registering
    finally:
        first.stop()


@pytest.mark.parametrize("argv,says", [
    (["--labels", "linux,my label"], "argument --labels: invalid label 'my label': must be a label: letters,"
                                     " digits and _ . : / = + -, 1 to 64 characters"),
    (["--concurrency", "0"], "argument --concurrency: invalid value '0': must be a whole number ≥ 1"),
    (["--lease-ttl", "1.5"], "argument --lease-ttl: invalid value '1.5': must be a whole number from 1 to 86400"),
    (["--claim-wait", "0"], "argument --claim-wait: invalid value '0': must be a number of seconds above 0"),
    (["--drain-timeout", "soon"], "argument --drain-timeout: invalid value 'soon': must be a number of seconds ≥ 0"),
    (["--worker-id", "my box"], "argument --worker-id: invalid value 'my box': a worker id is 1 to 200 characters"),
])
def test_worker_flag_errors_are_in_words(argv, says, capsys):
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["worker", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "_positive_int" not in err and "\\Z" not in err, err


def test_exclusive_and_claim_wait_come_from_env(monkeypatch):
    monkeypatch.setenv("ROTA_CLAIM_WAIT", "2.5")
    args = cli.build_parser().parse_args(["worker"])
    assert (args.claim_wait, args.exclusive) == (2.5, None)  # None: ROTA_EXCLUSIVE decides at start
    assert cli.build_parser().parse_args(["worker", "--exclusive"]).exclusive is True
