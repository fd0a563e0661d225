"""`rota worker --run-as USER`: jobs run as another user and cannot read the
worker's token (its environment, its token file). The end-to-end tests need
root, as the flag does, and use the `nobody` account."""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
import yaml

from tests.procs import Proc, WorkerProc, rota
from worker.cli import main as cli

ENV_SECRET = "rota_0123456789abcdef_SECRETINTHEENVIRONMENT"
FILE_SECRET = "rota_0123456789abcdef_SECRETINTHEFILE"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="--run-as needs root")


def _nobody() -> bool:
    try:
        pwd.getpwnam("nobody")
        return True
    except KeyError:
        return False


needs_nobody = pytest.mark.skipif(not _nobody(), reason="no `nobody` user on this machine")


# ---- the flag --------------------------------------------------------------------


@needs_nobody
def test_run_as_takes_a_user_by_name_or_number():
    by_name = cli.build_parser().parse_args(["worker", "--run-as", "nobody"]).run_as
    by_number = cli.build_parser().parse_args(["worker", "--run-as", str(by_name.uid)]).run_as
    assert by_name == by_number and by_name.name == "nobody" and by_name.uid != 0


def test_run_as_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ROTA_RUN_AS", "no-such-user-here")
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["worker"])
    assert info.value.code == 2
    monkeypatch.delenv("ROTA_RUN_AS")
    assert cli.build_parser().parse_args(["worker"]).run_as is None


@pytest.mark.parametrize("user,says", [
    ("no-such-user-here", "argument --run-as: invalid value 'no-such-user-here': no user 'no-such-user-here'"
                          " on this machine"),
    ("root", "argument --run-as: invalid value 'root': 'root' is root: name an unprivileged user"),
    ("0", "argument --run-as: invalid value '0': '0' is root"),
])
def test_run_as_refuses_an_unknown_user_and_root(user, says, capsys):
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["worker", "--run-as", user])
    assert info.value.code == 2
    assert says in capsys.readouterr().err


