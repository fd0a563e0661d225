"""A step's process: started off the event loop, its output and its exit
heard in the loop.

asyncio's subprocess transport starts a process in the event loop's own
thread, and `vfork` holds that thread until the child has called `exec`:
on a busy machine the child waits for a CPU first, and the whole worker
(every other job's output, results, heartbeats) waited with it, about
9 ms a step here under load. So a step is started by `subprocess.Popen`
in a thread kept for it (`SPAWN_THREADS`; Popen lets go of the GIL while
vfork waits, so the loop runs on), and the loop then reads the step's
stdout and stderr pipes with plain readers and learns of its exit from a
pidfd (where the kernel has none, from a thread blocked in waitpid).
This also does without the transport's layers: about a third less CPU a
step.

`Process` is what the runner (runner.py) sees: `exited`, `pipes_closed`,
`returncode`, reading paused and resumed for back-pressure.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Optional, Sequence

# Threads that start steps: two, so one step whose child is slow to be
# scheduled does not hold up the next.
SPAWN_THREADS = 2
_READ_SIZE = 64 * 1024

_executor: Optional[ThreadPoolExecutor] = None
_executor_lock = threading.Lock()


def _spawner() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(SPAWN_THREADS, thread_name_prefix="rota-spawn")
        return _executor


def _pidfds() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # an older kernel, or a seccomp policy that refuses it
        return False
    return True


HAVE_PIDFDS = _pidfds()


Started = tuple[subprocess.Popen[bytes], int, int]
# What starts a step, in a spawn thread (start_process; a test hands in its own).
Starter = Callable[[Sequence[str], str, Mapping[str, str], Mapping[str, Any]], Started]


def start_process(argv: Sequence[str], cwd: str, env: Mapping[str, str], spawn_as: Mapping[str, Any]) -> Started:
    """In a spawn thread: the process, and the read ends of its stdout and stderr."""
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, cwd=cwd, env=env,
                                start_new_session=True, **spawn_as)
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    return proc, out_r, err_r


def _abandon(started: "asyncio.Future[Started]") -> None:
    """A start whose caller was cancelled: kill what it started."""
    if started.cancelled() or started.exception() is not None:
        return
    proc, out_r, err_r = started.result()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    os.close(out_r)
    os.close(err_r)
    # (Popen reaps it: a Popen dropped while its child runs is waited for
    # by the next Popen made, as subprocess does for every such child.)


class Process:
    """A started step: its output goes to `emit(fd, text)` (1 stdout, 2
    stderr), decoded as UTF-8 whole characters (bad bytes replaced)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, proc: subprocess.Popen[bytes], out_r: int, err_r: int,
                 emit: Callable[[int, str], None], pidfds: bool = True):
        self._loop = loop
        self._proc = proc
        self.pid = proc.pid
        self._emit = emit
        self._fds = {out_r: 1, err_r: 2}
        self._decoders = {out_r: codecs.getincrementaldecoder("utf-8")(errors="replace"),
                          err_r: codecs.getincrementaldecoder("utf-8")(errors="replace")}
        self._reading = True
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        self._pidfd: Optional[int] = None
        for fd in self._fds:
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._read, fd)
        if pidfds and HAVE_PIDFDS:
            try:
                self._pidfd = os.pidfd_open(proc.pid)
            except OSError:
                self._pidfd = None
        if self._pidfd is not None:
            loop.add_reader(self._pidfd, self._reap)
        else:
            # A thread of its own blocked in waitpid, as asyncio's
            # ThreadedChildWatcher does: in the shared pool, long steps
            # would hold every thread and stall what else the pool runs.
            threading.Thread(target=self._wait, name=f"rota-wait-{proc.pid}", daemon=True).start()

    @classmethod
    async def start(cls, argv: Sequence[str], *, cwd: str, env: Mapping[str, str],
                    spawn_as: Optional[Mapping[str, Any]], emit: Callable[[int, str], None],
                    starter: Starter = start_process, pidfds: bool = True) -> "Process":
        """Raises OSError when the command cannot be started. `pidfds`:
        False hears of the exit from a thread even where pidfds work."""
        loop = asyncio.get_running_loop()
        started = loop.run_in_executor(_spawner(), starter, argv, cwd, env, spawn_as or {})
        try:
            proc, out_r, err_r = await asyncio.shield(started)
        except asyncio.CancelledError:
            started.add_done_callback(_abandon)
            raise
        return cls(loop, proc, out_r, err_r, emit, pidfds)

    @property
    def returncode(self) -> Optional[int]:
        """Negative: killed by that signal (as subprocess says it)."""
        return self._proc.returncode

    def pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            for fd in self._fds:
                self._loop.remove_reader(fd)

    def resume_reading(self) -> None:
        if not self._reading:
            self._reading = True
            for fd in self._fds:
                self._loop.add_reader(fd, self._read, fd)

    def close(self) -> None:
        """Stop reading (what is left in the pipes is dropped) and let go of the descriptors."""
        for fd in list(self._fds):
            self._close_pipe(fd, flush=False)
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            text = self._decoders[fd].decode(data)
            if text:
                self._emit(self._fds[fd], text)
        else:
            self._close_pipe(fd, flush=True)

    def _close_pipe(self, fd: int, flush: bool) -> None:
        stream = self._fds.pop(fd, None)
        if stream is None:
            return
        self._loop.remove_reader(fd)
        os.close(fd)
        decoder = self._decoders.pop(fd)
        if flush:
            text = decoder.decode(b"", final=True)
            if text:
                self._emit(stream, text)
        if not self._fds and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def _reap(self) -> None:
        assert self._pidfd is not None
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self._proc.wait()  # (at once: a readable pidfd is a process that has ended)
        self._exited()

    def _wait(self) -> None:
        self._proc.wait()
        try:
            self._loop.call_soon_threadsafe(self._exited)
        except RuntimeError:  # the loop has closed: nobody waits for it any more
            pass

    def _exited(self) -> None:
        if self._proc.returncode is None:
            self._proc.poll()
        if not self.exited.done():
            self.exited.set_result(None)
