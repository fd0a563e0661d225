"""Start a throwaway redis-server on a free loopback port.

Tests that need real Redis use this. Without a redis-server binary they skip
with a clear reason, except under CI (CI=true), where a missing binary is a
failure: CI installs Debian's redis-server first, so a skip there would hide
a broken install.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_binary() -> str:
    path = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("redis-server is missing in CI: .ci/run must install it")
    pytest.skip("no redis-server binary on this machine (apt-get install redis-server)")


class RedisProcess:
    def __init__(self, port: int, workdir: str, appendonly: bool = False, password: str | None = None):
        self.port = port
        self.workdir = workdir
        self.appendonly = appendonly
        self.password = password
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            redis_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.workdir,
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@contextmanager
def redis_server(appendonly: bool = False, password: str | None = None) -> Iterator[RedisProcess]:
    with tempfile.TemporaryDirectory(prefix="rota-redis-") as workdir:
        proc = RedisProcess(free_port(), workdir, appendonly, password)
        proc.start()
        try:
            yield proc
        finally:
            proc.stop()
