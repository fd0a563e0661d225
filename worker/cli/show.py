"""`rota status` and `rota logs`: what a run (or a workflow's latest run) is
doing and what its jobs printed.

A command names a run or a workflow with one argument: a run id, a
workflow id, or the name of a one-off workflow (`POST /api/workflows`,
whose id is a UUID) while no other one-off has that name. The server says
which (`GET /api/resolve/{ref}`).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional, TextIO

from server.models import JobLogChunk, JobOut, RunOut, WorkflowOut
from server.inputs import text as input_text
from worker.cli.details import job_details, notes, progress
from worker.cli import timing
from worker.cli.output import one_line, print_json, table
from server.terminal import safe, safe_coloured
from worker.client.api import Client
from worker.client.errors import ApiError, RotaError
from worker.client.reconnect import Reconnect
from worker.client.runs import Outages

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
TERMINAL = {"success", "failure", "skipped", "cancelled"}


@dataclass
class Target:
    name: str
    workflow: Optional[WorkflowOut]  # when named as a workflow
    run: Optional[RunOut]  # its latest run, or the run named; None: never ran

    @property
    def workflow_id(self) -> str:
        return self.run.workflow_id if self.run else self.workflow.id  # type: ignore[union-attr]

    def label(self) -> str:
        """`ci run #3 (RUN_ID)`: how messages name the run."""
        if self.run is None:
            return f"workflow {self.name}"
        return f"{self.run.workflow_id} run #{self.run.number} ({self.run.run_id})"

    def need_run(self) -> RunOut:
        if self.run is None:
            raise RotaError(f"workflow {self.name} has not run yet (start it: rota run {self.name})")
        return self.run


async def resolve(client: Client, name: str) -> Target:
    """What `name` stands for, asked in one read (GET /api/resolve): no
    guess the server would refuse and log. A one-off workflow is found by
    its name while no other one-off shares it."""
    try:
        found = await client.resolve(name)
    except ApiError as exc:
        if exc.status == 404 and exc.code == "not_found":  # a server from before /api/resolve
            return await _guess(client, name)
        raise
    if found.kind == "run":
        return Target(name, None, await client.get_run(found.run_id or name))
    workflow = await client.status(found.workflow_id)
    run = await client.get_run(workflow.latest_run_id) if workflow.latest_run_id else None
    return Target(workflow.id, workflow, run)


async def workflow_id(client: Client, name: str) -> str:
    """The id of the workflow `name` stands for (its id, or a one-off's name)."""
    try:
        found = await client.resolve(name)
    except ApiError as exc:
        if exc.status == 404 and exc.code == "not_found":  # a server from before /api/resolve
            return name
        raise
    if found.kind == "run":
        raise RotaError(f"{name} is a run of workflow {found.workflow_id}, not a workflow"
                        f" (rerun its failures with: rota retry {name})")
    return found.workflow_id


async def _guess(client: Client, name: str) -> Target:
    if _UUID.match(name):
        try:
            return Target(name, None, await client.get_run(name))
        except ApiError as exc:
            if exc.status != 404:
                raise
    try:
        workflow = await client.status(name)
    except ApiError as exc:
        if exc.status == 404 and _UUID.match(name):
            raise ApiError(404, "not_found", f"no run or workflow {name!r}") from None
        raise
    run = await client.get_run(workflow.latest_run_id) if workflow.latest_run_id else None
    return Target(name, workflow, run)


# ---- status ---------------------------------------------------------------------------


async def status(client: Client, args: argparse.Namespace) -> int:
    target = await resolve(client, args.target)
    workflow, run = target.workflow, target.run
    if args.json:
        print_json(run if run is not None else workflow)
        return 0
    name = f" ({safe(workflow.name)})" if workflow else ""
    if workflow is not None and workflow.paused:
        what = "its new runs wait for it to resume" if workflow.paused == "queue" else "its new runs are refused"
        print(f"workflow {workflow.id} is paused: {what} (rota resume --workflow {workflow.id})")
    if run is None:
        assert workflow is not None
        if workflow.status == "idle":
            print(f"{workflow.id}{name}: not started (start it: rota run {workflow.id})")
            return 0
        # A server from before runs: the workflow's own view.
        print(f"{workflow.id}{name}: {workflow.status}")
        _print_jobs(workflow.jobs, args.full)
        return 0
    if run.name:  # its run-name rendered, or the workflow's name
        name = f" ({safe(run.name)})"
    print(f"{run.workflow_id}{name} run #{run.number} ({run.run_id}): {run.status}{safe(_held(run))}")
    # (a job's spawned run has the inputs and tags that job gave it)
    extras = [f"{key} {', '.join(f'{k}={input_text(v)}' for k, v in pairs.items())}"
              for key, pairs in (("inputs", run.inputs), ("tags", run.tags)) if pairs]
    if extras:
        print(safe("; ".join(extras)))
    for line in timing.run_lines(run):
        print(safe(line))
    _print_jobs(run.jobs or [], args.full, run.run_id)
    if run.notes:
        print("\nnotes:")
        print("\n".join(notes(run.notes, args.full)))
    return 0


def _held(run: RunOut) -> str:
    """What holds the run back, said in full (rota runs says it short)."""
    held = []
    if run.paused:
        held.append(f"paused: no job of it goes to a worker until `rota resume {run.run_id}`")
    if run.waiting_for_workflow:
        held.append(f"waiting for workflow {run.workflow_id} to resume")
    if run.waiting_for_group:
        held.append(f"waiting for a place in concurrency group {run.waiting_for_group}")
    elif run.concurrency_group and run.status in ("queued", "running"):
        held.append(f"concurrency group {run.concurrency_group}")
    return f" ({'; '.join(held)})" if held else ""


def _print_jobs(jobs: list[JobOut], full: bool, run_id: str = "RUN") -> None:
    now_ms = time.time() * 1000
    rows = [[job.id, job_state(job, now_ms), str(job.attempt), _duration(job, now_ms), progress(job),
             one_line(job.error or "", 10_000 if full else 80)] for job in jobs]
    print(table(["JOB", "STATUS", "ATTEMPT", "DURATION", "PROGRESS", "ERROR"], rows))
    # what the jobs reported themselves (steps, resources, ...), each under its name
    for job in jobs:
        details = job_details(job, full, run_id)
        if details:
            print(f"\n{job.id}:")
            print("\n".join(details))
    if full:  # the errors as they are, line breaks and all
        for job in jobs:
            if job.error and "\n" in job.error.strip():
                print(f"\n{job.id} error (attempt {job.attempt}):")
                print("\n".join(f"  {line}" for line in safe(job.error.rstrip()).split("\n")))


def job_state(job: JobOut, now_ms: float) -> str:
    """The status, or for a job waiting out a backoff `retry 2/4 in 4s`."""
    if job.status == "queued" and job.retry_at is not None:
        secs = max(math.ceil((job.retry_at - now_ms) / 1000), 0)
        # `attempt` is already the coming one; a manual retry renews the budget.
        count = f"{job.attempt}/{job.max_retries}" if job.attempt <= job.max_retries else f"attempt {job.attempt}"
        return f"retry {count} in {secs}s"
    if job.waiting_for_group:
        return f"queued (group {job.waiting_for_group})"
    return job.status


def _duration(job: JobOut, now_ms: float) -> str:
    # started_at / finished_at are epoch milliseconds (the server's Redis TIME).
    if job.started_at is None:
        return "-"
    if job.finished_at is not None:
        end = job.finished_at
    elif job.status == "running":
        end = now_ms
    else:  # waiting for a retry: the last attempt's start says nothing now
        return "-"
    return f"{max(end - job.started_at, 0) / 1000:.1f}s"


def state_line(job: JobOut, why: bool = True) -> str:
    """`test: queued (attempt 1) after attempt 0 failed: exit code 1`: the
    job's state; with `why`, on a later attempt, how the one before it ended."""
    line = f"{job.id}: {job.status}"
    if job.attempt:
        line += f" (attempt {job.attempt})"
    if job.status in ("failure", "skipped") and job.error:
        line += f": {safe(job.error)}"
    elif why and job.attempt:
        before = previous_attempt(job)
        if before:
            line += f" after {before}"
    return line


# How an attempt ended, as a wait says it ("after attempt 0 ..."); a
# handed-back attempt's error says itself: "handed back by worker w1: ...".
_ENDED = {"failure": "failed: ", "timed_out": "timed out: ", "lost": "was lost: ", "cancelled": "was cancelled: ",
          "handed_back": "was ", "success": "succeeded", "waiting": "waited for an event"}


def previous_attempt(job: JobOut) -> Optional[str]:
    """`attempt 0 failed: exit code 7`: how the attempt before the job's
    current one ended (its record in the run view), or None if unknown."""
    earlier = [a for a in job.attempts if a.number < job.attempt]
    if not earlier:
        # a server that lists no attempts: a queued job's error is the last one's
        if job.status == "queued" and job.error:
            return f"attempt {job.attempt - 1} failed: {one_line(job.error)}"
        return None
    last = earlier[-1]
    said = _ENDED.get(last.status, f"ended {last.status}: ")
    if said.endswith(" "):
        detail = last.error or ("handed back" if last.status == "handed_back" else "no reason given")
        said += one_line(detail)
    return f"attempt {last.number} {said}"


# ---- logs -----------------------------------------------------------------------------


class LogPrinter:
    """Writes one job's chunks as they come, or each line behind `prefix`; a line
    `--- attempt N on WORKER ---` where one attempt's output ends and
    another's starts (and before the first when there are several). What
    the job wrote is made safe for a terminal (terminal.safe_coloured),
    unless `raw` (`rota logs --raw`: the text as the job wrote it)."""

    def __init__(self, out: TextIO, prefix: str, workers: dict[int, str], several: bool,
                 lookup: Optional[Callable[[], Awaitable[dict[int, str]]]] = None, raw: bool = False):
        self.out, self.prefix, self.workers, self.several, self.lookup = out, prefix, workers, several, lookup
        self.raw = raw
        self.attempt: Optional[int] = None
        self.partial = ""  # with a prefix: the unfinished last line, as the job wrote it
        self.at_line_start = True

    async def chunk(self, chunk: JobLogChunk) -> None:
        if chunk.attempt is not None and chunk.attempt != self.attempt:
            if self.attempt is not None or self.several:
                await self._header(chunk.attempt)
            self.attempt = chunk.attempt
        data = chunk.data
        if chunk.stream == "event":  # an entry the job logged through the SDK
            data = f"[{chunk.level or 'info'}] {data}" + ("" if data.endswith("\n") else "\n")
        self._write(data)

    def close(self) -> None:
        if self.prefix and self.partial:
            print(f"{self.prefix}{self._shown(self.partial)}", file=self.out, flush=True)
            self.partial = ""

    async def _header(self, attempt: int) -> None:
        if attempt not in self.workers and self.lookup is not None:
            self.workers = {**self.workers, **await self.lookup()}
        if self.prefix:
            self.close()
        elif not self.at_line_start:
            self.out.write("\n")
        # rota's own line; the worker id is what a worker token sent
        worker = safe(self.workers.get(attempt, "an unknown worker"))
        self._write(f"--- attempt {attempt} on {worker} ---\n", ours=True)

    def _shown(self, text: str) -> str:
        return text if self.raw else safe_coloured(text)

    def _write(self, data: str, ours: bool = False) -> None:
        if not data:
            return
        if self.prefix:
            *lines, self.partial = (self.partial + data).split("\n")
            for line in lines:
                # a CRLF line end, split from its LF, is still a line end
                shown = line if ours else self._shown(line[:-1] if line.endswith("\r") and not self.raw else line)
                print(f"{self.prefix}{shown}", file=self.out)
        else:
            self.out.write(data if ours else self._shown(data))
            self.at_line_start = data.endswith("\n")
        self.out.flush()


def _workers_of(job: JobOut) -> dict[int, str]:
    return {a.number: a.worker_id for a in job.attempts}


def printer_for(client: Client, run_id: str, job: JobOut, out: TextIO, prefix: str,
                attempt: Optional[int] = None, raw: bool = False) -> LogPrinter:
    async def lookup() -> dict[int, str]:
        try:
            return _workers_of(await client.get_run_job(run_id, job.id))
        except RotaError:  # (the server is out a moment): the header says "an unknown worker"
            return {}

    several = attempt is None and len(job.attempts) > 1
    return LogPrinter(out, prefix, _workers_of(job), several, lookup if attempt is None else None, raw)


async def follow_job(client: Client, run_id: str, job: JobOut, out: TextIO, prefix: str,
                     attempt: Optional[int] = None, level: Optional[str] = None,
                     outages: Optional[Outages] = None, raw: bool = False) -> Optional[JobOut]:
    """Print a job's log until its `end` event; its final state. With
    `outages`, a server that is out is waited for (see Client._follow)."""
    printer = printer_for(client, run_id, job, out, prefix, attempt, raw)
    final = None
    try:
        async for item in client.follow_run_logs(run_id, job.id, attempt, level, outages):
            if isinstance(item, JobOut):
                final = item
            else:
                await printer.chunk(item)
    finally:
        printer.close()
    return final


async def logs(client: Client, args: argparse.Namespace) -> int:
    target = await resolve(client, args.target)
    run = target.need_run()
    jobs = run.jobs or []
    if args.job_id is not None:
        picked = [j for j in jobs if j.id == args.job_id]
        if not picked:
            raise ApiError(404, "job_not_found", f"no job {args.job_id!r} in {target.label()}")
        jobs = picked
    prefix = (lambda job: "") if args.job_id is not None else (lambda job: f"{job.id} | ")
    if args.follow:
        # A server restart or a Redis outage is waited out, said on stderr (stdout is the log).
        net = Reconnect(lambda text: print(f"rota: {text}", file=sys.stderr, flush=True))
        finals = await asyncio.gather(*(follow_job(client, run.run_id, job, sys.stdout, prefix(job), args.attempt,
                                                   args.level, outages=net, raw=args.raw) for job in jobs))
        if args.job_id is not None and finals[0] is not None:
            print(state_line(finals[0]), file=sys.stderr)
        return 0
    for job in jobs:
        printer = printer_for(client, run.run_id, job, sys.stdout, prefix(job), args.attempt, args.raw)
        async for page in client.run_log_pages(run.run_id, job.id, args.attempt, args.level):
            for chunk in page:
                await printer.chunk(chunk)
        printer.close()
    return 0
