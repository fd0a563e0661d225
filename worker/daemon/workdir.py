"""Workdir housekeeping: the daemon's --workdir, locked for as long as it
runs; each job's private directory in it, made fresh and removed after; and
at start, the sweep of the job directories a killed daemon left behind."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
import tempfile
from typing import Sequence

from worker.client.errors import RotaError

log = logging.getLogger("rota.worker")

# In a job's private directory: its working directory, the $ROTA_OUTPUT file,
# the $ROTA_UPSTREAM_OUTPUTS file, the $ROTA_CHECKPOINT and $ROTA_EVENT
# files of a resumed job, and the scripts of steps with a `shell:`. Nothing
# else is ever created there (the sweep of a killed worker's leftovers
# relies on it).
WORK_DIR, OUTPUT_FILE, UPSTREAM_FILE = "work", "output", "upstream-outputs.json"
CHECKPOINT_FILE, EVENT_FILE, SCRIPTS_DIR = "checkpoint.json", "event.json", "scripts"
_JOB_DIR_ENTRIES = frozenset({WORK_DIR, OUTPUT_FILE, UPSTREAM_FILE, CHECKPOINT_FILE, EVENT_FILE, SCRIPTS_DIR})
# "<workflow>.<job>.<random>": two _safe_dirname()s and mkdtemp's 8 characters.
_JOB_DIR_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.[A-Za-z0-9_-][A-Za-z0-9_.-]*\.[a-z0-9_]{8}\Z")
LOCK_FILE = ".lock"


class WorkdirError(RotaError):
    """The workdir cannot be used: another daemon holds it, or it cannot be made."""


def _safe_dirname(text: str) -> str:
    # Bounded so that "<workflow>.<job>.<random>" stays within NAME_MAX (255).
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).lstrip(".")[:100] or "job"



def make_job_dir(workdir: str, workflow_id: str, job_id: str) -> str:
    """A fresh directory only this user can enter, under the workdir.

    Named after the job, not the lease: lease ids stay out of what is
    widely seen (paths show up in `ps`, shell prompts, error messages).
    """
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    prefix = f"{_safe_dirname(workflow_id)}.{_safe_dirname(job_id)}."
    return tempfile.mkdtemp(prefix=prefix, dir=workdir)  # mode 0700


def job_dir_path(workdir: str, workflow_id: str, job_id: str) -> str:
    """A new name for a job's directory, as make_job_dir names one (for a
    directory made ahead and renamed when the job comes: jobdirs.py)."""
    suffix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789_") for _ in range(8))
    return os.path.join(workdir, f"{_safe_dirname(workflow_id)}.{_safe_dirname(job_id)}.{suffix}")


def remove_tree(path: str) -> bool:
    """Remove a job's directory; False if some of it would not go."""
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path):
        return True
    # Jobs leave read-only directories behind (Go's module cache does), which
    # rmtree cannot empty: make every directory writable, then try again.
    def writable(name: str) -> None:
        # Through a descriptor opened without following links: a job's
        # leftover process may swap a directory for a link between a check
        # and a chmod, and a worker running as root (--run-as) must not
        # chmod what it points at.
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except PermissionError:
            # A directory of our own with no read bit (root never gets here):
            # by name, as any swap could only be by this same user.
            if not os.path.islink(name):
                try:
                    os.chmod(name, 0o700)
                except OSError:
                    pass
            return
        except OSError:
            return
        try:
            os.fchmod(fd, 0o700)
        except OSError:
            pass
        finally:
            os.close(fd)

    writable(path)
    for top, dirs, _ in os.walk(path):  # top-down: each directory is made writable before it is read
        for d in dirs:
            writable(os.path.join(top, d))
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


def remove_job_dir(root: str, files: Sequence[str]) -> bool:
    """Remove a job's directory, which held `files` (paths in it) and its
    working directory: those unlinked and the two directories removed, a
    handful of system calls where rmtree opens, lists and stats each
    level; when anything else is there (whatever the job left in its
    working directory, a step's script), all of it as remove_tree does.
    False if some of it would not go."""
    try:
        for path in files:
            os.unlink(path)
        os.rmdir(os.path.join(root, WORK_DIR))  # (a link there is not a directory: refused)
        os.rmdir(root)
        return True
    except OSError:
        return remove_tree(root)


class Workdir:
    """The daemon's --workdir, locked (flock on `.lock`) for as long as it runs.

    The lock is what tells a live daemon's job directories from those a
    killed one left: holding it, every job directory there is stale. The
    lock file's descriptor is close-on-exec, so an orphaned job of a killed
    daemon does not keep the lock alive.
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        lock = os.path.join(self.path, LOCK_FILE)
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise WorkdirError(f"cannot use workdir {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise WorkdirError(f"cannot lock workdir {self.path}: {exc.strerror or exc}") from None
            raise WorkdirError(
                f"another rota worker (pid {holder}) is using workdir {self.path};"
                " give each worker its own --workdir (env ROTA_WORKDIR)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def sweep(self) -> int:
        """Remove the job directories of earlier daemons; how many went.

        Only directories named like a job's and holding nothing but what a
        job's directory holds: anything else under the workdir is left alone.
        """
        removed = 0
        with os.scandir(self.path) as entries:
            stale = [e.path for e in entries if _JOB_DIR_NAME.match(e.name) and e.is_dir(follow_symlinks=False)]
        for path in stale:
            try:
                if not set(os.listdir(path)) <= _JOB_DIR_ENTRIES:
                    continue
            except OSError:
                continue
            if remove_tree(path):
                removed += 1
            else:
                log.warning("could not remove the stale job directory %s", path)
        return removed

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

