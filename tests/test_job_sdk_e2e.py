"""The in-job SDK end to end: a real server (`python -m server`, embedded
store), real `rota worker` daemons, and jobs that call `rota progress`,
`rota state`, ... and worker/sdk.py from their scripts.

Every test gives its jobs and workers a label of its own, so a worker of
one test never takes another's jobs.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys

import httpx
import pytest
import yaml

from tests.procs import ROTA, WorkerProc, kill_group, pid_alive, rota, wait_until
from tests.server_proc import ServerProcess
from worker.client.api import Client
from worker.daemon.claim_loop import Daemon
from worker.daemon.config import Timings, WorkerConfig

pytestmark = pytest.mark.slow

R = shlex.quote(ROTA[0])  # the `rota` a job runs: PATH inside a job need not hold it
PY = shlex.quote(sys.executable)


@pytest.fixture
def start_worker(server, tmp_path, label):
    workers: list[WorkerProc] = []

    def start(name: str = "w", *flags: str) -> WorkerProc:
        worker_proc = WorkerProc(server, tmp_path, f"{name}-{label}", "--labels", label, "--cancel-grace", "2", *flags)
        workers.append(worker_proc)
        return worker_proc

    yield start
    for worker_proc in workers:
        worker_proc.stop()


@pytest.fixture
def submit(server, tmp_path, label):
    """Submit a workflow whose every job carries the test's label; (workflow id, run id)."""

    def submit(jobs: dict, name: str = "wf") -> tuple[str, str]:
        for job in jobs.values():
            if "wait" not in job:  # a gate runs on no worker
                job["labels"] = [label, *job.get("labels", [])]
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump({"name": name, "on": "push", "jobs": jobs}))
        done = rota("submit", str(path), server=server)
        assert done.returncode == 0, done.stderr
        workflow_id = done.stdout.splitlines()[0]
        status = get(server, f"/api/workflows/{workflow_id}/status")
        return workflow_id, status["latest_run_id"]

    return submit


