"""worker/daemon/workdir.py and jobdirs.py: job directories made ahead
and taken by jobs, a finished job's directory removed by its known layout
(or all of it, whatever the job left), in a thread of their own."""

import json
import os

from server.models import QueuedJob, RetryPolicy
from worker.daemon.jobdirs import INLINE_UPSTREAM_BYTES, SPARE_PREFIX, JobDirs
from worker.daemon.workdir import Workdir, remove_job_dir


def job_dir(tmp_path, name="wf.job.abcdefgh"):
    root = tmp_path / name
    (root / "work").mkdir(parents=True)
    files = [root / "output", root / "upstream-outputs.json"]
    for f in files:
        f.write_text("{}")
    return root, [str(f) for f in files]


def test_a_job_directory_as_the_job_found_it_is_removed(tmp_path):
    root, files = job_dir(tmp_path)
    assert remove_job_dir(str(root), files) and not root.exists()


def test_whatever_a_job_left_is_removed_too(tmp_path):
    root, files = job_dir(tmp_path)
    (root / "work" / "deep" / "er").mkdir(parents=True)
    (root / "work" / "deep" / "er" / "f").write_text("x")
    (root / "work" / "deep").chmod(0o500)  # read-only, as Go's module cache leaves it
    (root / "scripts").mkdir()
    (root / "output").unlink()  # and one of the known files gone
    assert remove_job_dir(str(root), files) and not root.exists()


def test_a_link_in_place_of_the_working_directory_is_removed_not_followed(tmp_path):
    root, files = job_dir(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("mine")
    (root / "work").rmdir()
    (root / "work").symlink_to(outside)
    (root / "output").unlink()
    (root / "output").symlink_to(outside / "keep")
    assert remove_job_dir(str(root), files) and not root.exists()
    assert (outside / "keep").read_text() == "mine"


def queued(**fields) -> QueuedJob:
    return QueuedJob(job_id="build", workflow_id="wf-1", command="true", required_labels=[],
                     retry_policy=RetryPolicy(), attempt=0, upstream_outputs=fields.pop("upstream_outputs", {}),
                     enqueued_at_ms=1, delayed_until_ms=0, **fields)


def spares_in(workdir) -> list[str]:
    return [name for name in os.listdir(workdir) if name.startswith(SPARE_PREFIX)]


def wait_until(condition, what, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_removals_happen_in_their_thread_and_wait_says_when_all_are_gone(tmp_path):
    dirs = JobDirs(str(tmp_path), 0, None)
    roots = []
    for i in range(20):
        root, files = job_dir(tmp_path, f"wf.job{i}.abcdefgh")
        (root / "work" / "left").write_text("x")
        roots.append(root)
        dirs.remove(str(root), files, f"wf/job{i}")
    assert dirs.wait(60)
    assert not [r for r in roots if os.path.lexists(r)]
    assert dirs.close(60)


def test_a_job_takes_a_directory_made_ahead_named_after_it_as_a_fresh_one_is(tmp_path):
    dirs = JobDirs(str(tmp_path), 2, None)
    assert dirs.take(queued()) is None  # none made yet
    dirs.start()
    wait_until(lambda: len(spares_in(tmp_path)) == 2, "two spares")
    root, files = dirs.take(queued(upstream_outputs={"lint": {"ok": "yes"}}))
    assert os.path.basename(root).startswith("wf-1.build.") and os.path.dirname(root) == str(tmp_path)
    assert sorted(os.listdir(root)) == ["output", "upstream-outputs.json", "work"]
    assert os.stat(root).st_mode & 0o777 == 0o700 and os.listdir(files.cwd) == []
    assert open(files.output).read() == "" and files.handed == {}
    assert json.load(open(files.upstream)) == {"lint": {"ok": "yes"}}
    wait_until(lambda: len(spares_in(tmp_path)) == 2, "the spare taken made again")
    assert dirs.close(60)
    assert spares_in(tmp_path) == [] and os.path.isdir(root)  # (the job's own goes with the job)


def test_a_job_with_more_to_hand_than_a_spare_holds_makes_its_own(tmp_path):
    dirs = JobDirs(str(tmp_path), 1, None)
    dirs.start()
    wait_until(lambda: spares_in(tmp_path), "a spare")
    assert dirs.take(queued(checkpoint={"step": 3})) is None
    assert dirs.take(queued(event={"approved": True})) is None
    assert dirs.take(queued(upstream_outputs={"big": {"v": "x" * INLINE_UPSTREAM_BYTES}})) is None
    assert len(spares_in(tmp_path)) == 1
    assert dirs.close(60)


def test_spares_a_killed_daemon_left_are_swept_at_the_next_start(tmp_path):
    dirs = JobDirs(str(tmp_path), 3, None)
    dirs.start()
    wait_until(lambda: len(spares_in(tmp_path)) == 3, "three spares")
    # (no close: as if the daemon were killed)
    workdir = Workdir(str(tmp_path))
    workdir.acquire()
    try:
        # (the thread makes more only when asked: at start, or as a job takes one)
        assert workdir.sweep() == 3 and spares_in(tmp_path) == []
    finally:
        workdir.release()


def test_a_command_looked_for_on_a_path_is_remembered_a_few_seconds(tmp_path):
    from worker.daemon.shells import WHICH_TTL_SECS, which

    path = str(tmp_path)
    assert which("tool-x", path, now=1000.0) is None
    (tmp_path / "tool-x").write_text("#!/bin/sh\n")
    (tmp_path / "tool-x").chmod(0o755)
    assert which("tool-x", path, now=1000.0 + WHICH_TTL_SECS / 2) is None  # remembered
    assert which("tool-x", path, now=1000.0 + WHICH_TTL_SECS) == str(tmp_path / "tool-x")  # looked for again
