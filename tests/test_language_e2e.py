"""The workflow language end to end, with a real server and real `rota
worker`s (today's daemon: it runs each job's `run:` with the env the server
rendered): conditions, a matrix routed by `runs-on: ${{ matrix.os }}` to
two labelled workers, max-parallel, an always() cleanup after a cancel,
continue-on-error, and the workflow env, inputs and matrix values the
scripts see. Each test's jobs carry a label of its own."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.procs import WorkerProc, wait_until
from tests.server_proc import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def start_worker(server, tmp_path, label):
    workers: list[WorkerProc] = []

    def start(name: str, *labels: str, flags: tuple[str, ...] = ()) -> WorkerProc:
        worker = WorkerProc(server, tmp_path, f"{name}-{label}", "--labels", ",".join([label, *labels]),
                            "--cancel-grace", "2", *flags)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def put(server: ServerProcess, name: str, document: str) -> None:
    resp = httpx.put(f"{server.url}/api/workflows/{name}", content=document.encode(),
                     headers={"content-type": "application/yaml"}, timeout=10)
    assert resp.status_code in (200, 201), resp.text


def start(server: ServerProcess, name: str, **body) -> str:
    resp = httpx.post(f"{server.url}/api/workflows/{name}/runs", json=body, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()["run_id"]


def run_of(server: ServerProcess, run: str) -> dict:
    return httpx.get(f"{server.url}/api/runs/{run}", timeout=10).json()


def finished(server: ServerProcess, run: str, logs=lambda: "") -> dict:
    return wait_until(lambda: (r := run_of(server, run))["status"] in ("success", "failure", "cancelled") and r,
                      f"run {run} to finish", timeout=60, logs=lambda: f"{run_of(server, run)}\n{logs()}")


def jobs(view: dict) -> dict[str, dict]:
    return {job["id"]: job for job in view["jobs"]}


def test_a_notify_job_runs_after_a_failure_and_not_after_a_success(server, start_worker, label, tmp_path):
    worker = start_worker("w")
    trace = tmp_path / "trace"
    put(server, f"notify-{label}", f"""
jobs:
  build:
    runs-on: {label}
    env:
      OUTCOME: ${{{{ inputs.outcome }}}}
    run: echo "build $OUTCOME" >> {trace}; [ "$OUTCOME" = ok ]
  notify:
    needs: build
    if: failure()
    runs-on: {label}
    env:
      RESULT: ${{{{ needs.build.result }}}}
    run: echo "notify $RESULT" >> {trace}
""")
    view = finished(server, start(server, f"notify-{label}", inputs={"outcome": "broken"}), worker.log)
    assert view["status"] == "failure"
    assert {j: v["status"] for j, v in jobs(view).items()} == {"build": "failure", "notify": "success"}
    view = finished(server, start(server, f"notify-{label}", inputs={"outcome": "ok"}), worker.log)
    assert view["status"] == "success" and jobs(view)["notify"]["status"] == "skipped"
    assert trace.read_text().splitlines() == ["build broken", "notify failure", "build ok"]


def test_a_matrix_is_routed_to_two_labelled_workers_with_its_values_in_env(server, start_worker, label, tmp_path):
    linux = start_worker("linux", f"{label}-linux", flags=("--exclusive",))
    mac = start_worker("mac", f"{label}-mac", flags=("--exclusive",))
    out = tmp_path / "out"
    out.mkdir()
    put(server, f"matrix-{label}", f"""
run-name: Matrix for ${{{{ inputs.release }}}}
env:
  RELEASE: r${{{{ inputs.release }}}}
jobs:
  test:
    runs-on: [{label}, '{label}-${{{{ matrix.os }}}}']
    strategy:
      matrix:
        os: [linux, mac]
        py: ['3.10', '3.11', '3.12']
        exclude:
          - os: mac
            py: '3.10'
        include:
          - os: linux
            py: '3.12'
            coverage: 'yes'
    env:
      PY: ${{{{ matrix.py }}}}
      COVERAGE: ${{{{ matrix.coverage || 'no' }}}}
      INDEX: ${{{{ strategy.job-index }}}}
    run: echo "$RELEASE $PY $COVERAGE $INDEX" > {out}/"$ROTA_JOB_ID"