def get(server: ServerProcess, path: str, **params) -> dict:
    resp = httpx.get(server.url + path, params=params, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()


def job_view(server: ServerProcess, run: str, job: str) -> dict:
    return get(server, f"/api/runs/{run}/jobs/{job}")


def wait_run(server: ServerProcess, run: str, *wanted: str, logs=str, timeout: float = 30.0) -> dict:
    return wait_until(
        lambda: (r := get(server, f"/api/runs/{run}"))["status"] in wanted and r,
        f"run {run} to become {'/'.join(wanted)}",
        logs=lambda: f"{json.dumps(get(server, f'/api/runs/{run}'), indent=1)}\n{logs()}",
        timeout=timeout,
    )


def wait_job(server: ServerProcess, run: str, job: str, *wanted: str, logs=str) -> dict:
    return wait_until(
        lambda: (j := job_view(server, run, job))["status"] in wanted and j,
        f"job {job} to become {'/'.join(wanted)}",
        logs=lambda: f"{job_view(server, run, job)}\n{logs()}",
    )


# ---- the in-job commands from a real job ------------------------------------------------------


def test_in_job_commands_and_the_python_helper_from_real_jobs(server, start_worker, submit, label, tmp_path):
    worker_proc = start_worker("w", "--concurrency", "2")
    spawned = yaml.safe_dump({"jobs": {"spawned": {
        "labels": [label],
        "run": f'{R} state set from_spawned "$({R} state get colour)-seen"',
    }}})
    python = "\n".join([
        "from worker.sdk import current_job",
        "job = current_job()",
        "job.progress(60, 'in python')",
        "job.state.set('py', {'n': job.attempt + 1})",
        "job.annotate(tool='sdk')",
        "job.log('error', 'from python', code=7)",
        "job.output(lang='python')",
    ])
    _, run = submit({
        "first": {"run": "\n".join([
            f'{R} progress 45 "batch 3 of 10"',
            f'{R} log --level warn --data disk=sda "disk nearly full"',
            f'{R} log --level debug "chatter"',
            f"{R} state set colour blue",
            f"{R} annotate coverage=81% owner=ann",
            f"echo '**3** lint warnings' | {R} annotate --style warning --context lint",
            f"{R} output early=yes",
            f"cat > more.yml <<'EOF'\n{spawned}EOF",
            f"{R} spawn more.yml",
        ])},
        # waits for `spawned` too: the spawning job's dependents wait for what it adds
        "second": {"needs": "first", "run": "\n".join([
            f'echo "colour=$({R} state get colour)" >> "$ROTA_OUTPUT"',
            f'echo "spawned=$({R} state get from_spawned)" >> "$ROTA_OUTPUT"',
            f'echo "missing=$({R} state get nothing --default none)" >> "$ROTA_OUTPUT"',
        ])},
        "py": {"run": f"{PY} - <<'EOF'\n{python}\nEOF"},
    })
    wait_run(server, run, "success", "failure", logs=worker_proc.log)
    jobs = {job["id"]: job for job in get(server, f"/api/runs/{run}")["jobs"]}
    assert {job_id: job["status"] for job_id, job in jobs.items()} == {
        "first": "success", "second": "success", "spawned": "success", "py": "success"}, jobs

    first = job_view(server, run, "first")
    assert (first["progress"], first["current_step"]) == (45.0, "batch 3 of 10")
    assert first["annotations"] == {"coverage": "81%", "owner": "ann"}
    assert first["outputs"] == {"early": "yes"}
    warned = get(server, f"/api/runs/{run}/jobs/first/logs", level="warn")
    assert [(c["level"], c["data"], c["log_data"]) for c in warned] == [("warn", "disk nearly full", {"disk": "sda"})]
    notes = get(server, f"/api/runs/{run}")["notes"]
    assert [(n["context"], n["style"], n["markdown"], n["job_id"]) for n in notes] == [
        ("lint", "warning", "**3** lint warnings\n", "first")]

    assert job_view(server, run, "second")["outputs"] == {"colour": "blue", "spawned": "blue-seen", "missing": "none"}
    py = job_view(server, run, "py")
    assert (py["progress"], py["current_step"], py["annotations"], py["outputs"]) == (
        60.0, "in python", {"tool": "sdk"}, {"lang": "python"})
    errors = get(server, f"/api/runs/{run}/jobs/py/logs", level="error")
    assert [(c["data"].strip(), c["log_data"]) for c in errors] == [("from python", {"code": 7})]
    assert get(server, f"/api/runs/{run}/state") == {"colour": "blue", "from_spawned": "blue-seen", "py": {"n": 1}}


def test_in_job_commands_fail_clearly_outside_a_job_and_after_the_lease(server, start_worker, submit, tmp_path):
    worker_proc = start_worker()
    saved = tmp_path / "lease.json"
    _, run = submit({"once": {"run": f"{PY} -c 'import json, os; json.dump({{k: v for k, v in os.environ.items()"
                                     f" if k.startswith(\"ROTA_\")}}, open(\"{saved}\", \"w\"))'"}})
    wait_run(server, run, "success", logs=worker_proc.log)
    env = json.loads(saved.read_text())
    assert env["ROTA_RUN_TOKEN"] and env["ROTA_LEASE_ID"]

    late = rota("progress", "50", server=server, env={k: env[k] for k in ("ROTA_LEASE_ID", "ROTA_RUN_TOKEN")})
    assert (late.returncode, late.stdout) == (2, "")
    assert late.stderr == ("rota progress: this job's lease has ended (lease_lost: the job finished, was retried"
                           " or its lease expired); nothing was recorded\n")
    assert job_view(server, run, "once")["progress"] is None

    outside = rota("state", "set", "k", "v", server=server, env={"ROTA_LEASE_ID": ""})
    assert outside.returncode == 2 and outside.stdout == ""
    assert outside.stderr.startswith("rota state: not inside a rota job: ROTA_LEASE_ID is not set")
    assert outside.stderr.count("\n") == 1


# ---- checkpoints across a killed worker ----------------------------------------------------------------


def test_a_job_resumes_from_its_checkpoint_on_another_worker_after_its_worker_is_killed(
        server, start_worker, submit, tmp_path):
    doomed = start_worker("doomed", "--lease-ttl", "2")
    pidfile = tmp_path / "pid"
    _, run = submit({"long": {"retries": 1, "run": "\n".join([
        'if [ -n "$ROTA_CHECKPOINT" ]; then',
        f'  echo "loaded=$({R} checkpoint load)" >> "$ROTA_OUTPUT"',
        '  echo "attempt=$ROTA_ATTEMPT" >> "$ROTA_OUTPUT"',
        "  exit 0",
        "fi",
        f"echo '{{\"batch\": 6}}' | {R} checkpoint save -",
        f"echo '{{\"batch\": 7}}' | {R} checkpoint save -",
        f"echo $$ > {pidfile}",
        "sleep 300",
    ])}})
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), "the first attempt to checkpoint",
                         logs=doomed.log))
    doomed.kill()  # kill -9
    kill_group(pid)  # the machine died with its worker: so did the job
    rescuer = start_worker("rescuer")
    wait_run(server, run, "success", "failure", logs=rescuer.log)
    job = job_view(server, run, "long")
    assert job["status"] == "success" and job["worker_id"] == rescuer.worker_id
    assert json.loads(job["outputs"]["loaded"]) == {"batch": 7}
    assert job["outputs"]["attempt"] == "1"
    # both checkpoints are kept; the next attempt resumed from the latest
    assert [(c["attempt"], c["data"]) for c in get(server, f"/api/runs/{run}/jobs/long/checkpoints")] == [
        (0, {"batch": 6}), (0, {"batch": 7})]


