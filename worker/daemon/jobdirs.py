"""A daemon's job directories: made ahead of the jobs that take them, and
removed after they end, by a thread of their own.

Making a job's directory (four new inodes) and removing it are the disk's
work, milliseconds at times, that must not hold the event loop. Sent to a
thread and back for each job, they cost two thread hops a job (a wake-up
each way, a tenth of a short job's CPU here), and every job's start waited
for one. So this thread keeps up to `spares` fresh directories ready, each
as a job finds it (its empty working directory, an empty $ROTA_OUTPUT and
`{}` for upstream outputs), and a starting job takes one (`take`): renamed
after the job and, when the job has upstream outputs of at most
INLINE_UPSTREAM_BYTES as JSON, that file written, both in the event loop.
A job with more, or with a checkpoint or event to hand, or one that finds
no spare ready, has its directory made in a thread as before. A finished
job's directory goes in this thread by its known layout
(workdir.remove_job_dir). While requests keep coming the thread lets them
gather (GATHER_SECS) between rounds: a busy worker wakes it a few dozen
times a second, not twice a job.

A spare is never handed to anything before the job that takes it. It is
named `rota-spare.ready.<random>`, as a job's directory is named, so those
a killed daemon left are removed by the next one's sweep (workdir.py).
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from typing import Optional, Sequence, Union

from server.models import QueuedJob
from worker.daemon.job_setup import JobFiles, fill_dir, job_json, write_new
from worker.daemon.run_as import RunAs
from worker.daemon.workdir import OUTPUT_FILE, UPSTREAM_FILE, WORK_DIR, job_dir_path, remove_job_dir

log = logging.getLogger("rota.worker")

# Upstream outputs this large at most (as JSON) are written when the job
# takes its directory, in the event loop; larger ones in a thread.
INLINE_UPSTREAM_BYTES = 4096
# Between two rounds of work while requests keep coming.
GATHER_SECS = 0.02
# Spares kept at most, whatever the concurrency.
MAX_SPARES = 64
SPARE_PREFIX = "rota-spare.ready."

_REFILL, _STOP = object(), object()


class JobDirs:
    def __init__(self, workdir: str, spares: int, run_as: Optional[RunAs]):
        self._workdir = os.path.abspath(workdir)
        self._target = max(0, min(spares, MAX_SPARES))
        self._run_as = run_as
        self._spares: list[tuple[str, JobFiles]] = []
        self._queue: queue.SimpleQueue[Union[object, tuple[str, Sequence[str], str]]] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._pending = 0  # removals asked for and not yet done
        self._closing = False
        self._warned = False  # that spares cannot be made, since the last one made
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Begin making spares (once the workdir is locked and swept)."""
        self._ask(_REFILL)

    def take(self, job: QueuedJob) -> Optional[tuple[str, JobFiles]]:
        """A fresh directory for `job`, named after it, and its files: a
        spare, in the caller's thread. None when none is ready or the job
        needs more than a spare holds; raises OSError if the upstream
        outputs cannot be written (the directory is then removed)."""
        if job.checkpoint is not None or job.event is not None:
            return None
        upstream = job_json(job.upstream_outputs)
        if len(upstream) > INLINE_UPSTREAM_BYTES:
            return None
        with self._lock:
            spare = self._spares.pop() if self._spares else None
        self._ask(_REFILL)
        if spare is None:
            return None
        spare_root, spare_files = spare
        root = job_dir_path(self._workdir, job.workflow_id, job.job_id)
        try:
            if os.path.lexists(root):  # (rename would replace an empty directory there)
                raise FileExistsError(root)
            os.rename(spare_root, root)
        except OSError:
            self.remove(spare_root, [spare_files.output, spare_files.upstream], "a spare")
            return None
        files = JobFiles(os.path.join(root, WORK_DIR), os.path.join(root, OUTPUT_FILE), os.path.join(root, UPSTREAM_FILE))
        if upstream != b"{}":
            try:
                write_new(files.upstream, upstream)
            except OSError:
                self.remove(root, [files.output, files.upstream], "a spare")
                raise
        return root, files

    def remove(self, root: str, files: Sequence[str], name: str) -> None:
        """Remove job `name`'s directory `root` (see remove_job_dir), soon."""
        with self._lock:
            self._pending += 1
        self._ask((root, files, name))

    def wait(self, timeout: float) -> bool:
        """Whether every removal asked for so far is done, waiting up to `timeout`."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float) -> bool:
        """Make no more spares, remove those left, and wait up to `timeout`
        for every removal; then end the thread. Whether all were done."""
        with self._lock:
            self._closing = True
            spares, self._spares = self._spares, []
        for root, files in spares:
            self.remove(root, [files.output, files.upstream], "a spare")
        done = self.wait(timeout)
        self._queue.put(_STOP)
        return done

    def _ask(self, item: object) -> None:
        with self._lock:
            if self._thread is None:
                # A daemon thread: a stop waits for it a while (close()), not for ever.
                self._thread = threading.Thread(target=self._run, name="rota-jobdirs", daemon=True)
                self._thread.start()
        self._queue.put(item)

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for item in items:
                if isinstance(item, tuple):
                    self._remove(*item)
            if _STOP in items:
                return
            self._refill()
            # Let the next requests gather: puts while this sleeps wake nobody.
            time.sleep(GATHER_SECS)

    def _remove(self, root: str, files: Sequence[str], name: str) -> None:
        try:
            if not remove_job_dir(root, files):
                log.warning("could not remove all of %s's directory %s", name, root)
        except Exception:  # never let one removal end the thread
            log.exception("removing %s's directory %s failed", name, root)
        finally:
            with self._lock:
                self._pending -= 1
                self._lock.notify_all()

    def _refill(self) -> None:
        while True:
            with self._lock:
                if self._closing or len(self._spares) >= self._target:
                    return
            try:
                root = tempfile.mkdtemp(prefix=SPARE_PREFIX, dir=self._workdir)  # mode 0700
                files = fill_dir(root, self._run_as)
            except OSError as exc:
                if not self._warned:
                    log.warning("cannot make job directories ahead in %s (jobs make their own): %s",
                                self._workdir, exc)
                    self._warned = True
                return
            self._warned = False
            with self._lock:
                if self._closing:
                    self._pending += 1
                    self._queue.put((root, [files.output, files.upstream], "a spare"))
                    return
                self._spares.append((root, files))
