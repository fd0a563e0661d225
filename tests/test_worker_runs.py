"""What a job learns of its run from the worker: its inputs and run id."""

from __future__ import annotations

from tests.test_worker_auth import FakeServer, read_env, run_job


async def test_a_job_sees_its_runs_inputs_as_rota_input_variables(tmp_path):
    fake = FakeServer()
    lease = fake.enqueue(f"env -0 > {tmp_path}/env", run_id="run-42",
                         inputs={"version": "1.2.3", "TARGET": "prod"},
                         env={"ROTA_INPUT_TARGET": "overridden by the job", "DEPLOY": "yes"})
    await run_job(fake, lease, tmp_path / "work")
    env = read_env(tmp_path / "env")
    assert env["ROTA_INPUT_VERSION"] == "1.2.3"
    assert env["ROTA_INPUT_TARGET"] == "overridden by the job"  # the job's own env: wins over an input
    assert env["ROTA_RUN_ID"] == "run-42" and env["DEPLOY"] == "yes"
