"""`--wait` and `--follow`: job state changes (and every job's log lines)
printed until a workflow ends."""

from __future__ import annotations

import asyncio
from typing import TextIO

from server.models import JobOut
from worker.client import Client

FINISHED = {"success", "failure", "cancelled"}
# How often `--wait` reads the workflow's status.
WATCH_INTERVAL = 0.25
# After the workflow ends, how long `--follow` waits for the last log events.
FOLLOW_SETTLE_SECS = 5.0


async def watch(client: Client, workflow_id: str, *, follow: bool, out: TextIO) -> int:
    """Print each job state change (and with `follow` every job's log lines)
    until the workflow ends; 0 if it succeeded, else EXIT_FAILED."""
    seen: dict[str, tuple[str, int]] = {}
    followers: list[asyncio.Task[None]] = []
    followed: set[str] = set()
    try:
        while True:
            workflow = await client.status(workflow_id)
            for job in workflow.jobs:
                if seen.get(job.id) != (job.status, job.attempt):
                    seen[job.id] = (job.status, job.attempt)
                    print(state_line(job), file=out, flush=True)
                if follow and job.id not in followed and job.status not in ("queued", "skipped"):
                    followed.add(job.id)
                    followers.append(asyncio.create_task(_follow_job(client, workflow_id, job.id, out)))
            if workflow.status in FINISHED:
                break
            await asyncio.sleep(WATCH_INTERVAL)
        if followers:
            await asyncio.wait(followers, timeout=FOLLOW_SETTLE_SECS)
    finally:
        for task in followers:
            task.cancel()
    print(f"workflow {workflow.id}: {workflow.status}", file=out, flush=True)
    return 0 if workflow.status == "success" else 1


def state_line(job: JobOut) -> str:
    line = f"{job.id}: {job.status}"
    if job.attempt:
        line += f" (attempt {job.attempt})"
    if job.status in ("failure", "skipped") and job.error:
        line += f": {job.error}"
    return line


async def _follow_job(client: Client, workflow_id: str, job_id: str, out: TextIO) -> None:
    partial = ""
    async for item in client.follow_logs(workflow_id, job_id):
        if not isinstance(item, JobOut):
            *lines, partial = (partial + item.data).split("\n")
            for line in lines:
                print(f"{job_id} | {line}", file=out, flush=True)
    if partial:
        print(f"{job_id} | {partial}", file=out, flush=True)
