"""The workflow language's step level end to end: a real server and real
`rota worker` processes running what the claim hands them (step `if:`,
env, ids and outputs, declared job outputs, `continue-on-error`,
`working-directory`, `shell`, `timeout-minutes`, the workflow's env and
`defaults.run`). Each test's jobs carry a label of its own."""

from __future__ import annotations

import pytest

from tests.procs import WorkerProc
from tests.test_language_e2e import finished, jobs, put, start

pytestmark = pytest.mark.slow


@pytest.fixture
def start_worker(server, tmp_path, label):
    workers: list[WorkerProc] = []

    def start_one(name: str) -> WorkerProc:
        workers.append(WorkerProc(server, tmp_path, f"{name}-{label}", "--labels", label, "--cancel-grace", "2"))
        return workers[-1]

    yield start_one
    for worker in workers:
        worker.stop()


def test_workflow_env_and_defaults_working_directory_are_what_the_script_sees(server, start_worker, label,
                                                                              tmp_path):
    worker = start_worker("w")
    trace = tmp_path / "trace"
    put(server, f"defaults-{label}", f"""
env:
  STAGE: ${{{{ inputs.stage }}}}
  KIND: static
defaults:
  run:
    working-directory: app
jobs:
  build:
    runs-on: {label}
    env:
      KIND: job
    steps:
      - name: checkout
        working-directory: .
        run: mkdir -p app/src
      - name: build
        run: echo "build $STAGE $KIND in ${{PWD##*/work}}" >> {trace}
      - name: deeper
        working-directory: app/src
        run: echo "deeper in ${{PWD##*/work}}" >> {trace}
""")
    view = finished(server, start(server, f"defaults-{label}", inputs={"stage": "prod"}), worker.log)
    assert view["status"] == "success", view
    # a step's own working-directory is relative to the job's, not to the default
    assert trace.read_text() == "build prod job in /app\ndeeper in /app/src\n"


def test_a_failing_step_with_continue_on_error_lets_the_run_succeed(server, start_worker, label, tmp_path):
    worker = start_worker("w")
    put(server, f"coe-{label}", f"""
jobs:
  lint:
    runs-on: {label}
    outputs:
      lint: ${{{{ steps.lint.outcome }}}}/${{{{ steps.lint.conclusion }}}}
    steps:
      - id: lint
        run: echo "style problems" >&2; exit 1
        continue-on-error: true
      - run: echo "tests pass"
""")
    view = finished(server, start(server, f"coe-{label}"), worker.log)
    assert view["status"] == "success", view
    lint = jobs(view)["lint"]
    assert lint["outputs"] == {"lint": "failure/success"}
    assert [(s["name"], s["status"]) for s in lint["steps"]] == [
        ('echo "style problems" >&2; exit 1', "failed"), ('echo "tests pass"', "completed")]


def test_a_failure_step_cleans_up_after_a_failed_one(server, start_worker, label, tmp_path):
    worker = start_worker("w")
    trace = tmp_path / "trace"
    put(server, f"cleanup-{label}", f"""
jobs:
  deploy:
    runs-on: {label}
    steps:
      - name: deploy
        id: deploy
        run: echo deploy >> {trace}; exit 3
      - name: smoke test
        run: echo smoke >> {trace}
      - name: roll back
        if: failure()
        env:
          WHY: ${{{{ steps.deploy.outcome }}}}
        run: |
          echo "roll back after a $WHY" >> {trace}
""")
    view = finished(server, start(server, f"cleanup-{label}"), worker.log)
    assert view["status"] == "failure", view
    assert trace.read_text() == "deploy\nroll back after a failure\n"
    deploy = jobs(view)["deploy"]
    assert deploy["error"] == "exit code 3 in step 'deploy'"
    assert [s["status"] for s in deploy["steps"]] == ["failed", "skipped", "completed"]


def test_step_outputs_become_job_outputs_and_reach_a_dependents_env(server, start_worker, label, tmp_path):
    worker = start_worker("w")
    trace = tmp_path / "trace"
    put(server, f"outputs-{label}", f"""
jobs:
  version:
    runs-on: {label}
    outputs:
      version: ${{{{ steps.compute.outputs.version }}}}
      channel: ${{{{ steps.compute.outputs.channel || 'stable' }}}}
    steps:
      - id: compute
        run: |
          echo "version=2.4.1" >> "$GITHUB_OUTPUT"
          echo "scratch=not declared" >> "$ROTA_OUTPUT"
  publish:
    needs: version
    runs-on: {label}
    env:
      VERSION: ${{{{ needs.version.outputs.version }}}}
      CHANNEL: ${{{{ needs.version.outputs.channel }}}}
      SCRATCH: ${{{{ needs.version.outputs.scratch }}}}
    run: echo "publish $VERSION to $CHANNEL [$SCRATCH]" >> {trace}
""")
    view = finished(server, start(server, f"outputs-{label}"), worker.log)
    assert view["status"] == "success", view
    assert jobs(view)["version"]["outputs"] == {"version": "2.4.1", "channel": "stable"}
    assert trace.read_text() == "publish 2.4.1 to stable []\n"


def test_shell_python_runs_the_step_with_python(server, start_worker, label, tmp_path):
    worker = start_worker("w")
    put(server, f"python-{label}", f"""
jobs:
  compute:
    runs-on: {label}
    outputs:
      total: ${{{{ steps.sum.outputs.total }}}}
    steps:
      - id: sum
        shell: python
        env:
          NUMBERS: ${{{{ join(fromJSON(inputs.numbers), ' ') }}}}
        run: |
          import os
          total = sum(int(n) for n in os.environ["NUMBERS"].split())
          with open(os.environ["GITHUB_OUTPUT"], "a") as f:
              print(f"total={{total}}", file=f)
""")
    view = finished(server, start(server, f"python-{label}", inputs={"numbers": "[1, 2, 39]"}), worker.log)
    assert view["status"] == "success", view
    assert jobs(view)["compute"]["outputs"] == {"total": "42"}


def test_a_step_timeout_fails_the_step_and_cleanup_still_runs(server, start_worker, label, tmp_path):
    worker = start_worker("w")
    trace = tmp_path / "trace"
    put(server, f"timeout-{label}", f"""
jobs:
  slow:
    runs-on: {label}
    steps:
      - name: hang
        timeout-minutes: 0.02
        run: sleep 300
      - name: cleanup
        if: always()
        run: echo cleaned >> {trace}
""")
    view = finished(server, start(server, f"timeout-{label}"), worker.log)
    assert view["status"] == "failure", view
    slow = jobs(view)["slow"]
    assert slow["error"] == "timed out after 1.2s (its timeout-minutes) in step 'hang'"
    assert [s["status"] for s in slow["steps"]] == ["failed", "completed"]
    assert trace.read_text() == "cleaned\n"
