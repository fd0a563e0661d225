"""Auth end to end with real processes: a server with an admin token, a
worker token made with `rota token create`, a `rota worker` using it, and a
job that reports on its own lease with the run token it was handed."""

from __future__ import annotations

import httpx
import pytest

from tests.procs import WorkerProc, rota
from tests.server_proc import ServerProcess

pytestmark = pytest.mark.slow

ADMIN = "e2e-admin-token-0123456789abcdef0123456"

# The job proves what it holds: its run token works on its own lease's
# heartbeat, and no worker or admin token reached its environment.
JOB = """
python3 - <<'PY'
import json, os, urllib.request
req = urllib.request.Request(
    f"{os.environ['ROTA_SERVER']}/api/jobs/{os.environ['ROTA_LEASE_ID']}/heartbeat", method="POST",
    headers={"Authorization": "Bearer " + os.environ["ROTA_RUN_TOKEN"]})
print("heartbeat", urllib.request.urlopen(req).status)
print("leaked", sorted(k for k in os.environ if k in ("ROTA_TOKEN", "ROTA_ADMIN_TOKEN", "ROTA_TOKEN_FILE")))
PY
"""


def test_a_worker_with_its_own_token_runs_a_job_that_uses_its_run_token(tmp_path):
    with ServerProcess(ROTA_ADMIN_TOKEN=ADMIN) as server:
        admin = {"ROTA_TOKEN": ADMIN}
        made = rota("token", "create", "--name", "fleet", "--scope", "worker", server=server, env=admin)
        assert made.returncode == 0, made.stderr
        worker_token = made.stdout.strip()
        submit_token = rota("token", "create", "--name", "ci", "--scope", "submit", server=server,
                            env=admin).stdout.strip()
        # the worker holds its own token, and the admin token is in its environment too
        worker = WorkerProc(server, tmp_path, "box-1", "--labels", "e2e",
                            env={"ROTA_TOKEN": worker_token, "ROTA_ADMIN_TOKEN": ADMIN})
        try:
            doc = tmp_path / "wf.yml"
            doc.write_text("name: e2e\njobs:\n  probe:\n    labels: [e2e]\n    run: |\n"
                           + "".join(f"      {line}\n" for line in JOB.strip().splitlines()))
            done = rota("submit", str(doc), "--wait", server=server, env={"ROTA_TOKEN": submit_token})
            assert done.returncode == 0, done.stdout + done.stderr + worker.log()
            wf = done.stdout.splitlines()[0]
            logs = rota("logs", wf, "probe", server=server, env={"ROTA_TOKEN": submit_token}).stdout
            assert "heartbeat 200" in logs and "leaked []" in logs
            # a read-only listing needs a token
            assert httpx.get(f"{server.url}/api/workflows").status_code == 401
            # revoking the worker's token stops the worker at its next claim
            token_id = worker_token.split("_")[1]
            assert rota("token", "revoke", token_id, server=server, env=admin).returncode == 0
            assert worker.wait(timeout=60) == 2
            assert "unauthenticated" in worker.log()
        finally:
            worker.stop()
