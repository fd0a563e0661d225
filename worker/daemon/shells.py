"""A step's `shell:` as GitHub Actions defines it on Linux and macOS: the
command that runs the step's script, written to a file (`{0}`).

  bash     bash --noprofile --norc -eo pipefail {0}
  sh       sh -e {0}
  python   python {0}   (python3 where the job's PATH has no `python`)
  pwsh     pwsh -command ". '{0}'"
  a command with {0} in it (`perl {0}`): that command, split as a shell
           would split it, {0} replaced by the file in each word

A step with no shell (none on the step, none in `defaults.run`) runs as
rota always ran one, `bash -e -o pipefail -c <script>` (worker/daemon/
runner.py), so nothing changes for a workflow that names no shell.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
from typing import Optional

# How long a command looked for on a PATH is remembered: every step looked
# for `bash` and every job for `rota`, a stat per PATH entry each time.
WHICH_TTL_SECS = 5.0
_WHICH_KEPT = 256
_found: dict[tuple[str, Optional[str]], tuple[float, Optional[str]]] = {}

# GitHub's templates, and the extension each shell's script file takes
# (pwsh runs a file only as .ps1).
_TEMPLATES = {
    "bash": (["bash", "--noprofile", "--norc", "-eo", "pipefail", "{0}"], ".sh"),
    "sh": (["sh", "-e", "{0}"], ".sh"),
    "python": (["python", "{0}"], ".py"),
    "pwsh": (["pwsh", "-command", ". '{0}'"], ".ps1"),
}


class ShellError(ValueError):
    """A custom shell that cannot be read as a command."""


def which(name: str, path: Optional[str] = None, *, now: Optional[float] = None) -> Optional[str]:
    """shutil.which(name, path) (`path` None: this process's PATH), as it
    answered within the last WHICH_TTL_SECS (`now`: time.monotonic())."""
    key = (name, path if path is not None else os.environ.get("PATH"))
    now = time.monotonic() if now is None else now
    hit = _found.get(key)
    if hit is not None and now - hit[0] < WHICH_TTL_SECS:
        return hit[1]
    found = shutil.which(name, path=path)
    if len(_found) >= _WHICH_KEPT:
        _found.clear()
    _found[key] = (now, found)
    return found


def extension(shell: str) -> str:
    """What the script file for `shell` ends with."""
    return _TEMPLATES[shell][1] if shell in _TEMPLATES else ""


def shell_command(shell: str, script_file: str, path: Optional[str]) -> list[str]:
    """The argv that runs `script_file` with `shell`; `path`: the job's PATH,
    where the command is looked for when it starts."""
    if shell in _TEMPLATES:
        template = list(_TEMPLATES[shell][0])
        if shell == "python" and not which("python", path) and which("python3", path):
            template[0] = "python3"  # Debian and Ubuntu ship no `python` unless asked
    else:
        try:
            template = shlex.split(shell)
        except ValueError as exc:
            raise ShellError(f"shell {shell!r} cannot be read as a command: {exc}") from None
        if not template:
            raise ShellError("shell is empty")
    return [word.replace("{0}", script_file) for word in template]
