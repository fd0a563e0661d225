"""worker/daemon/workdir.py: a finished job's directory removed by its
known layout (or all of it, whatever the job left), in the Remover's thread."""

import os

from worker.daemon.workdir import Remover, remove_job_dir


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


def test_the_remover_removes_in_its_thread_and_says_when_all_are_gone(tmp_path):
    remover = Remover()
    roots = []
    for i in range(20):
        root, files = job_dir(tmp_path, f"wf.job{i}.abcdefgh")
        (root / "work" / "left").write_text("x")
        roots.append(root)
        remover.remove(str(root), files, f"wf/job{i}")
    assert remover.wait(60)
    assert not [r for r in roots if os.path.lexists(r)]


def test_a_command_looked_for_on_a_path_is_remembered_a_few_seconds(tmp_path, monkeypatch):
    from worker.daemon import shells

    now = [1000.0]
    monkeypatch.setattr(shells.time, "monotonic", lambda: now[0])
    path = str(tmp_path)
    assert shells.which("tool-x", path) is None
    (tmp_path / "tool-x").write_text("#!/bin/sh\n")
    (tmp_path / "tool-x").chmod(0o755)
    assert shells.which("tool-x", path) is None  # remembered
    now[0] += shells.WHICH_TTL_SECS
    assert shells.which("tool-x", path) == str(tmp_path / "tool-x")  # looked for again
