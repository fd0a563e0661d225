"""End to end with real processes: `python -m server` (embedded store),
`rota worker` daemons and the `rota` CLI.

One server serves the module; every test gives its jobs and workers a
label of its own, so a worker from one test never takes another's jobs.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx
import pytest
import yaml

from tests.procs import ROTA, Proc, WorkerProc, pid_alive, rota, rota_background, wait_until
from tests.redis_proc import free_port
from tests.server_proc import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def start_worker(server, tmp_path, label):
    workers: list[WorkerProc] = []

    def start(name: str = "w", *flags: str, labels: tuple[str, ...] = ()) -> WorkerProc:
        worker = WorkerProc(
            server, tmp_path, f"{name}-{label}", "--labels", ",".join([label, *labels]), "--cancel-grace", "2", *flags
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def workflow(tmp_path, label):
    """Write a workflow file whose every job carries the test's label."""

    def write(jobs: dict, name: str = "wf") -> Path:
        for job in jobs.values():
            job["labels"] = [label, *job.get("labels", [])]
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump({"name": name, "on": "push", "jobs": jobs}))
        return path

    return write


def status(server: ServerProcess, workflow_id: str) -> dict:
    return httpx.get(f"{server.url}/api/workflows/{workflow_id}/status", timeout=5).json()


def jobs_of(server: ServerProcess, workflow_id: str) -> dict[str, dict]:
    return {job["id"]: job for job in status(server, workflow_id)["jobs"]}


def wait_status(server: ServerProcess, workflow_id: str, *wanted: str, logs=str) -> dict:
    return wait_until(
        lambda: (s := status(server, workflow_id))["status"] in wanted and s,
        f"workflow {workflow_id} to become {'/'.join(wanted)}",
        logs=lambda: f"{status(server, workflow_id)}\n{logs()}",
    )


def unstamped(stdout: str) -> list[str]:
    """`--wait` output without each state line's `[m:ss] ` elapsed-time stamp."""
    return [re.sub(r"^\[\d+:\d\d\] ", "", line) for line in stdout.splitlines()]


def submit(server: ServerProcess, path: Path) -> str:
    done = rota("submit", str(path), server=server)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_outputs_flow_through_rota_output_and_needs_with_follow(server, start_worker, workflow):
    start_worker()
    path = workflow({
        "build": {"steps": [
            {"name": "compile", "run": 'echo compiled\necho "version=1.2.3" >> "$ROTA_OUTPUT"'},
            {"name": "package", "run": "printf 'notes<<EOF\\nmulti\\nline\\nEOF\\n' >> \"$ROTA_OUTPUT\""},
        ]},
        "deploy": {
            "needs": "build",
            "env": {"VERSION": "v${{ needs.build.outputs.version }}"},
            "run": 'echo "deploying $VERSION"\necho "got=$VERSION" >> "$ROTA_OUTPUT"\n'
                   'echo "upstream=$(cat "$ROTA_UPSTREAM_OUTPUTS")" >> "$ROTA_OUTPUT"',
        },
    })
    done = rota("submit", str(path), "--follow", server=server)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = unstamped(done.stdout)
    workflow_id = lines[0]
    for expected in ["build | ::step:: compile", "build | compiled", "build | ::step:: package",
                     "deploy | deploying v1.2.3", "build: success", "deploy: success"]:
        assert expected in lines, done.stdout
    assert lines[-1] == f"workflow {workflow_id} run #1: success"
    jobs = jobs_of(server, workflow_id)
    assert jobs["build"]["outputs"] == {"version": "1.2.3", "notes": "multi\nline"}
    assert jobs["deploy"]["outputs"] == {
        "got": "v1.2.3", "upstream": '{"build": {"version": "1.2.3", "notes": "multi\\nline"}}',
    }


def test_failing_steps_retry_then_fail_and_skip_downstream(server, start_worker, workflow, tmp_path):
    start_worker()
    trace = tmp_path / "trace"
    path = workflow({
        "flaky": {"retries": 1, "steps": [
            {"name": "one", "run": f'echo "one-$ROTA_ATTEMPT" >> {trace}'},
            {"name": "two", "run": "echo 'it broke' >&2\nexit 3"},
            {"name": "three", "run": f"echo three >> {trace}"},
        ]},
        "after": {"needs": ["flaky"], "run": f"echo after >> {trace}"},
    })
    done = rota("submit", str(path), "--wait", server=server)
    assert done.returncode == 1, done.stdout + done.stderr
    workflow_id = done.stdout.splitlines()[0]
    assert unstamped(done.stdout)[-1] == f"workflow {workflow_id} run #1: failure"
    jobs = jobs_of(server, workflow_id)
    assert (jobs["flaky"]["status"], jobs["flaky"]["attempt"]) == ("failure", 1)
    assert jobs["flaky"]["error"] == "exit code 3 in step 'two': it broke"
    assert jobs["after"]["status"] == "skipped"
    assert trace.read_text() == "one-0\none-1\n"  # step three and `after` never ran

    logs = rota("logs", workflow_id, "flaky", server=server)
    assert logs.returncode == 0
    assert "::step:: two\n" in logs.stdout and "::step:: three" not in logs.stdout
    table = rota("status", workflow_id, server=server)
    assert table.returncode == 0
    assert any(line.split()[:3] == ["after", "skipped", "0"] for line in table.stdout.splitlines()), table.stdout