# ---- waiting for an event ---------------------------------------------------------------------------------


WAITER = "\n".join([
    'if [ -z "$ROTA_EVENT" ]; then',
    f"  echo '{{\"stage\": \"built\"}}' | {R} checkpoint save -",
    "  echo asking to wait",
    "  echo $$ > {pidfile}",
    # The daemon stops the job once the server has recorded the wait: maybe
    # before `rota wait-event` itself exits, and surely in this sleep.
    "  {R} wait-event {key} --timeout 10m",
    "  sleep 300",
    "fi",
    'echo "event=$(cat "$ROTA_EVENT")" >> "$ROTA_OUTPUT"',
    'echo "checkpoint=$(cat "$ROTA_CHECKPOINT")" >> "$ROTA_OUTPUT"',
    'echo "attempt=$ROTA_ATTEMPT" >> "$ROTA_OUTPUT"',
])


def waiting_job(server, start_worker, submit, tmp_path, key: str) -> tuple[str, WorkerProc, str]:
    """A job that waits for event `key`: its workflow, its worker, its run, once the daemon has stopped it."""
    worker_proc = start_worker()
    pidfile = tmp_path / "pid"
    workflow_id, run = submit({"deploy": {"run": WAITER.replace("{R}", R).replace("{key}", key)
                                          .replace("{pidfile}", str(pidfile))}})
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), "the job to ask to wait",
                         logs=worker_proc.log))
    wait_until(lambda: not pid_alive(pid), "the daemon to stop the waiting job", logs=worker_proc.log)
    wait_until(lambda: f"{workflow_id}/deploy waits for event" in worker_proc.log(),
               "the worker to say the job waits", logs=worker_proc.log)
    job = job_view(server, run, "deploy")
    assert (job["status"], job["waiting_for"]) == ("waiting", key)
    assert [a["status"] for a in job["attempts"]] == ["waiting"]
    assert "lost lease" not in worker_proc.log() and "ERROR" not in worker_proc.log()
    # what it printed before it stopped is in its log
    assert "asking to wait" in "".join(c["data"] for c in get(server, f"/api/runs/{run}/jobs/deploy/logs"))
    workers = get(server, "/api/workers")
    assert [w["current_jobs"] for w in workers if w["worker_id"] == worker_proc.worker_id] == [[]]
    return workflow_id, worker_proc, run


