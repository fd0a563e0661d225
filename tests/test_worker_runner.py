import asyncio
import os

import pytest

from tests.procs import pid_alive
from worker.daemon.runner import STEP_MARKER, Runner, Script


class Sink:
    def __init__(self, congested_after: int | None = None):
        self.writes: list[tuple[str, str]] = []
        self.congested = False
        self._congested_after = congested_after
        self.room = asyncio.Event()

    def write(self, stream: str, text: str) -> None:
        self.writes.append((stream, text))
        if self._congested_after is not None and self.chars() >= self._congested_after:
            self.congested = True

    async def drained(self) -> None:
        await self.room.wait()
        self.congested = False

    def text(self, stream: str) -> str:
        return "".join(t for s, t in self.writes if s == stream)

    def chars(self) -> int:
        return sum(len(t) for _, t in self.writes)


def make_runner(tmp_path, sink, env=None, grace=5.0, **seams):
    return Runner(cwd=str(tmp_path), env={**os.environ, **(env or {})}, sink=sink, cancel_grace=grace, **seams)



async def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_success_streams_stdout_and_stderr(tmp_path):
    sink = Sink()
    result = await make_runner(tmp_path, sink, {"WHO": "rota"}).run(
        [Script('echo "hello $WHO"; echo oops >&2; pwd')]
    )
    assert result.succeeded and result.exit_code == 0
    assert sink.text("stdout") == f"hello rota\n{tmp_path}\n"
    assert sink.text("stderr") == "oops\n"


async def test_steps_run_in_order_with_markers_and_stop_at_first_failure(tmp_path):
    sink = Sink()
    result = await make_runner(tmp_path, sink).run(
        [
            Script("echo one", "first"),
            Script("echo two; echo broken >&2; exit 3", "second"),
            Script("echo three", "third"),
        ]
    )
    assert not result.succeeded
    assert (result.exit_code, result.failed_step) == (3, "second")
    assert sink.text("stdout") == (
        STEP_MARKER.format(name="first") + "one\n" + STEP_MARKER.format(name="second") + "two\n"
    )
    assert result.describe_failure() == "exit code 3 in step 'second': broken"


async def test_bash_errexit_and_pipefail(tmp_path):
    sink = Sink()
    result = await make_runner(tmp_path, sink).run([Script("false | true\necho unreachable")])
    assert result.exit_code == 1
    assert "unreachable" not in sink.text("stdout")


async def test_failure_message_keeps_the_last_stderr_lines(tmp_path):
    result = await make_runner(tmp_path, Sink()).run([Script("for i in $(seq 1 30); do echo err$i >&2; done; exit 7")])
    assert result.describe_failure() == "exit code 7: " + "\n".join(f"err{i}" for i in range(21, 31))


async def test_split_utf8_is_decoded_whole(tmp_path):
    sink = Sink()
    await make_runner(tmp_path, sink).run([Script(r"printf '\xc3'; sleep 0.05; printf '\xa9\n'")])
    assert sink.text("stdout") == "é\n"


async def test_stop_kills_the_whole_process_group(tmp_path):
    sink = Sink()
    runner = make_runner(tmp_path, sink)
    pidfile = tmp_path / "child.pid"
    job = asyncio.create_task(runner.run([Script(f"sleep 300 & echo $! > {pidfile}; wait")]))
    await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the child to start")
    child = int(pidfile.read_text())
    runner.stop("cancelled")
    result = await asyncio.wait_for(job, 5)
    assert result.stop_reason == "cancelled" and not result.succeeded
    await wait_for(lambda: not pid_alive(child), "the child to die")


async def test_sigkill_after_grace_when_sigterm_is_ignored(tmp_path):
    runner = make_runner(tmp_path, Sink(), grace=0.2)
    ready = tmp_path / "ready"
    job = asyncio.create_task(runner.run([Script(f"trap '' TERM; touch {ready}; while true; do sleep 0.05; done")]))
    await wait_for(ready.exists, "the trap to be set")
    runner.stop("timeout")
    result = await asyncio.wait_for(job, 5)
    assert result.stop_reason == "timeout"
    assert result.exit_code == -9
    assert result.describe_failure() == "killed by SIGKILL"


