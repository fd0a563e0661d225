"""What the dashboard's browser tests share: a real server process with
auth on (one per test module; a module's SERVER_ENV adds settings), tokens
of each scope, one headless chromium per module, pages, real `rota worker`
processes, and small helpers. Test modules import the fixtures they use."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.browser import Browser
from tests.procs import WorkerProc
from tests.server_proc import ServerProcess

ADMIN = "dashboard-admin-token-0123456789abcdef"
ROTA = str(Path(sys.executable).with_name("rota"))


@pytest.fixture(scope="module")
def server(request):
    # debug: the access log prints every request's path (never its query)
    env = {"ROTA_ADMIN_TOKEN": ADMIN, "LOG_LEVEL": "debug", **getattr(request.module, "SERVER_ENV", {})}
    with ServerProcess(**env) as proc:
        yield proc


@pytest.fixture(scope="module")
def admin(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def tokens(admin):
    out = {"admin": ADMIN}
    for scope in ("read", "submit", "worker"):
        resp = admin.post("/api/tokens", json={"name": f"dash-{scope}", "scopes": [scope]})
        assert resp.status_code == 201, resp.text
        out[scope] = resp.json()["token"]
    return out


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


@pytest.fixture
def open_page(browser, server):
    pages = []

    def make(token=None):
        page = browser.page(server.url, token)
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.close()


@pytest.fixture
def workers(server, tokens, tmp_path):
    started = []

    def start(labels: list[str]) -> WorkerProc:
        worker = WorkerProc(server, tmp_path, f"dash-{uuid.uuid4().hex[:6]}", "--labels", ",".join(labels),
                            env={"ROTA_TOKEN": tokens["worker"]})
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def submit(admin, doc: dict, **run) -> tuple[str, str]:
    """(workflow id, run id) of a one-off workflow started at once."""
    resp = admin.post("/api/workflows", params={"run": "true"}, content=yaml.safe_dump(doc).encode(),
                      headers={"content-type": "application/yaml"})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"], resp.json()["latest_run_id"]


def node(page, job: str, status: str):
    return page.page.wait_for_selector(f'g.node[data-job="{job}"][data-status="{status}"]', timeout=30_000)


def wait_file(path: Path) -> str:
    return f'while [ ! -e "{path}" ]; do sleep 0.05; done'
