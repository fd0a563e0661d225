"""`rota submit|run --wait --follow` against real processes (issue 14, item
13): a server killed with -9 and started again, and a Redis restart, are
waited out; the exit status is the run's, and each log line is printed
once. SIGINT and SIGTERM leave the run going and say how to cancel it, or
cancel it with --cancel-on-interrupt.

Each job waits for a file the test creates, so nothing here depends on how
fast anything runs."""

from __future__ import annotations

import re
import signal

import pytest
import yaml

from tests.procs import Proc, WorkerProc, rota, rota_background, wait_until
from tests.redis_proc import redis_server
from tests.server_proc import ServerProcess

pytestmark = pytest.mark.slow


def gated_job(label: str, gate) -> str:
    """A workflow whose one job prints `before`, waits for `gate`, prints `after`."""
    script = f"echo before\nwhile [ ! -e {gate} ]; do sleep 0.1; done\necho after\n"
    return yaml.safe_dump({"name": "gated", "jobs": {"job": {"run": script, "labels": [label]}}})


def lines(proc: Proc) -> list[str]:
    """The CLI's output without the [m:ss] stamps."""
    return [re.sub(r"^\[\d+:\d\d\] ", "", line) for line in proc.logfile.read_text().splitlines()]


@pytest.fixture
def redis():
    with redis_server(appendonly=True) as proc:  # AOF: a restart keeps the state
        yield proc


@pytest.fixture
def fleet(redis, tmp_path, label):
    """A server on Redis, and a worker (a long lease: it outlives the outages)."""
    server = ServerProcess(redis.url).start()
    worker = WorkerProc(server, tmp_path, f"w-{label}", "--labels", label, "--lease-ttl", "300")
    yield server, worker
    worker.stop()
    server.stop()


def finished_once(follower: Proc, worker: WorkerProc) -> list[str]:
    said = lines(follower)
    assert said.count("job | before") == 1 and said.count("job | after") == 1, follower.log() + worker.log()
    assert sum("server unreachable; reconnecting" in line for line in said) == 1, follower.log()
    assert sum(line.startswith("reconnected after ") for line in said) == 1, follower.log()
    assert re.fullmatch(r"workflow \S+ run #1: success", said[-1]), follower.log()
    return said


def test_a_follow_rides_out_a_server_killed_and_started_again(fleet, tmp_path, label):
    server, worker = fleet
    gate = tmp_path / "go"
    (tmp_path / "gated.yml").write_text(gated_job(label, gate))
    follower = rota_background("submit", str(tmp_path / "gated.yml"), "--follow", server=server,
                               logdir=tmp_path, name="follow")
    try:
        wait_until(lambda: "job | before" in follower.log(), "the job to start", timeout=30,
                   logs=lambda: follower.log() + worker.log())
        server.kill()  # kill -9: no goodbye to the CLI's poll or its log tail
        wait_until(lambda: "server unreachable; reconnecting" in follower.log(), "the CLI to notice", timeout=30,
                   logs=follower.log)
        again = ServerProcess(server.env["REDIS_URL"], port=server.port).start()
        try:
            gate.touch()
            assert follower.wait(60) == 0, follower.log() + worker.log() + again.output()
        finally:
            again.stop()
    finally:
        follower.kill()
    finished_once(follower, worker)


def test_a_follow_rides_out_a_redis_restart(fleet, redis, tmp_path, label):
    server, worker = fleet
    gate = tmp_path / "go"
    (tmp_path / "gated.yml").write_text(gated_job(label, gate))
    defined = rota("submit", str(tmp_path / "gated.yml"), "--id", "gated", "--no-run", server=server)
    assert defined.returncode == 0, defined.stderr
    follower = rota_background("run", "gated", "--wait", "--follow", server=server, logdir=tmp_path, name="follow")
    try:
        wait_until(lambda: "job | before" in follower.log(), "the job to start", timeout=30,
                   logs=lambda: follower.log() + worker.log())
        redis.stop()
        wait_until(lambda: "server unreachable; reconnecting" in follower.log(), "the CLI to notice", timeout=60,
                   logs=follower.log)
        assert "store_unavailable" in follower.log()  # the server answered: its Redis was out
        redis.start()  # same port, same directory
        gate.touch()
        assert follower.wait(90) == 0, follower.log() + worker.log() + server.output()
    finally:
        follower.kill()
    finished_once(follower, worker)


# ---- interrupts --------------------------------------------------------------------------


@pytest.fixture
def worker(server, tmp_path, label):
    proc = WorkerProc(server, tmp_path, f"w-{label}", "--labels", label, "--cancel-grace", "5")
    yield proc
    proc.stop()


def waiting_run(server, tmp_path, label, *flags: str) -> tuple[Proc, str]:
    (tmp_path / "gated.yml").write_text(gated_job(label, tmp_path / "go"))
    waiter = rota_background("submit", str(tmp_path / "gated.yml"), "--wait", *flags, server=server,
                             logdir=tmp_path, name="wait")
    wait_until(lambda: "job: running" in waiter.log(), "the job to run", timeout=30, logs=waiter.log)
    workflow_id = lines(waiter)[0]
    status = rota("status", workflow_id, "--json", server=server)
    import json

    return waiter, json.loads(status.stdout)["run_id"]


def run_status(server, run_id: str) -> str:
    import json

    return json.loads(rota("status", run_id, "--json", server=server).stdout)["status"]


def test_an_interrupted_wait_leaves_the_run_going_and_says_how_to_cancel_it(server, worker, tmp_path, label):
    waiter, run_id = waiting_run(server, tmp_path, label)
    try:
        waiter.send(signal.SIGINT)
        assert waiter.wait(30) == 130, waiter.log()
        assert f"run {run_id} is still going; cancel it with: rota cancel {run_id}" in lines(waiter)
        assert "Traceback" not in waiter.log()
        assert run_status(server, run_id) == "running"
    finally:
        waiter.kill()
        rota("cancel", run_id, server=server)


def test_cancel_on_interrupt_cancels_the_run_on_sigterm(server, worker, tmp_path, label):
    waiter, run_id = waiting_run(server, tmp_path, label, "--cancel-on-interrupt")
    try:
        waiter.send(signal.SIGTERM)
        assert waiter.wait(30) == 143, waiter.log()
        assert f"cancel requested for run {run_id}" in lines(waiter)
        wait_until(lambda: run_status(server, run_id) == "cancelled", "the run to be cancelled", timeout=30,
                   logs=worker.log)
    finally:
        waiter.kill()