def test_cancel_kills_the_job_process_group(server, start_worker, workflow, tmp_path):
    worker = start_worker("w", "--lease-ttl", "3")
    pidfile = tmp_path / "child.pid"
    path = workflow({"hang": {"run": f"sleep 300 &\necho $! > {pidfile}\nwait"}})
    waiter = rota_background("submit", str(path), "--wait", server=server, logdir=tmp_path, name="wait")
    pid_text = wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), "the job to start",
                          logs=worker.log)
    workflow_id = waiter.logfile.read_text().splitlines()[0]
    cancel = rota("cancel", workflow_id, server=server)
    assert cancel.returncode == 0, cancel.stderr
    # SIGTERM comes with the answer to the parked heartbeat, SIGKILL 2 s later at worst.
    wait_until(lambda: not pid_alive(int(pid_text)), "the job's child process to be killed", timeout=10,
               logs=worker.log)
    assert waiter.wait() == 1
    assert jobs_of(server, workflow_id)["hang"]["status"] == "cancelled"
    wait_until(lambda: f"cancelled {workflow_id}/hang" in worker.log(),
               "the worker to log the cancellation", logs=worker.log)
    # Its stop report handed the lease back: the worker is not busy with it.
    workers = httpx.get(f"{server.url}/api/workers").json()
    assert [w["current_jobs"] for w in workers if w["worker_id"] == worker.worker_id] == [[]]


def test_timeout_minutes_kills_the_job_and_fails_it(server, start_worker, workflow):
    start_worker()
    path = workflow({"slow": {"timeout-minutes": 0.01, "run": "sleep 300"}})
    done = rota("submit", str(path), "--wait", server=server)
    assert done.returncode == 1, done.stdout + done.stderr
    job = jobs_of(server, done.stdout.splitlines()[0])["slow"]
    assert (job["status"], job["error"]) == ("failure", "timed out after 1s")
    # a timeout, told apart from a failure and from a lost lease
    assert (job["error_type"], job["attempts"][-1]["status"]) == ("timeout", "timed_out")


def test_sigterm_drains_running_jobs(server, start_worker, workflow, tmp_path):
    started = tmp_path / "started"
    worker = start_worker("patient")
    workflow_id = submit(server, workflow(
        {"finish": {"run": f"touch {started}\nsleep 0.5\necho done=1 >> $ROTA_OUTPUT"}}, name="finishes"
    ))
    wait_until(started.exists, "the job to start", logs=worker.log)
    worker.send(signal.SIGTERM)
    assert worker.wait() == 0, worker.log()
    job = jobs_of(server, workflow_id)["finish"]
    assert (job["status"], job["outputs"]) == ("success", {"done": "1"})


def test_a_job_running_at_the_drain_deadline_is_handed_back_and_finished_elsewhere(
        server, start_worker, workflow, tmp_path):
    # A rolling restart: the job outlives --drain-timeout, is stopped and
    # handed back, and runs again on the next worker with its (zero) retries
    # unspent.
    started = tmp_path / "started"
    impatient = start_worker("impatient", "--drain-timeout", "0.2")
    workflow_id = submit(server, workflow({"deploy": {
        "retries": 0,
        "run": f'if [ "$ROTA_ATTEMPT" = 0 ]; then echo $$ > {started}; sleep 600; fi\n'
               'echo "attempt=$ROTA_ATTEMPT" >> "$ROTA_OUTPUT"',
    }}, name="deploy"))
    pid = int(wait_until(lambda: started.exists() and started.read_text().strip(), "the job to start",
                         logs=impatient.log))
    impatient.send(signal.SIGTERM)
    assert impatient.wait() == 0, impatient.log()
    assert not pid_alive(pid)
    assert "it runs again, no retry spent" in impatient.log(), impatient.log()
    job = jobs_of(server, workflow_id)["deploy"]
    assert (job["status"], job["attempt"]) == ("queued", 1), job
    successor = start_worker("successor")
    done = wait_status(server, workflow_id, "success", "failure", logs=successor.log)
    assert done["status"] == "success", done
    job = jobs_of(server, workflow_id)["deploy"]
    assert (job["outputs"], job["worker_id"]) == ({"attempt": "1"}, successor.worker_id)
    events = httpx.get(f"{server.url}/api/workflows/{workflow_id}/events", timeout=5).json()
    assert any(e["detail"] == f"handed back by worker {impatient.worker_id}: worker shut down before the job"
               " finished" for e in events), events


