"""`rota submit | run | status | logs | cancel | workers`: workflows and their runs."""

from __future__ import annotations

import argparse
import os
import sys
import time

from server.models import JobOut
from worker.cli_common import client_command, one_line, table
from worker.cli_watch import state_line, watch
from worker.client import Client, RotaError

CONTENT_TYPES = {".yml": "application/yaml", ".yaml": "application/yaml", ".json": "application/json"}


async def _submit(client: Client, args: argparse.Namespace) -> int:
    path: str = args.file
    content_type = CONTENT_TYPES.get(os.path.splitext(path)[1].lower(), "application/yaml")
    try:
        with open(path, "rb") as f:
            document = f.read()
    except OSError as exc:
        raise RotaError(f"cannot read {path}: {exc.strerror}") from exc
    workflow = await client.submit(document, content_type, run=args.run)
    print(workflow.id, flush=True)
    if not (args.wait or args.follow):
        return 0
    return await watch(client, workflow.id, follow=args.follow, out=sys.stdout)


async def _status(client: Client, args: argparse.Namespace) -> int:
    workflow = await client.status(args.workflow_id)
    print(f"{workflow.id} ({workflow.name}): {workflow.status}")
    rows = [
        [job.id, job.status, str(job.attempt), _duration(job), one_line(job.error or "")]
        for job in workflow.jobs
    ]
    print(table(["JOB", "STATUS", "ATTEMPT", "DURATION", "ERROR"], rows))
    return 0


def _duration(job: JobOut) -> str:
    # started_at / finished_at are epoch milliseconds (the server's Redis TIME).
    if job.started_at is None:
        return "-"
    if job.finished_at is not None:
        end = job.finished_at
    elif job.status == "running":
        end = time.time() * 1000
    else:  # waiting for a retry: the last attempt's start says nothing now
        return "-"
    return f"{max(end - job.started_at, 0) / 1000:.1f}s"


async def _logs(client: Client, args: argparse.Namespace) -> int:
    if not args.follow:
        for chunk in await client.logs(args.workflow_id, args.job_id):
            sys.stdout.write(chunk.data)
        sys.stdout.flush()
        return 0
    async for item in client.follow_logs(args.workflow_id, args.job_id):
        if isinstance(item, JobOut):
            print(state_line(item), file=sys.stderr)
        else:
            sys.stdout.write(item.data)
            sys.stdout.flush()
    return 0


async def _workers(client: Client, args: argparse.Namespace) -> int:
    now_ms = time.time() * 1000
    rows = [
        [
            w.worker_id,
            w.status,
            ",".join(w.labels) or "-",
            ",".join(w.current_jobs) or "-",
            f"{max(now_ms - w.last_seen_ms, 0) / 1000:.0f}s ago",
        ]
        for w in await client.workers()
    ]
    print(table(["WORKER", "STATUS", "LABELS", "JOBS", "LAST SEEN"], rows))
    return 0


async def _cancel(client: Client, args: argparse.Namespace) -> int:
    await client.cancel(args.workflow_id)
    print(f"cancel requested for {args.workflow_id}")
    return 0


async def _run(client: Client, args: argparse.Namespace) -> int:
    await client.run(args.workflow_id)
    print(f"started {args.workflow_id}")
    if not args.wait:
        return 0
    return await watch(client, args.workflow_id, follow=False, out=sys.stdout)


def add_commands(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Adds the workflow and run commands; `parents` carry --server and --token."""

    def command(name: str, run, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=parents, help=help, description=help)
        sub.set_defaults(handler=client_command(run))
        return sub

    submit = command("submit", _submit, "submit a YAML or JSON workflow file; prints its id")
    submit.add_argument("file")
    submit.add_argument(
        "--run", action=argparse.BooleanOptionalAction, default=True, help="start it at once (default: yes)"
    )
    submit.add_argument("--wait", action="store_true", help="show job states until it ends; exit 0 only on success")
    submit.add_argument("--follow", action="store_true", help="like --wait, also streaming every job's logs")
    submit.set_defaults(usage_error=submit.error)

    status = command("status", _status, "show a workflow's jobs")
    status.add_argument("workflow_id")

    logs = command("logs", _logs, "print a job's logs")
    logs.add_argument("-f", "--follow", action="store_true", help="stream live until the job ends")
    logs.add_argument("workflow_id")
    logs.add_argument("job_id")

    command("workers", _workers, "list registered workers")

    cancel = command("cancel", _cancel, "cancel a workflow's queued and running jobs")
    cancel.add_argument("workflow_id")

    run = command("run", _run, "start (or re-run) a workflow")
    run.add_argument("workflow_id")
    run.add_argument("--wait", action="store_true", help="show job states until it ends; exit 0 only on success")
