"""Jobs die with their worker: one small supervisor process per worker.

A job runs in a session of its own (so that a cancel can signal its whole
tree and the terminal's signals miss it), which also means it outlives a
worker killed with SIGKILL or by the OOM killer: its retry then runs on
another worker beside it, both doing their side effects. So each worker
starts this module as a child process, in a session of its own too (a kill
of the worker's process group leaves it standing), and tells it through a
pipe the process group of every job step as it starts (`+<pgid>`) and ends
(`-<pgid>`). When the pipe reaches end of file, the worker is gone, however
it went (the kernel closes a dead process's descriptors), and the supervisor
SIGKILLs every group still listed, then exits.

Why one per worker and not one per job: starting Python costs about 8 ms of
CPU, several times what a whole `true` job costs the worker, while a line on
a pipe costs about a microsecond. Why not PR_SET_PDEATHSIG on each job: it
reaches a job's first process only (a fork clears it), it fires when the
forking *thread* ends rather than the process, and setting it forces fork
over vfork (about twice the CPU per spawn).

The worker watches the supervisor in turn (the end of file of its stdout)
and starts another, with the groups still running, if it dies.

The supervisor's program is worker/supervise.py, run by its path as
`python -I -S .../supervise.py`: a few standard modules only, so it starts in
tens of milliseconds and holds about 9 MB.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from typing import Optional

log = logging.getLogger("rota.worker")

PROGRAM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "supervise.py")
# After the supervisor died, wait this long before starting another, so a
# supervisor that cannot start cannot make the worker spin.
RESTART_DELAY_SECS = 1.0


class Supervisor:
    """The worker's side: starts the supervisor and keeps it told."""

    def __init__(self, restart_delay: float = RESTART_DELAY_SECS) -> None:
        self._restart_delay = restart_delay
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._groups: set[int] = set()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._closing = False
        self._restart: Optional[asyncio.TimerHandle] = None
        self._pending: list[bytes] = []  # lines not yet written (see _send)

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the supervisor; raises OSError if it cannot be started."""
        self._loop = asyncio.get_running_loop()
        self._spawn()

    def _spawn(self) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", PROGRAM],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
            env={},  # nothing of the worker's environment (its token) goes with it
            cwd="/", start_new_session=True,
        )
        assert proc.stdin is not None and proc.stdout is not None and self._loop is not None
        os.set_blocking(proc.stdin.fileno(), False)  # a stuck supervisor never stalls the worker
        self._loop.add_reader(proc.stdout.fileno(), self._on_output)
        self._proc = proc
        if self._groups:
            self._send(b"".join(b"+%d\n" % pgid for pgid in self._groups))

    def watch(self, pgid: int) -> None:
        """A job step started as process group `pgid`: kill it if the worker dies."""
        self._groups.add(pgid)
        self._send(b"+%d\n" % pgid)

    def unwatch(self, pgid: int) -> None:
        self._groups.discard(pgid)
        self._send(b"-%d\n" % pgid)

    def _send(self, data: bytes) -> None:
        # What one turn of the event loop has to say goes in one write: with
        # many jobs starting and ending together, a write (and a wake-up of
        # the supervisor) per line was a tenth of a busy worker's time.
        self._pending.append(data)
        if len(self._pending) == 1 and self._loop is not None:
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        data = b"".join(self._pending)
        self._pending.clear()
        proc = self._proc
        if proc is None or proc.stdin is None:
            return  # between supervisors: the next one is told every group when it starts
        try:
            os.write(proc.stdin.fileno(), data)
        except BlockingIOError:
            # Its pipe is full: it stopped reading. Replace it.
            log.warning("the job supervisor (pid %d) stopped reading; starting another", proc.pid)
            self._replace()
        except BrokenPipeError:
            self._replace()

    def _on_output(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            data = os.read(proc.stdout.fileno(), 512)
        except OSError:
            data = b""
        if data:
            return  # it writes nothing; ignore whatever it does
        if not self._closing:
            log.warning("the job supervisor (pid %d) died; starting another in %.0fs", proc.pid,
                        self._restart_delay)
        self._replace()

    def _replace(self) -> None:
        self._drop()
        if self._closing or self._loop is None or self._restart is not None:
            return
        self._restart = self._loop.call_later(self._restart_delay, self._respawn)

    def _respawn(self) -> None:
        self._restart = None
        if self._closing:
            return
        try:
            self._spawn()
        except OSError as exc:
            log.error("cannot start the job supervisor: %s; retrying in %.0fs", exc, self._restart_delay)
            assert self._loop is not None
            self._restart = self._loop.call_later(self._restart_delay, self._respawn)

    def _drop(self) -> None:
        """Forget the current supervisor, killing it if it still runs."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None and proc.stdout is not None
        if self._loop is not None:
            self._loop.remove_reader(proc.stdout.fileno())
        if proc.poll() is None and not self._closing:
            proc.kill()  # (stuck: its groups are handed to the next one)
        for pipe in (proc.stdin, proc.stdout):  # stdin's end of file: it kills what it lists, then exits
            try:
                pipe.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("the job supervisor (pid %d) did not exit", proc.pid)

    def close(self) -> None:
        """The worker stops: the supervisor kills what still runs (nothing, after a
        drain) and exits."""
        self._closing = True
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None
        self._drop()