@needs_nobody
def test_run_as_refuses_a_worker_that_is_not_root(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit) as info:
        cli.main(["worker", "--run-as", "nobody", "--server", "http://127.0.0.1:9"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--run-as nobody needs the worker to run as root" in err, err


# ---- with real processes ---------------------------------------------------------


@pytest.fixture
def reachable(tmp_path):
    """A directory every user can search (pytest's tmp_path is root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="rota-run-as-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


PROBE = "\n".join([
    'echo "uid=$(id -u)" >> "$ROTA_OUTPUT"',
    'echo "home=$HOME" >> "$ROTA_OUTPUT"',
    'if tr "\\0" "\\n" < /proc/$PPID/environ 2>/dev/null | grep -q SECRETINTHEENVIRONMENT;'
    ' then echo environ=read; else echo environ=denied; fi >> "$ROTA_OUTPUT"',
    'if grep -q SECRETINTHEFILE "$TOKEN_PATH" 2>/dev/null;'
    ' then echo file=read; else echo file=denied; fi >> "$ROTA_OUTPUT"',
    'touch made-here && echo workdir=writable >> "$ROTA_OUTPUT"',
])


def _probe(server, tmp_path, label: str, token_file: Path) -> dict:
    doc = tmp_path / f"probe-{label}.yml"
    doc.write_text(yaml.safe_dump({"name": "probe", "on": "push", "jobs": {"probe": {
        "labels": [label], "env": {"TOKEN_PATH": str(token_file)}, "run": PROBE}}}))
    done = rota("submit", str(doc), "--wait", server=server, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    workflow_id = done.stdout.splitlines()[0]
    status = httpx.get(f"{server.url}/api/workflows/{workflow_id}/status", timeout=5).json()
    return status["jobs"][0]["outputs"]


@as_root
@needs_nobody
@pytest.mark.slow
def test_a_job_run_as_another_user_cannot_read_the_workers_token(server, tmp_path, label, reachable):
    # In a directory every user can search: only the file's own mode (0600,
    # root's) keeps it from the job.
    token_file = reachable / "token"
    token_file.write_text(FILE_SECRET)
    token_file.chmod(0o600)
    env = {"ROTA_TOKEN": ENV_SECRET, "ROTA_TOKEN_FILE": str(token_file)}
    nobody = pwd.getpwnam("nobody")

    # Without --run-as, the job runs as the worker's user and reads both.
    plain = WorkerProc(server, tmp_path, f"plain-{label}", "--labels", f"{label}-plain",
                       "--workdir", str(reachable / "plain"), env=env)
    try:
        assert "running as root without --run-as" in plain.log()
        exposed = _probe(server, tmp_path, f"{label}-plain", token_file)
    finally:
        plain.stop()
    assert (exposed["uid"], exposed["environ"], exposed["file"]) == ("0", "read", "read"), exposed

    confined = WorkerProc(server, tmp_path, f"confined-{label}", "--labels", label, "--run-as", "nobody",
                          "--workdir", str(reachable / "work"), env=env)
    try:
        outputs = _probe(server, tmp_path, label, token_file)
        assert "readable by nobody" not in confined.log()
    finally:
        confined.stop()
    assert outputs == {"uid": str(nobody.pw_uid), "home": nobody.pw_dir, "environ": "denied", "file": "denied",
                       "workdir": "writable"}, outputs
    # and the job's directory went, although it was nobody's
    assert [p.name for p in (reachable / "work").iterdir()] == [".lock"]


@as_root
@needs_nobody
@pytest.mark.slow
def test_steps_with_a_shell_and_a_working_directory_run_as_the_job_user(server, tmp_path, label, reachable):
    """A step's script file (shell:) is the job user's to read, in the
    worker's own scripts/ directory, where the job can put nothing."""
    doc = tmp_path / "steps-as.yml"
    doc.write_text(yaml.safe_dump({"name": "steps-as", "on": "push", "jobs": {"probe": {
        "labels": [label],
        "outputs": {"uid": "${{ steps.who.outputs.uid }}", "py": "${{ steps.py.outputs.py }}",
                    "planted": "${{ steps.plant.outcome }}"},
        "steps": [
            {"run": "mkdir sub"},
            {"id": "who", "shell": "bash", "working-directory": "sub",
             "run": 'echo "uid=$(id -u)" >> "$GITHUB_OUTPUT"'},
            {"id": "py", "shell": "python3 {0}",
             "run": "import os\nopen(os.environ['ROTA_OUTPUT'], 'a').write('py=%d\\n' % os.getuid())"},
            {"id": "plant", "run": "ln -s /etc/passwd ../scripts/step-4.sh", "continue-on-error": True},
            {"shell": "sh", "run": "true"},
        ]}}}))
    # (jobs inherit the worker's PATH: one nobody can use, not a root-only pyenv's; the
    # venv's `rota` is put last on it, and its python is root's too: hence python3 {0})
    worker = WorkerProc(server, tmp_path, f"steps-{label}", "--labels", label, "--run-as", "nobody",
                        "--workdir", str(reachable / "work"), env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    try:
        done = rota("submit", str(doc), "--wait", server=server, timeout=120)
    finally:
        worker.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    workflow_id = done.stdout.splitlines()[0]
    status = httpx.get(f"{server.url}/api/workflows/{workflow_id}/status", timeout=5).json()
    uid = str(pwd.getpwnam("nobody").pw_uid)
    assert status["jobs"][0]["outputs"] == {"uid": uid, "py": uid, "planted": "failure"}


@as_root
@needs_nobody
@pytest.mark.slow
def test_a_token_file_the_job_user_can_read_is_warned_about(server, tmp_path, label, reachable):
    token_file = reachable / "token"
    token_file.write_text(FILE_SECRET)
    token_file.chmod(0o644)
    worker = WorkerProc(server, tmp_path, f"careless-{label}", "--labels", label, "--run-as", "nobody",
                        "--workdir", str(reachable / "work"), env={"ROTA_TOKEN_FILE": str(token_file)})
    try:
        assert f"ROTA_TOKEN_FILE {token_file} is readable by nobody, the user jobs run as" in worker.log()
    finally:
        worker.stop()


@as_root
@needs_nobody
@pytest.mark.slow
def test_a_workdir_the_job_user_cannot_reach_is_refused_at_start(server, tmp_path, label):
    workdir = tmp_path / "work"  # under pytest's directory, root's alone
    proc = Proc("worker", [sys.executable, "-m", "worker", "--server", server.url, "--labels", label,
                           "--worker-id", f"unreachable-{label}", "--run-as", "nobody", "--workdir", str(workdir)],
                tmp_path / "worker.log", {})
    assert proc.wait(60) == 2, proc.log()
    assert f"nobody cannot reach the workdir {workdir}" in proc.log(), proc.log()
    assert "Traceback" not in proc.log()
