"""The dashboard screenshots in docs/images/: a small demo (a CI pipeline with
a gate, a flaky job, two workers, a queue nobody serves) on a real server
and real workers, photographed in headless chromium.

    .venv/bin/python -m tools.dashboard_shots [OUTDIR]   # default docs/images
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from tests.browser import Browser, wait_for
from tests.procs import ROTA, WorkerProc
from tests.server_proc import ServerProcess

ADMIN = "docs-admin-token-0123456789abcdef0123456"
PIPELINE = {
    "name": "ci",
    "jobs": {
        "checkout": {"run": "echo 'cloning rota@main'; sleep 0.3; echo 'HEAD is now at 3f2c1ab'"},
        "lint": {"needs": "checkout", "run": "printf 'ruff check \\033[32mAll checks passed!\\033[0m\\n'"},
        "unit": {"needs": "checkout", "labels": ["linux"], "steps": [
            {"name": "install", "run": "echo 'installing 42 packages'; sleep 0.3"},
            {"name": "pytest", "run": "\n".join([
                "for i in 1 2 3 4 5; do printf 'tests/test_%s.py \\033[32m....................\\033[0m [%s%%]\\n' $i $((i*20)); sleep 0.3; done",
                f"{ROTA[0]} annotate coverage=94% commit=3f2c1ab",
                f"printf '### Coverage\\n\\n| module | cover |\\n|---|---|\\n| server | 95%% |\\n| worker | 92%% |\\n' | {ROTA[0]} annotate --style success --context coverage",
                "echo 'coverage=94%' >> \"$ROTA_OUTPUT\"",
                "printf '\\033[1;32m512 passed\\033[0m in 4.2s\\n'",
            ])}]},
        "build": {"needs": ["lint", "unit"], "labels": ["linux"], "run": "echo 'building rota-0.1.0.whl'; sleep 0.5"},
        "approve": {"needs": "build", "wait": {"event": "deploy-approval"}},
        "deploy": {"needs": "approve", "labels": ["deploy"], "run": "echo deploying"},
    },
}
FLAKY = {"name": "nightly-integration", "jobs": {"integration": {"labels": ["linux"], "run": "\n".join([
    "echo 'starting 3 services'", "printf '\\033[31mERROR\\033[0m connection refused: redis:6379\\n' >&2", "exit 1"])}}}
STARVED = {"name": "gpu-training", "jobs": {"train": {"labels": ["gpu", "cuda12"], "run": "python train.py"}}}
RELEASE = {"name": "release", "on": {
    "schedule": [{"cron": "0 3 * * 1-5", "timezone": "Europe/Berlin"}, {"cron": "30 12 * * 6", "catch-up": "none"}],
    "workflow_dispatch": {"inputs": {
        "environment": {"type": "choice", "options": ["staging", "production"], "default": "staging",
                        "description": "where it goes"},
        "version": {"type": "string", "required": True, "default": "main", "description": "the tag to release"},
        "replicas": {"type": "number", "default": 3},
        "dry_run": {"type": "boolean", "default": False, "description": "plan only"}}}},
    "jobs": {"ship": {"labels": ["deploy"], "run": "echo shipping $ROTA_INPUT_VERSION"}}}


def submit(client: httpx.Client, doc: dict, name: str | None = None) -> str:
    if name:
        resp = client.put(f"/api/workflows/{name}", content=yaml.safe_dump(doc).encode(),
                          headers={"content-type": "application/yaml"})
        assert resp.status_code in (200, 201), resp.text
        return client.post(f"/api/workflows/{name}/runs", json={"tags": {"branch": "main"}}).json()["run_id"]
    resp = client.post("/api/workflows", params={"run": "true"}, content=yaml.safe_dump(doc).encode(),
                       headers={"content-type": "application/yaml"})
    assert resp.status_code == 201, resp.text
    return resp.json()["latest_run_id"]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    logdir = Path(tempfile.mkdtemp(prefix="rota-shots-"))
    with ServerProcess(ROTA_ADMIN_TOKEN=ADMIN) as server:
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
        worker_token = client.post("/api/tokens", json={"name": "fleet", "scopes": ["worker"]}).json()["token"]
        ops = client.post("/api/tokens", json={"name": "ops", "scopes": ["submit"]}).json()["token"]
        workers = [WorkerProc(server, logdir, name, "--labels", labels, "--concurrency", "2",
                              env={"ROTA_TOKEN": worker_token})
                   for name, labels in (("build-01", "linux,docker"), ("build-02", "linux"))]
        try:
            def gate_waits(run: str) -> bool:
                return client.get(f"/api/runs/{run}/jobs/approve").json()["status"] == "waiting"

            for _ in range(3):
                first = submit(client, PIPELINE, "ci")
                wait_for(lambda run=first: gate_waits(run), "the gate", 60)
            submit(client, FLAKY, "nightly-integration")
            submit(client, STARVED, "gpu-training")
            resp = client.put("/api/workflows/release", content=yaml.safe_dump(RELEASE, sort_keys=False).encode(),
                              headers={"content-type": "application/yaml"})
            assert resp.status_code in (200, 201), resp.text
            client.post("/api/schedules/release:1/pause")
            wait_for(lambda: client.get("/api/dead-letters").json()["items"], "a dead letter", 60)
            time.sleep(1)
            browser = Browser()
            try:
                page = browser.page(server.url, ops)
                page.page.set_viewport_size({"width": 1280, "height": 900})

                def shot(path: str, ready: str, name: str) -> None:
                    page.goto(path)
                    page.page.wait_for_selector(ready, timeout=30_000)
                    time.sleep(0.5)
                    # no empty page below the content: smaller files
                    height = page.page.evaluate("Math.min(900, document.querySelector('main').getBoundingClientRect().bottom + 8)")
                    page.page.screenshot(path=str(out / f"dashboard-{name}.png"),
                                         clip={"x": 0, "y": 0, "width": 1280, "height": height})

                shot("/ui", "table.runs tr[data-run]", "runs")
                shot(f"/ui/runs/{first}#job=unit", "#log .line >> text=512 passed", "run")
                shot(f"/ui/runs/{first}#job=approve", "#approve", "gate")
                shot("/ui/workflows/ci", "#document", "workflow")
                shot("/ui/workers", "tr[data-worker]", "workers")
                shot("/ui/queues", "tr[data-labels]", "queues")
                shot("/ui/dead-letters", "tr[data-dead]", "dead-letters")
                shot("/ui/schedules", "tr[data-schedule]", "schedules")
                shot("/ui/workflows/release", '[data-field="inputs.version"]', "run-form")
            finally:
                browser.close()
        finally:
            for worker in workers:
                worker.stop()
    for path in sorted(out.glob("dashboard-*.png")):
        print(f"{path} {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "docs" / "images")
