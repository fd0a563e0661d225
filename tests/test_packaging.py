"""rota as worker hosts install it: a wheel built from the sources, installed
into a fresh virtualenv outside the checkout, runs `rota --version`, serves
(`rota server`, embedded store) and runs a job (`rota worker`). An editable
install hides a package missing from the wheel; this does not.

The fresh venv installs rota's dependencies with pip (from its cache, or
PyPI): a minute or so the first time on a machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from server import __version__
from tests.procs import ROOT, Proc, wait_until
from tests.redis_proc import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# What the wheel is built from: everything else in the checkout (tests,
# bench, .venv, build leftovers) must not be needed by an installed rota.
SOURCES = ("pyproject.toml", "README.md", "server", "worker")


def _run(argv: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _clean_env(home: Path) -> dict[str, str]:
    """No PYTHONPATH, no ROTA_* of the caller: the installed rota alone."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CACHE_DIR",
            "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
    env = {k: v for k, v in os.environ.items() if k in keep}
    # pip's cache stays the user's (so a rebuild is quick); everything else
    # a process writes lands in the temporary home.
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env["HOME"] = str(home)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(src)], cwd=src)
    (built,) = out.glob("rota-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A fresh venv, outside the checkout, with the wheel installed: its bin dir and an env to run it in."""
    home = tmp_path_factory.mktemp("host")
    env = _clean_env(home)
    venv = home / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=home, env=env)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          str(wheel)], cwd=home, env=env)
    return venv / "bin", env


def test_the_wheel_holds_every_package_and_data_file_of_server_and_worker(wheel):
    with zipfile.ZipFile(wheel) as whl:
        shipped = set(whl.namelist())
    wanted = {str(path.relative_to(ROOT)) for top in ("server", "worker") for path in (ROOT / top).rglob("*")
              if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"}
    assert wanted - shipped == set()
    assert "server/models/__init__.py" in shipped and "server/store/__init__.py" in shipped
    assert "server/lua/claim.lua" in shipped


def test_an_installed_rota_reports_its_version_from_outside_the_checkout(installed):
    bin_dir, env = installed
    cwd = Path(env["HOME"])
    assert _run([str(bin_dir / "rota"), "--version"], cwd=cwd, env=env).strip() == f"rota {__version__}"
    where = _run([str(bin_dir / "python"), "-c", "import server, worker; print(server.__file__, worker.__file__)"],
                 cwd=cwd, env=env)
    assert str(ROOT) not in where and "site-packages" in where


def test_an_installed_server_and_worker_run_a_job(installed):
    bin_dir, env = installed
    home = Path(env["HOME"])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Proc("rota server", [str(bin_dir / "rota"), "server"], home / "server.log",
                  {**env, "PORT": str(port), "WORKFLOWS_DIR": "", "LOG_LEVEL": "info"}, cwd=home, inherit_env=False)
    worker = None
    try:
        wait_until(lambda: _healthy(url), "the installed server to answer /healthz", timeout=120, logs=server.log)
        worker = Proc("rota worker", [str(bin_dir / "rota"), "worker", "--server", url, "--worker-id", "installed",
                                      "--workdir", str(home / "work"), "--lease-ttl", "600"],
                      home / "worker.log", env, cwd=home, inherit_env=False)
        doc = home / "one.json"
        doc.write_text(json.dumps({"name": "installed", "jobs": [{"id": "hello", "command": "echo installed-ok"}]}))
        submitted = subprocess.run([str(bin_dir / "rota"), "--server", url, "submit", str(doc), "--wait",
                                    "--timeout", "10m"], cwd=home, env=env, capture_output=True, text=True,
                                   timeout=900)
        assert submitted.returncode == 0, f"{submitted.stdout}\n{submitted.stderr}\n{server.log()}\n{worker.log()}"
        wf = httpx.get(f"{url}/api/workflows", timeout=30).json()[0]
        assert [(j["id"], j["status"], j["worker_id"]) for j in wf["jobs"]] == [("hello", "success", "installed")]
        chunks = httpx.get(f"{url}/api/workflows/{wf['id']}/jobs/hello/logs", timeout=30).json()
        assert "installed-ok" in "".join(c["data"] for c in chunks)
    finally:
        for proc in (worker, server):
            if proc is not None:
                proc.stop()
    assert "Traceback" not in server.log() + (worker.log() if worker else "")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.2)
        return False
