"""`rota worker --run-as USER`: jobs run as another user than the worker.

A job running as the worker's own user can read the worker's long-lived
token: from /proc/<worker pid>/environ (ROTA_TOKEN), from the file
ROTA_TOKEN_FILE names, or from `ps` (--token). With --run-as, the worker
runs as root and each job step starts as USER (its groups from the group
database, as login does: initgroups), so the kernel keeps the worker's
environment, memory and 0600 files from it.

What USER gets, and only that: its job's directory `work/` and the files
the job reads or writes ($ROTA_OUTPUT, $ROTA_UPSTREAM_OUTPUTS,
$ROTA_CHECKPOINT, $ROTA_EVENT), owned by USER with mode 0600/0700, inside a
job directory that stays root's (0711), so a job can neither swap those
files for links to something the worker would then read as root, nor list
its neighbours. The workdir is 0711 too.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from typing import Any


class RunAsError(ValueError):
    """--run-as cannot be honoured: no such user, not root, or a workdir USER cannot reach."""


@dataclass(frozen=True)
class RunAs:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    def popen_kwargs(self) -> dict[str, Any]:
        """For subprocess: setgroups, setgid and setuid in the child before exec."""
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}

    def env(self) -> dict[str, str]:
        """What a login as USER would set, over the worker's values."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}

    def can(self, test: str, path: str) -> bool:
        """Whether USER passes `test -<test> path` (ACLs, every directory on the way)."""
        done = subprocess.run(["/bin/sh", "-c", 'test "-$1" "$2"', "sh", test, path], env={"PATH": os.defpath},
                              cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, **self.popen_kwargs())
        return done.returncode == 0


def lookup(text: str) -> RunAs:
    """USER by name or number; root is refused (jobs would keep every power)."""
    try:
        entry = pwd.getpwuid(int(text)) if text.isdigit() else pwd.getpwnam(text)
    except (KeyError, OverflowError):
        raise RunAsError(f"no user {text!r} on this machine") from None
    if entry.pw_uid == 0:
        raise RunAsError(f"{text!r} is root: name an unprivileged user for jobs to run as")
    groups = tuple(g for g in os.getgrouplist(entry.pw_name, entry.pw_gid) if g != entry.pw_gid)
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)


def require_root(user: RunAs) -> None:
    if os.geteuid() != 0:
        raise RunAsError(
            f"--run-as {user.name} needs the worker to run as root, to start each job as {user.name};"
            " start the worker as root, or drop --run-as (then jobs run as the worker's user and can read"
            " its token)")


def open_workdir(user: RunAs, path: str) -> None:
    """Let USER reach its jobs' directories under `path` (0711: search, not list),
    or say why it cannot."""
    os.chmod(path, 0o711)
    if not user.can("x", path):
        raise RunAsError(
            f"--run-as {user.name}: {user.name} cannot reach the workdir {path} (every directory above it must"
            f" be searchable by {user.name}); give a --workdir it can reach, e.g. /var/lib/rota/work")


def hand_job_dir(user: RunAs, root: str, work: str, files: list[str]) -> None:
    """Give USER its job's working directory and files; the job directory itself stays root's."""
    os.chmod(root, 0o711)
    os.chown(work, user.uid, user.gid)
    os.chmod(work, 0o700)
    for path in files:
        os.chown(path, user.uid, user.gid)
        os.chmod(path, 0o600)
