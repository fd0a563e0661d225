"""`rota server --workers N`: N server processes on one port.

The parent binds one listening socket per child with SO_REUSEPORT and hands
it over: Linux spreads new connections over the sockets by a hash of each
connection's addresses, so a burst of connects lands evenly. (With one
shared socket, whichever process wakes first accepts the whole burst, and a
fleet's keep-alive connections would stay piled on it.) A child's socket
lives and dies with the child: the connections queued on a dead child's
socket are reset, and new ones go to the others until its replacement
binds a fresh one.

Each child is a whole `python -m server`: its own Redis clients, pub/sub
notifier, reaper and share of the connection limits (Settings.process_share),
exactly as replicas behind a load balancer are. The parent only binds,
starts, restarts and stops them; it never touches Redis.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

from .settings import Settings, SettingsError

log = logging.getLogger("rota")

EXIT_BAD_SETTING = 2
EXIT_INTERRUPTED = 130
BACKLOG = 2048  # uvicorn's default
# A child that dies this soon after its start is restarted ever more slowly
# (up to RESTART_MAX_SECS), so a child that cannot start does not spin.
RESTART_MIN_SECS, RESTART_MAX_SECS, HEALTHY_SECS = 0.5, 30.0, 30.0
# The children stop gracefully within uvicorn's 5 s grace period; past this,
# the parent kills what is left.
STOP_TIMEOUT_SECS = 15.0
POLL_SECS = 0.2


def listening_socket(host: str, port: int, reuse_port: bool = True) -> socket.socket:
    """Bound and listening, as uvicorn binds (IPv6 when the host has a ':')."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


class _Child:
    __slots__ = ("index", "proc", "started", "delay", "due")

    def __init__(self, index: int):
        self.index = index
        self.proc: Optional[subprocess.Popen] = None
        self.started = 0.0
        self.delay = RESTART_MIN_SECS
        self.due = 0.0  # when a dead child's replacement starts


class Supervisor:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.count = settings.server_workers
        self.port = settings.port
        self.children = [_Child(i) for i in range(self.count)]
        self.stop_signal: Optional[int] = None
        self.refused = False  # a child refused its settings or store: no use starting another

    def bind_check(self) -> None:
        """One plain bind first: a port some process holds (another rota
        with SO_REUSEPORT included) is an error here, as for one process,
        rather than a port silently shared with a stranger."""
        probe = listening_socket(self.settings.host, self.port, reuse_port=False)
        self.port = probe.getsockname()[1]  # PORT=0: the port the system chose, for every child
        probe.close()

    def _spawn(self, child: _Child) -> None:
        sock = listening_socket(self.settings.host, self.port)
        try:
            child.proc = subprocess.Popen(
                [sys.executable, "-m", "server", "--listen-fd", str(sock.fileno()), "--supervisor", str(os.getpid())],
                pass_fds=(sock.fileno(),), env=dict(os.environ, PORT=str(self.port)))
        finally:
            sock.close()  # the child holds it now: it closes with the child
        child.started = time.monotonic()

    def _on_signal(self, sig: int, frame: object) -> None:
        if self.stop_signal is None:
            self.stop_signal = sig
        # SIGTERM, not the signal itself: a Ctrl-C at a terminal reaches the
        # children directly too, and a second SIGINT would make uvicorn skip
        # its graceful stop.
        self._signal_children(signal.SIGTERM)

    def _signal_children(self, sig: int) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                try:
                    child.proc.send_signal(sig)
                except ProcessLookupError:
                    pass

    def _reap(self, now: float) -> None:
        for child in self.children:
            if child.proc is None:
                if now >= child.due:
                    try:
                        self._spawn(child)
                    except OSError as exc:  # the port, taken meanwhile; fork failing
                        child.delay = min(child.delay * 2, RESTART_MAX_SECS)
                        child.due = now + child.delay
                        log.error("server process %d could not start (%s); next try in %.1fs",
                                  child.index, exc, child.delay)
                        continue
                    log.info("server process %d started (pid %d)", child.index, child.proc.pid)
                continue
            status = child.proc.poll()
            if status is None:
                continue
            if status == EXIT_BAD_SETTING:
                log.error("server process %d (pid %d) refused to serve (exit %d); stopping the others",
                          child.index, child.proc.pid, status)
                self.refused = True
                child.proc = None
                self._on_signal(signal.SIGTERM, None)
                return
            lived = now - child.started
            child.delay = RESTART_MIN_SECS if lived >= HEALTHY_SECS else min(child.delay * 2, RESTART_MAX_SECS)
            log.warning("server process %d (pid %d) exited with status %s after %.0fs; another starts in %.1fs",
                        child.index, child.proc.pid, status, lived, child.delay)
            child.proc, child.due = None, now + child.delay

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for child in self.children:
                self._spawn(child)
            pids = ", ".join(str(c.proc.pid) for c in self.children)
            log.info("%d server processes on port %d (pids %s)", self.count, self.port, pids)
            while self.stop_signal is None:
                self._reap(time.monotonic())
                time.sleep(POLL_SECS)
            self._wait_children()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.refused:
            return EXIT_BAD_SETTING
        return EXIT_INTERRUPTED if self.stop_signal == signal.SIGINT else 0

    def _wait_children(self) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT_SECS
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("server process %d (pid %d) did not stop within %.0fs; killed",
                          child.index, child.proc.pid, STOP_TIMEOUT_SECS)
                child.proc.kill()
                child.proc.wait()


def supervise(settings: Settings) -> int:
    """Runs `settings.server_workers` children until SIGTERM or SIGINT;
    the exit status (130 after a Ctrl-C, as for one process)."""
    if not hasattr(socket, "SO_REUSEPORT") or not sys.platform.startswith("linux"):
        raise SettingsError("SERVER_WORKERS (--workers) above 1 needs Linux: it spreads connections over"
                            " the processes with SO_REUSEPORT; run replicas behind a load balancer instead")
    supervisor = Supervisor(settings)
    supervisor.bind_check()
    return supervisor.run()