""")
    run = start(server, f"matrix-{label}", inputs={"release": "7"})
    view = finished(server, run, lambda: linux.log() + mac.log())
    assert view["status"] == "success" and view["name"] == "Matrix for 7"
    combos = jobs(view)["test"]["combinations"]
    # 2 x 3, one excluded; the include adds coverage to linux 3.12
    assert combos == ["test-linux-3.10", "test-linux-3.11", "test-linux-3.12-yes", "test-mac-3.11", "test-mac-3.12"]
    seen = {path.name: path.read_text().split() for path in out.iterdir()}
    assert sorted(seen) == sorted(combos)
    for combo in combos:
        job = jobs(view)[combo]
        release, py, coverage, index = seen[combo][:4]
        assert (release, py) == ("r7", job["matrix"]["py"])
        assert coverage == ("yes" if job["matrix"].get("coverage") else "no")
        assert int(index) == combos.index(combo)
        # who ran it: the worker offering its os label
        assert job["worker_id"] == f"{job['matrix']['os']}-{label}", job


def test_max_parallel_one_runs_one_at_a_time_on_two_workers(server, start_worker, label, tmp_path):
    workers = [start_worker("a"), start_worker("b")]
    put(server, f"serial-{label}", f"""
jobs:
  step:
    runs-on: {label}
    strategy:
      max-parallel: 1
      matrix:
        n: [1, 2, 3, 4]
    run: sleep 0.2
""")
    view = finished(server, start(server, f"serial-{label}"), lambda: "".join(w.log() for w in workers))
    assert view["status"] == "success"
    spans = sorted((a["started_at"], a["finished_at"]) for j in view["jobs"] if j["matrix_of"] for a in j["attempts"])
    assert len(spans) == 4
    assert all(later >= end for (_, end), (later, _) in zip(spans, spans[1:])), spans


def test_an_always_job_cleans_up_after_a_cancel(server, start_worker, label, tmp_path):
    worker = start_worker("w")
    started, cleaned = tmp_path / "started", tmp_path / "cleaned"
    put(server, f"cleanup-{label}", f"""
jobs:
  long:
    runs-on: {label}
    run: touch {started}; sleep 60
  cleanup:
    needs: long
    if: always()
    runs-on: {label}
    env:
      CANCELLED: ${{{{ needs.long.result }}}}
    run: echo "$CANCELLED" > {cleaned}
""")
    run = start(server, f"cleanup-{label}")
    wait_until(started.exists, "the long job to start", timeout=30, logs=worker.log)
    assert httpx.post(f"{server.url}/api/runs/{run}/cancel", timeout=10).status_code == 202
    view = finished(server, run, worker.log)
    assert view["status"] == "cancelled"
    assert {j: v["status"] for j, v in jobs(view).items()} == {"long": "cancelled", "cleanup": "success"}
    assert cleaned.read_text().strip() == "cancelled"


def test_continue_on_error_lets_the_run_succeed(server, start_worker, label, tmp_path):
    worker = start_worker("w")
    put(server, f"coe-{label}", f"""
jobs:
  experimental:
    runs-on: {label}
    continue-on-error: true
    run: exit 3
  next:
    needs: experimental
    runs-on: {label}
    run: "true"
""")
    view = finished(server, start(server, f"coe-{label}"), worker.log)
    assert view["status"] == "success"
    assert {j: v["status"] for j, v in jobs(view).items()} == {"experimental": "failure", "next": "success"}


def test_a_dynamic_matrix_from_a_planning_job(server, start_worker, label, tmp_path):
    worker = start_worker("w")
    out = tmp_path / "built"
    put(server, f"dynamic-{label}", f"""
jobs:
  plan:
    runs-on: {label}
    run: |
      echo 'targets={{"arch": ["amd64", "arm64"]}}' >> "$ROTA_OUTPUT"
  build:
    needs: plan
    runs-on: {label}
    strategy:
      matrix: ${{{{ fromJSON(needs.plan.outputs.targets) }}}}
    env:
      ARCH: ${{{{ matrix.arch }}}}
    run: echo "$ARCH" >> {out}
""")
    view = finished(server, start(server, f"dynamic-{label}"), worker.log)
    assert view["status"] == "success", json.dumps(view)[:2000]
    assert sorted(Path(out).read_text().split()) == ["amd64", "arm64"]
