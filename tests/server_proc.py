"""Run `python -m server` as a real process on a free port (uvicorn, real
sockets), for the tests that need process boundaries: SSE over HTTP,
kill -9, several servers on one Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import httpx

from tests.redis_proc import free_port


class ServerProcess:
    def __init__(self, redis_url: str | None = None, port: int | None = None, argv: list[str] | None = None,
                 group: bool = False, **env: str):
        """`argv`: the command, `python -m server` by default; `group`: in a
        process group of its own, which a test can signal as a terminal's
        Ctrl-C does."""
        self.argv = argv or [sys.executable, "-m", "server"]
        self.group = group
        self.port = port or free_port()
        self.env = dict(os.environ, PORT=str(self.port), WORKFLOWS_DIR="", LOG_LEVEL=os.environ.get("ROTA_TEST_LOG_LEVEL", "warning"),
                        REAP_INTERVAL_SECS="0.2", SSE_KEEPALIVE_SECS="1")
        self.env.pop("REDIS_URL", None)
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.env.update(env)
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="rota-server-", suffix=".log", delete=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20, healthy: bool = True) -> "ServerProcess":
        """`healthy=False` returns once the port answers at all (any status)."""
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=self.group)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200 or not healthy:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not become healthy:\n{self.output()}")

    def output(self) -> str:
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def kill(self) -> None:
        """kill -9: no shutdown code runs, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if exc[0] is not None:
            print(f"--- server log ({self.url}) ---\n{self.output()}")
        os.unlink(self.log.name)