def test_second_sigint_exits_at_once_and_kills_the_job(server, start_worker, workflow, tmp_path):
    worker = start_worker("w", "--drain-timeout", "300")
    pidfile = tmp_path / "child.pid"
    submit(server, workflow({"hang": {"run": f"sleep 300 &\necho $! > {pidfile}\nwait"}}))
    child = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), "the job to start",
                           logs=worker.log))
    worker.send(signal.SIGINT)
    wait_until(lambda: "draining" in worker.log(), "the worker to start draining", logs=worker.log)
    worker.send(signal.SIGINT)
    assert worker.wait() == 130, worker.log()
    wait_until(lambda: not pid_alive(child), "the job's child to be killed", logs=worker.log)


def test_killed_worker_job_is_taken_over_after_the_lease_expires(server, start_worker, workflow, tmp_path):
    doomed = start_worker("doomed", "--lease-ttl", "2")
    path = workflow({"job": {
        "retries": 1,
        "run": f'echo $$ > {tmp_path}/pid-$ROTA_ATTEMPT\n'
               '[ "$ROTA_ATTEMPT" = 0 ] && sleep 300\n'
               'echo "attempt=$ROTA_ATTEMPT" >> "$ROTA_OUTPUT"',
    }})
    workflow_id = submit(server, path)
    first = tmp_path / "pid-0"
    wait_until(lambda: first.exists() and first.read_text().strip(), "the first attempt to start", logs=doomed.log)
    doomed.kill()
    # its job dies with it (worker/supervisor.py), before the retry starts elsewhere
    wait_until(lambda: not pid_alive(int(first.read_text())), "the first attempt to die with its worker", timeout=30,
               logs=doomed.log)
    rescuer = start_worker("rescuer")
    wait_status(server, workflow_id, "success", "failure", logs=rescuer.log)
    job = jobs_of(server, workflow_id)["job"]
    assert (job["status"], job["attempt"], job["outputs"]) == ("success", 1, {"attempt": "1"})
    assert job["worker_id"] == rescuer.worker_id


def test_logs_follow_ends_when_the_job_ends(server, start_worker, workflow, tmp_path):
    worker = start_worker()
    gate = tmp_path / "gate"
    workflow_id = submit(server, workflow({"talk": {
        "run": f"echo line1\nwhile [ ! -e {gate} ]; do sleep 0.02; done\necho line2 >&2\necho line3",
    }}))
    follower = rota_background("logs", "-f", workflow_id, "talk", server=server, logdir=tmp_path, name="follow")
    wait_until(lambda: "line1" in follower.logfile.read_text(), "the first line to be followed", logs=worker.log)
    assert follower.popen.poll() is None  # still following: the job is still running
    gate.touch()
    assert follower.wait() == 0
    output = follower.logfile.read_text()
    assert output.startswith("line1\nline2\nline3\n") and "talk: success" in output, output
    history = rota("logs", workflow_id, "talk", server=server)
    assert history.stdout == "line1\nline2\nline3\n"


def test_workers_only_get_jobs_their_labels_allow(server, start_worker, workflow, label):
    linux = start_worker("linux", labels=("linux",))
    gpu = start_worker("gpu", labels=("gpu",))
    jobs = {f"{kind}{i}": {"labels": [kind], "run": "true"} for kind in ("linux", "gpu") for i in range(3)}
    done = rota("submit", str(workflow(jobs)), "--wait", server=server)
    assert done.returncode == 0, done.stdout + done.stderr
    ran_on = {job_id: job["worker_id"] for job_id, job in jobs_of(server, done.stdout.splitlines()[0]).items()}
    assert ran_on == {job_id: (linux if job_id.startswith("linux") else gpu).worker_id for job_id in jobs}

    listing = rota("workers", server=server)
    assert listing.returncode == 0
    rows = {line.split()[0]: line.split() for line in listing.stdout.splitlines()[1:]}
    assert rows[linux.worker_id][2] == ",".join(sorted([label, "linux"]))


def test_cli_errors(server, tmp_path):
    unknown = rota("status", "no-such-workflow", server=server)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("rota: error ") and "'no-such-workflow'" in unknown.stderr, unknown.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\njobs:\n  a:\n    needs: [ghost]\n    run: 'true'\n")
    invalid = rota("submit", str(bad), server=server)
    assert invalid.returncode == 2 and "ghost" in invalid.stderr, invalid.stderr
    down = rota("workers", "--server", "http://127.0.0.1:9", server=server)
    assert down.returncode == 2
    assert down.stderr.startswith("rota: cannot reach rota server at http://127.0.0.1:9: ")


def test_rota_server_starts_the_server(tmp_path):
    port = free_port()
    proc = Proc("rota server", [*ROTA, "server"], tmp_path / "server.log",
                {"PORT": str(port), "WORKFLOWS_DIR": "", "REDIS_URL": ""})
    try:
        wait_until(lambda: "rota listening" in proc.log(), "`rota server` to listen", logs=proc.log)
        assert httpx.get(f"http://127.0.0.1:{port}/api/workers", timeout=5).json() == []
    finally:
        proc.stop()
