"""The job supervisor (worker/supervisor.py, worker/supervise.py): a job's process group dies with
its worker. In-process for the supervisor itself; real processes (kill -9 of a
`rota worker`) for the end-to-end proof."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

import worker.daemon.supervisor
from tests.procs import WorkerProc, kill_group, pid_alive, rota, wait_until
from worker.daemon.supervisor import Supervisor

DEADLINE = 30.0  # generous: the machine may be busy; the supervisor acts at once


def sleeper() -> subprocess.Popen:
    """A process group of its own, as a job step's is, holding a child."""
    return subprocess.Popen(["bash", "-c", "sleep 600 & echo $!; wait"], stdout=subprocess.PIPE,
                            start_new_session=True)


async def wait_gone(pid: int, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while pid_alive(pid):
        if loop.time() > deadline:
            raise AssertionError(f"{what} (pid {pid}) still alive after {DEADLINE}s")
        await asyncio.sleep(0.05)


async def test_groups_still_listed_when_the_worker_goes_are_killed():
    # The supervisor's program, fed as the worker feeds it; its stdin's end of
    # file is what the worker's death looks like to it.
    program = subprocess.Popen([sys.executable, "-I", "-S", worker.daemon.supervisor.PROGRAM], stdin=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    watched, done = sleeper(), sleeper()
    try:
        child = int(watched.stdout.readline())
        program.stdin.write(f"+{watched.pid}\n+{done.pid}\n-{done.pid}\n+0\n+1\n+junk\n".encode())
        program.stdin.close()
        assert program.wait(DEADLINE) == 0
        await wait_gone(child, "the watched job's child")
        await wait_gone(watched.pid, "the watched job")
        assert watched.wait(5) == -signal.SIGKILL
        assert done.poll() is None, "a group no longer listed was killed"
        assert "killed the process groups of 1 running job step(s)" in program.stderr.read().decode()
    finally:
        for proc in (watched, done):
            kill_group(proc.pid)
            proc.wait(5)


async def test_a_dead_supervisor_is_replaced_and_told_the_running_groups():
    supervisor = Supervisor(restart_delay=0.05)
    supervisor.start()
    job = sleeper()
    try:
        supervisor.watch(job.pid)
        first = supervisor.pid
        os.kill(first, signal.SIGKILL)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while supervisor.pid in (None, first):
            assert loop.time() < deadline, "no new supervisor"
            await asyncio.sleep(0.02)
        assert job.poll() is None
        # Stopping with the job still listed: the new supervisor kills it.
        supervisor.close()
        await wait_gone(job.pid, "the job")
    finally:
        kill_group(job.pid)
        job.wait(5)
        supervisor.close()


async def test_a_clean_stop_ends_the_supervisor():
    supervisor = Supervisor()
    supervisor.start()
    proc = supervisor._proc
    supervisor.close()
    assert proc.poll() == 0


async def test_the_supervisor_ignores_the_signals_that_stop_the_worker():
    supervisor = Supervisor()
    supervisor.start()
    try:
        wanted = sum(1 << (signum - 1) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP))

        def ignored() -> int:
            with open(f"/proc/{supervisor.pid}/status") as f:
                line = next(line for line in f if line.startswith("SigIgn:"))
            return int(line.split()[1], 16)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while ignored() & wanted != wanted:  # (it ignores them once it has started)
            assert loop.time() < deadline, "the supervisor never ignored the stop signals"
            await asyncio.sleep(0.02)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            os.kill(supervisor.pid, signum)
        await asyncio.sleep(0.2)
        assert supervisor._proc.poll() is None
    finally:
        supervisor.close()


async def test_the_supervisor_gets_none_of_the_workers_environment(monkeypatch):
    monkeypatch.setenv("ROTA_TOKEN", "rota_secret_of_the_worker")
    supervisor = Supervisor()
    supervisor.start()
    try:
        with open(f"/proc/{supervisor.pid}/environ", "rb") as f:
            assert b"rota_secret" not in f.read()
    finally:
        supervisor.close()


# ---- with real processes ---------------------------------------------------------


@pytest.mark.slow
def test_a_silent_job_dies_with_its_worker_killed_by_sigkill(server, tmp_path, label):
    worker = WorkerProc(server, tmp_path, f"doomed-{label}", "--labels", label)
    pidfile, childfile = tmp_path / "pid", tmp_path / "child"
    doc = tmp_path / "wf.yml"
    # Writes nothing to stdout or stderr: without a supervisor, SIGPIPE never
    # comes and it outlives the worker.
    doc.write_text(
        "name: silent\non: push\njobs:\n  deploy:\n"
        f"    labels: [{label}]\n"
        f"    run: |\n      echo $$ > {pidfile}\n      sleep 600 &\n      echo $! > {childfile}\n      wait\n")
    done = rota("submit", str(doc), server=server)
    assert done.returncode == 0, done.stderr
    pids = wait_until(lambda: pidfile.exists() and childfile.exists() and pidfile.read_text().strip()
                      and childfile.read_text().strip() and (int(pidfile.read_text()), int(childfile.read_text())),
                      "the job to start", logs=worker.log)
    try:
        os.kill(worker.pid, signal.SIGKILL)
        for pid in pids:
            wait_until(lambda pid=pid: not pid_alive(pid), f"job process {pid} to die with its worker", timeout=DEADLINE,
                       logs=worker.log)
        # the supervisor says so after the kill, so the groups may be gone first
        wait_until(lambda: "killed the process groups of 1 running job step(s)" in worker.log(),
                   "the supervisor to say what it killed", timeout=DEADLINE, logs=worker.log)
    finally:
        worker.kill()
        for pid in pids:
            kill_group(pid)