async def test_leftover_background_processes_are_killed_when_the_step_ends(tmp_path):
    pidfile = tmp_path / "bg.pid"
    result = await asyncio.wait_for(
        make_runner(tmp_path, Sink()).run([Script(f"sleep 300 & echo $! > {pidfile}")]), 5
    )
    assert result.succeeded
    await wait_for(lambda: not pid_alive(int(pidfile.read_text())), "the orphan to die")


async def test_stop_between_steps_skips_the_rest(tmp_path):
    sink = Sink()
    runner = make_runner(tmp_path, sink)
    runner.stop("shutdown")
    result = await runner.run([Script("echo never", "only")])
    assert result.stop_reason == "shutdown" and result.exit_code is None
    assert sink.writes == []


async def test_congested_sink_pauses_reading_until_drained(tmp_path):
    sink = Sink(congested_after=1)
    runner = make_runner(tmp_path, sink)
    # 1 MiB is far more than a pipe buffer: the writer blocks while paused.
    job = asyncio.create_task(runner.run([Script("head -c 1048576 /dev/zero | tr '\\0' x")]))
    await wait_for(lambda: sink.congested, "congestion")
    await asyncio.sleep(0.2)
    assert not job.done()
    assert sink.chars() < 1048576
    sink.room.set()
    result = await asyncio.wait_for(job, 5)
    assert result.succeeded and sink.chars() == 1048576


@pytest.mark.parametrize("reason", ["cancelled", "lease lost"])
async def test_first_stop_reason_wins(tmp_path, reason):
    runner = make_runner(tmp_path, Sink())
    job = asyncio.create_task(runner.run([Script("sleep 300")]))
    await asyncio.sleep(0.05)
    runner.stop(reason)
    runner.stop("timeout")
    assert (await asyncio.wait_for(job, 5)).stop_reason == reason


# ---- starting a step (worker/daemon/spawn.py) ------------------------------------------------------


async def test_the_event_loop_runs_on_while_a_step_is_being_started(tmp_path):
    """The step starts in a spawn thread: here that thread waits for the loop
    itself to let it go, which it could not do were it held by the start."""
    import threading

    from worker.daemon import spawn

    go = threading.Event()

    def held_start(*args):
        assert go.wait(30), "the event loop never ran while the step was being started"
        return spawn.start_process(*args)

    sink = Sink()
    job = asyncio.create_task(make_runner(tmp_path, sink, starter=held_start).run([Script("echo started")]))
    await asyncio.sleep(0.05)
    asyncio.get_running_loop().call_soon(go.set)
    result = await asyncio.wait_for(job, 30)
    assert result.succeeded and sink.text("stdout") == "started\n"


async def test_a_step_cancelled_while_it_is_being_started_is_killed_once_it_has(tmp_path):
    import threading

    from worker.daemon import spawn

    go, in_thread = threading.Event(), threading.Event()
    started: list[int] = []

    def held_start(*args):
        in_thread.set()
        go.wait(30)
        proc, out_r, err_r = spawn.start_process(*args)
        started.append(proc.pid)
        return proc, out_r, err_r

    job = asyncio.create_task(make_runner(tmp_path, Sink(), starter=held_start).run([Script("exec sleep 300")]))
    await wait_for(in_thread.is_set, "the start to begin")
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    go.set()
    await wait_for(lambda: started, "the step to have started")
    await wait_for(lambda: not pid_alive(started[0]), "the step started for nothing to be killed")


async def test_without_pidfds_a_steps_exit_is_heard_from_a_thread(tmp_path):
    sink = Sink()
    result = await make_runner(tmp_path, sink, pidfds=False).run([Script("echo out; echo err >&2; exit 3")])
    assert result.exit_code == 3 and sink.text("stdout") == "out\n" and result.stderr_tail == "err"


async def test_a_command_that_cannot_start_raises_oserror_and_leaves_no_descriptor(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    runner = make_runner(tmp_path, Sink())
    with pytest.raises(FileNotFoundError):
        await runner.run_step(Script("", argv=[str(tmp_path / "no-such-command")]))
    assert len(os.listdir("/proc/self/fd")) == before
