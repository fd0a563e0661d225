"""The job supervisor's program (worker/supervisor.py starts it, one per
worker): reads `+<pgid>` / `-<pgid>` lines, the process groups of the job
steps running, from stdin; at its end of file (the worker is gone, however
it went) SIGKILLs every group still listed and exits.

Run by its path with `python -I -S`: the standard library's os, signal,
sys and time only, nothing of rota's.
"""

import os
import signal
import sys
import time

# How long the worker's lines gather between reads while it writes.
GATHER_SECS = 0.05


def main() -> int:
    """The supervisor: track process groups from stdin; at its end, kill them."""
    # The worker's signals are for the worker: a stop drains (the jobs keep
    # running) and the supervisor must outlive it.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    worker = os.getppid()
    groups: set[int] = set()
    stdin = sys.stdin.fileno()
    partial = b""
    while True:
        data = os.read(stdin, 65536)  # waits for the worker's next lines, or its end
        if not data:
            break
        *lines, partial = (partial + data).split(b"\n")
        for line in lines:
            op, number = line[:1], line[1:].strip()
            if not number.isdigit() or int(number) <= 1:  # never group 0 (our own) or init's
                continue
            if op == b"+":
                groups.add(int(number))
            elif op == b"-":
                groups.discard(int(number))
        # While the worker is busy, let its lines gather in the pipe: one
        # wake-up for many steps, where a wake-up per write took the CPU
        # from the worker each time. (Its end is seen this much later.)
        time.sleep(GATHER_SECS)
    killed = 0
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
            killed += 1
        except OSError:
            pass  # already gone
    if killed:
        print(f"rota worker supervisor: worker (pid {worker}) gone; killed the process groups of"
              f" {killed} running job step(s)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
