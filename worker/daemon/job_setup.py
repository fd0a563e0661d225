"""What a claimed job starts with: the files in its private directory (its
working directory, $ROTA_OUTPUT, $ROTA_UPSTREAM_OUTPUTS, a resumed
attempt's $ROTA_CHECKPOINT and $ROTA_EVENT, and the scripts of steps with a
`shell:`) and its environment.

A job never sees the worker's own token: its environment drops the token
variables and carries the lease's run token instead (ROTA_RUN_TOKEN), which
is good only for that lease's calls while the lease lives.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Optional

from server.models import Lease, QueuedJob
from worker.daemon.run_as import RunAs, hand_job_dir
from worker.daemon.shells import which
from worker.daemon.workdir import CHECKPOINT_FILE, EVENT_FILE, OUTPUT_FILE, SCRIPTS_DIR, UPSTREAM_FILE, WORK_DIR

# The worker's credentials: never passed on to the jobs it runs. ROTA_RUN_TOKEN
# too, as the worker may itself run inside a job: a job gets its own or none.
WORKER_SECRETS = ("ROTA_TOKEN", "ROTA_TOKEN_FILE", "ROTA_ADMIN_TOKEN", "ROTA_ADMIN_TOKEN_FILE", "ROTA_RUN_TOKEN")

# Where this worker's own `rota` is (the venv's bin, beside its python).
ROTA_BIN = os.path.dirname(os.path.abspath(sys.executable))


@dataclass
class JobFiles:
    """The paths in a job's private directory that its environment names."""

    cwd: str
    output: str
    upstream: str
    # ROTA_CHECKPOINT / ROTA_EVENT -> the file, when the claim had one
    handed: dict[str, str] = field(default_factory=dict)


def fill_job_dir(root: str, job: QueuedJob, run_as: Optional[RunAs]) -> JobFiles:
    """Write what the job starts from into its fresh directory `root`
    (and hand it to the job's user under --run-as). Raises OSError."""
    return fill_dir(root, run_as, job_json(job.upstream_outputs), job.checkpoint, job.event)


def fill_dir(root: str, run_as: Optional[RunAs], upstream: bytes = b"{}", checkpoint: object = None,
             event: object = None) -> JobFiles:
    """fill_job_dir's work: `upstream`, the upstream outputs as JSON."""
    files = JobFiles(os.path.join(root, WORK_DIR), os.path.join(root, OUTPUT_FILE), os.path.join(root, UPSTREAM_FILE))
    os.mkdir(files.cwd)
    write_new(files.output, b"")
    # A file, not a variable: one environment string holds at most
    # 128 KiB on Linux, and outputs may be far larger.
    write_new(files.upstream, upstream)
    # What a resumed attempt starts from: files for the same reason
    # (a checkpoint may be 1 MiB), and only when there is one, so
    # `[ -n "$ROTA_CHECKPOINT" ]` tells a first attempt from a resumed one.
    for variable, filename, value in (("ROTA_CHECKPOINT", CHECKPOINT_FILE, checkpoint),
                                      ("ROTA_EVENT", EVENT_FILE, event)):
        if value is not None:
            path = os.path.join(root, filename)
            write_new(path, job_json(value))
            files.handed[variable] = path
    if run_as is not None:
        hand_job_dir(run_as, root, files.cwd, [files.output, files.upstream, *files.handed.values()])
    return files


def job_json(value: object) -> bytes:
    """What a job's JSON files hold: as json.dump wrote them."""
    return b"{}" if value == {} else json.dumps(value, ensure_ascii=False).encode()


def write_new(path: str, data: bytes) -> None:
    """A new file holding `data` (as open(path, "w") makes one: mode 0666
    less the umask), in system calls alone: no file object for a few bytes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def write_script(root: str, name: str, text: str, run_as: Optional[RunAs]) -> str:
    """A step's script as the file its `shell:` runs, in the job's directory
    (`scripts/`, which stays the worker's: under --run-as the job's user
    may read its scripts but put nothing there for the worker to write
    through). Raises OSError."""
    scripts = os.path.join(root, SCRIPTS_DIR)
    try:
        os.mkdir(scripts, 0o700)
        if run_as is not None:
            os.chmod(scripts, 0o711)
    except FileExistsError:
        pass
    path = os.path.join(scripts, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    if run_as is not None:
        os.chown(path, run_as.uid, run_as.gid)
    return path


def path_with_rota(path: str, rota_bin: str = ROTA_BIN) -> str:
    """`path`, with this worker's `rota` found last when none is on it, so a
    job can run `rota progress ...` under a worker started as
    `.venv/bin/rota worker`. Appended, not prepended: the venv's python
    must not shadow the one the job expects."""
    if which("rota", path) or not os.access(os.path.join(rota_bin, "rota"), os.X_OK):
        return path
    return f"{path}{os.pathsep}{rota_bin}" if path else rota_bin


def job_environment(job: QueuedJob, lease: Lease, server: str, run_as: Optional[RunAs], files: JobFiles,
                    env: dict[str, str]) -> dict[str, str]:
    """The job's environment: the worker's own without its secrets, the
    run's inputs, the job's resolved `env:` (`env`), then rota's variables."""
    inherited = {name: value for name, value in os.environ.items() if name not in WORKER_SECRETS}
    if run_as is not None:  # the job user's HOME, USER, LOGNAME (its env: may still set them)
        inherited.update(run_as.env())
    job_env = {
        **inherited,
        # The run's inputs, then the job's own env: (which may use them).
        **{f"ROTA_INPUT_{name.upper()}": value for name, value in job.inputs.items()},
        **env,
        # Set last so a job's `env:` cannot impersonate another lease.
        "ROTA_WORKFLOW_ID": job.workflow_id,
        "ROTA_RUN_ID": job.run_id or "",
        "ROTA_JOB_ID": job.job_id,
        "ROTA_ATTEMPT": str(job.attempt),
        "ROTA_LEASE_ID": lease.lease_id,
        "ROTA_SERVER": server,
        "ROTA_OUTPUT": files.output,
        "GITHUB_OUTPUT": files.output,  # scripts written for Actions write their outputs there
        "ROTA_UPSTREAM_OUTPUTS": files.upstream,
    }
    job_env.pop("ROTA_RUN_TOKEN", None)  # the lease's own, or none (not one from `env:`)
    for variable in ("ROTA_CHECKPOINT", "ROTA_EVENT"):  # this attempt's own, or none
        job_env.pop(variable, None)
    job_env.update(files.handed)
    if lease.run_token:
        job_env["ROTA_RUN_TOKEN"] = lease.run_token
    job_env["PATH"] = path_with_rota(job_env.get("PATH", os.defpath))
    return job_env
