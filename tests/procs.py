"""Real `rota worker` and `rota ...` processes for end-to-end tests (the
server process is tests/server_proc.py's).

Each process writes its output to a file (so a chatty process never blocks
on a full pipe) that failures quote. Waiting is always for a condition with
a deadline; an expired deadline fails with what was awaited and the logs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, TypeVar

from tests.server_proc import ServerProcess

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
# The console script, so the tests exercise the real `rota` entry point.
ROTA = [str(Path(sys.executable).with_name("rota"))]


def wait_until(
    condition: Callable[[], Optional[T]], what: str, timeout: float = 60.0, logs: Callable[[], str] = str
) -> T:
    """Poll `condition` until it is truthy; past `timeout` fail naming `what`, with `logs()`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs()}")
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own dead child not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class Proc:
    def __init__(self, name: str, argv: list[str], logfile: Path, env: dict[str, str], *,
                 cwd: Path = ROOT, inherit_env: bool = True):
        self.name = name
        self.logfile = logfile
        with open(logfile, "wb") as log:
            self.popen = subprocess.Popen(
                argv, cwd=cwd, env={**os.environ, **env} if inherit_env else env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return f"--- {self.name} log ---\n" + self.logfile.read_text(errors="replace")

    def send(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout}s\n{self.log()}") from None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)


class WorkerProc(Proc):
    def __init__(self, server: ServerProcess, logdir: Path, worker_id: str, *flags: str,
                 env: dict[str, str] | None = None):
        argv = [sys.executable, "-m", "worker", "--server", server.url, "--worker-id", worker_id,
                "--workdir", str(logdir / f"work-{worker_id}"), *flags]
        super().__init__(f"worker {worker_id}", argv, logdir / f"worker-{worker_id}.log", env or {})
        self.worker_id = worker_id
        wait_until(
            lambda: worker_id in self.log() and "registered" in self.log(),
            f"worker {worker_id} to register",
            logs=self.log,
        )


def rota(*args: str, server: ServerProcess, timeout: float = 30.0,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `rota ARGS` to completion (ROTA_SERVER points it at `server`)."""
    env = {**os.environ, "ROTA_SERVER": server.url, **(env or {})}
    try:
        return subprocess.run([*ROTA, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"`rota {' '.join(args)}` did not finish within {timeout}s:\n{exc.stdout}\n{exc.stderr}") from None


def rota_background(*args: str, server: ServerProcess, logdir: Path, name: str) -> Proc:
    return Proc(f"rota {name}", [*ROTA, *args], logdir / f"rota-{name}.log", {"ROTA_SERVER": server.url})


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