def test_a_job_waits_for_an_event_and_resumes_with_its_payload_and_checkpoint(server, start_worker, submit,
                                                                               tmp_path, label):
    key = f"deploy.{label}"
    _, worker_proc, run = waiting_job(server, start_worker, submit, tmp_path, key)
    fired = httpx.post(f"{server.url}/api/events/{key}", json={"payload": {"approved_by": "ann"}}, timeout=5)
    assert fired.status_code == 200 and fired.json()["released"] == 1, fired.text
    wait_run(server, run, "success", "failure", logs=worker_proc.log)
    job = job_view(server, run, "deploy")
    assert job["status"] == "success"
    assert json.loads(job["outputs"]["event"]) == {"approved_by": "ann"}
    assert json.loads(job["outputs"]["checkpoint"]) == {"stage": "built"}
    assert job["outputs"]["attempt"] == "1"
    assert [a["status"] for a in job["attempts"]] == ["waiting", "success"]


def test_rota_approve_releases_a_waiting_job_and_a_gate(server, start_worker, submit, tmp_path, label):
    _, worker_proc, run = waiting_job(server, start_worker, submit, tmp_path, f"never.{label}")
    approved = rota("approve", run, "deploy", "--payload", "by=ann", "--payload", "ticket=OPS-1", server=server)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith(f"approved {run}/deploy: ")
    wait_run(server, run, "success", "failure", logs=worker_proc.log)
    job = job_view(server, run, "deploy")
    assert json.loads(job["outputs"]["event"]) == {"by": "ann", "ticket": "OPS-1"}

    # A YAML gate: never goes to a worker; its approval's payload becomes its outputs.
    _, gated = submit({
        "gate": {"wait": {"event": f"release.{label}", "timeout-minutes": 10}},
        "ship": {"needs": "gate", "env": {"BY": "${{ needs.gate.outputs.by }}"},
                 "run": 'echo "by=$BY" >> "$ROTA_OUTPUT"'},
    }, name="gated")
    wait_job(server, gated, "gate", "waiting", logs=worker_proc.log)
    again = rota("approve", gated, "ship", server=server)  # not waiting: refused, one line
    assert again.returncode == 2 and again.stderr.startswith("rota: error job_not_waiting: "), again.stderr
    assert rota("approve", gated, "gate", "--payload", "by=bob", server=server).returncode == 0
    wait_run(server, gated, "success", "failure", logs=worker_proc.log)
    assert job_view(server, gated, "ship")["outputs"] == {"by": "bob"}


def test_a_job_reaches_neither_the_deploy_fleet_nor_other_workflows(server, start_worker, submit, tmp_path, label):
    """Issue 14's audit with real workers: a job on one fleet spawning onto
    the exclusive deploy worker, and starting a run of another workflow, is
    refused; a job allowed to spawn onto deploy beside an unapproved gate
    waits for the approval."""
    fleet = start_worker()
    deploy = f"deploy-{label}"
    deployer = WorkerProc(server, tmp_path, f"deployer-{label}", "--labels", deploy, "--exclusive")
    try:
        inject = yaml.safe_dump({"jobs": {"inject": {"labels": [deploy], "run": "echo INJECTED; env"}}})
        hotfix = yaml.safe_dump({"jobs": {"hotfix": {"labels": [deploy], "run": "echo hotfix"}}})
        _, run = submit({
            "build": {"run": "\n".join([
                f"cat > inject.yml <<'EOF'\n{inject}EOF",
                f'{R} spawn inject.yml 2> jobs.err || echo "jobs=$?" >> "$ROTA_OUTPUT"',
                'echo \'{"workflow_id": "ci"}\' > child.json',
                f'{R} spawn child.json 2> child.err || echo "child=$?" >> "$ROTA_OUTPUT"',
                'echo "jobs_err=$(head -1 jobs.err)" >> "$ROTA_OUTPUT"',
                'echo "child_err=$(head -1 child.err)" >> "$ROTA_OUTPUT"',
            ])},
            "approve": {"needs": "build", "wait": {"event": f"ok.{label}"}},
            "lint": {"spawn": {"labels": [deploy]}, "run": "\n".join([
                f"cat > hotfix.yml <<'EOF'\n{hotfix}EOF",
                f"{R} spawn hotfix.yml",
            ])},
        })
        wait_job(server, run, "approve", "waiting", logs=fleet.log)
        outputs = job_view(server, run, "build")["outputs"]
        assert (outputs["jobs"], outputs["child"]) == ("2", "2"), outputs
        assert "spawn_not_allowed" in outputs["jobs_err"] and repr(deploy) in outputs["jobs_err"], outputs
        assert "spawn_not_allowed" in outputs["child_err"] and "'ci'" in outputs["child_err"], outputs
        wait_job(server, run, "lint", "success", logs=fleet.log)
        held = job_view(server, run, "hotfix")
        assert held["status"] == "queued" and held["blocked_by"]["needs"] == [{"job": "approve", "status": "waiting"}]
        assert rota("approve", run, "approve", server=server).returncode == 0
        wait_run(server, run, "success", "failure", logs=lambda: fleet.log() + deployer.log())
        assert job_view(server, run, "hotfix")["worker_id"] == deployer.worker_id
        assert "inject" not in {job["id"] for job in get(server, f"/api/runs/{run}")["jobs"]}
        assert get(server, f"/api/runs/{run}/children") == []
    finally:
        deployer.stop()


# ---- the daemon's own reports --------------------------------------------------------------------------------


def test_the_daemon_reports_each_step_with_its_exit_code(server, start_worker, submit):
    worker_proc = start_worker()
    _, run = submit({"build": {"steps": [
        {"name": "compile", "run": f"echo compiled\necho '{{\"built\": 1}}' | {R} checkpoint save -"},
        {"name": "test", "run": "echo 'tests broke' >&2\nexit 3"},
        {"name": "ship", "run": "echo never"},
    ]}})
    wait_run(server, run, "failure", "success", logs=worker_proc.log)
    steps = job_view(server, run, "build")["steps"]
    assert [(s["id"], s["name"], s["status"], s["exit_code"]) for s in steps] == [
        ("0", "compile", "completed", 0), ("1", "test", "failed", 3), ("2", "ship", "skipped", None)], steps
    assert all(s["duration_ms"] is not None for s in steps)
    assert steps[1]["error_message"] == "exit code 3: tests broke"
    # the daemon's step reports carry no artifacts: they never replace the job's own checkpoint
    assert [(c["attempt"], c["data"]) for c in get(server, f"/api/runs/{run}/jobs/build/checkpoints")] == [
        (0, {"built": 1})]


async def test_the_daemon_reports_the_jobs_cpu_and_memory(server, submit, tmp_path, label):
    gate = tmp_path / "gate"
    # busy in a child process (the job's process group is what is measured) until the test has seen samples
    _, run = submit({"busy": {"run": f"{PY} -c 'import os\nwhile not os.path.exists(\"{gate}\"): pass' & wait"}})
    config = WorkerConfig(server=server.url, labels=[label], worker_id=f"inproc-{label}",
                          workdir=str(tmp_path / "work"), claim_wait=1, cancel_grace=2,
                          timings=Timings(resource_interval_secs=0.1))
    async with Client(server.url) as client, httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        daemon = Daemon(config, client)
        task = asyncio.create_task(daemon.run())
        try:
            async def resources() -> dict | None:
                return (await http.get(f"/api/runs/{run}/jobs/busy")).json()["resources"]

            deadline = asyncio.get_running_loop().time() + 30
            while not ((res := await resources()) and res["peak_cpu_percent"] and res["peak_memory_bytes"]):
                assert asyncio.get_running_loop().time() < deadline, f"no busy sample reported: {res}"
                await asyncio.sleep(0.05)
            gate.touch()
            while (job := (await http.get(f"/api/runs/{run}/jobs/busy")).json())["status"] != "success":
                assert asyncio.get_running_loop().time() < deadline, job
                await asyncio.sleep(0.05)
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, 30)
    res = job["resources"]
    assert res["peak_memory_bytes"] > 4_000_000 and res["peak_memory_bytes"] >= res["memory_bytes"] > 0
    assert res["peak_cpu_percent"] > 0 and res["extra"]["processes"] >= 1
