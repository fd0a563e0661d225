"""`rota`: the command line for operators, CI pipelines and build machines.

Every command talks to the server through worker/client.py. Exit codes: 0
on success, 1 when a waited-for workflow fails or is cancelled, 2 when the
command itself fails (bad usage, server unreachable, an error answer, a
refused token).

The API token comes from --token, else ROTA_TOKEN, else the file named by
ROTA_TOKEN_FILE (how systemd credentials and Kubernetes secrets arrive).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
import time
from typing import Awaitable, Callable, Mapping, Optional, TextIO

from server.models import JobOut, LogChunk
from worker.client import DEFAULT_SERVER, ApiError, Client, RotaError

EXIT_FAILED = 1
EXIT_ERROR = 2
FINISHED = {"success", "failure", "cancelled"}
# How often `submit --wait` reads the workflow's status.
WATCH_INTERVAL = 0.25
# After the workflow ends, how long `--follow` waits for the last log events.
FOLLOW_SETTLE_SECS = 5.0
CONTENT_TYPES = {".yml": "application/yaml", ".yaml": "application/yaml", ".json": "application/json"}

log = logging.getLogger("rota.worker")


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


# ---- the API token ------------------------------------------------------------------

_TOKEN_CHARS = re.compile(r"[!-~]+")  # printable ASCII, no spaces: what fits a header


class TokenSourceError(RotaError):
    """The token named by the flags or environment cannot be used."""


def resolve_token(flag: Optional[str], environ: Mapping[str, str]) -> tuple[Optional[str], Optional[str]]:
    """The API token and where it came from (for messages), or (None, None).

    --token wins over ROTA_TOKEN, which wins over ROTA_TOKEN_FILE; an empty
    value counts as unset. The file is read only when it is the one used.
    """
    if flag:
        token, source = flag.strip(), "--token"
    elif environ.get("ROTA_TOKEN"):
        token, source = environ["ROTA_TOKEN"].strip(), "ROTA_TOKEN"
    elif environ.get("ROTA_TOKEN_FILE"):
        path = environ["ROTA_TOKEN_FILE"]
        source = f"ROTA_TOKEN_FILE {path}"
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise TokenSourceError(f"{source}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise TokenSourceError(f"{source}: not UTF-8 text") from None
        if not token:
            raise TokenSourceError(f"{source} is empty")
    else:
        return None, None
    if not _TOKEN_CHARS.fullmatch(token):
        # Never echo the value: it is a secret, however malformed.
        raise TokenSourceError(f"the token from {source} has spaces or characters a token cannot have")
    return token, source


def describe_error(exc: RotaError, token_source: Optional[str]) -> str:
    """One line for a failed command; a refused token also says what to check."""
    if isinstance(exc, ApiError) and exc.status == 401:
        hint = f"the token from {token_source}" if token_source else "set ROTA_TOKEN, ROTA_TOKEN_FILE or --token"
        return f"{exc} ({hint})"
    if isinstance(exc, ApiError) and exc.status == 403:
        scope = exc.details.get("required_scope") if isinstance(exc.details, dict) else None
        if scope:
            return f"{exc} (use a token with the {scope} scope)"
    return str(exc)


# ---- client commands ----------------------------------------------------------


def client_command(run: Callable[[Client, argparse.Namespace], Awaitable[int]]) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        async def main() -> int:
            async with Client(args.server, token=args.token) as client:
                return await run(client, args)

        try:
            return asyncio.run(main())
        except RotaError as exc:
            print(f"rota: {describe_error(exc, args.token_source)}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:  # Ctrl-C out of --wait or logs -f: no traceback
            return 130

    return command


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
                    print(_state_line(job), file=out, flush=True)
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
    return 0 if workflow.status == "success" else EXIT_FAILED


def _state_line(job: JobOut) -> str:
    line = f"{job.id}: {job.status}"
    if job.attempt:
        line += f" (attempt {job.attempt})"
    if job.status in ("failure", "skipped") and job.error:
        line += f": {job.error}"
    return line


async def _follow_job(client: Client, workflow_id: str, job_id: str, out: TextIO) -> None:
    partial = ""
    async for item in client.follow_logs(workflow_id, job_id):
        if isinstance(item, LogChunk):
            *lines, partial = (partial + item.data).split("\n")
            for line in lines:
                print(f"{job_id} | {line}", file=out, flush=True)
    if partial:
        print(f"{job_id} | {partial}", file=out, flush=True)


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


def one_line(text: str, width: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [headers, *rows]
    )


async def _logs(client: Client, args: argparse.Namespace) -> int:
    if not args.follow:
        for chunk in await client.logs(args.workflow_id, args.job_id):
            sys.stdout.write(chunk.data)
        sys.stdout.flush()
        return 0
    async for item in client.follow_logs(args.workflow_id, args.job_id):
        if isinstance(item, LogChunk):
            sys.stdout.write(item.data)
            sys.stdout.flush()
        else:
            print(_state_line(item), file=sys.stderr)
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


def _cmd_server(args: argparse.Namespace) -> int:
    from server.__main__ import main as server_main  # the server's dependencies load only here

    server_main()
    return 0


# ---- parser -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rota",
        description="rota: pull-based worker-lease job queue.",
        epilog="exit codes: 0 ok; 1 a waited-for workflow failed or was cancelled; 2 error",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--server",
        default=_env("ROTA_SERVER", DEFAULT_SERVER),
        help="server URL (env ROTA_SERVER; default %(default)s)",
    )
    connection.add_argument(
        # No default here: it would be printed by --help. main() resolves it.
        "--token",
        help="API token (default: env ROTA_TOKEN, else the contents of the file named by ROTA_TOKEN_FILE);"
        " prefer the environment, since other users can see flags in `ps`",
    )

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help: str, talks_to_server: bool = True
    ) -> argparse.ArgumentParser:
        parents = [connection] if talks_to_server else []
        sub = commands.add_parser(name, parents=parents, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    from worker import cli_worker, cli_tokens  # they build on this module

    cli_worker.add_worker_command(commands, parents=[connection])

    submit = command("submit", client_command(_submit), "submit a YAML or JSON workflow file; prints its id")
    submit.add_argument("file")
    submit.add_argument(
        "--run", action=argparse.BooleanOptionalAction, default=True, help="start it at once (default: yes)"
    )
    submit.add_argument("--wait", action="store_true", help="show job states until it ends; exit 0 only on success")
    submit.add_argument("--follow", action="store_true", help="like --wait, also streaming every job's logs")
    submit.set_defaults(usage_error=submit.error)

    status = command("status", client_command(_status), "show a workflow's jobs")
    status.add_argument("workflow_id")

    logs = command("logs", client_command(_logs), "print a job's logs")
    logs.add_argument("-f", "--follow", action="store_true", help="stream live until the job ends")
    logs.add_argument("workflow_id")
    logs.add_argument("job_id")

    command("workers", client_command(_workers), "list registered workers")

    cancel = command("cancel", client_command(_cancel), "cancel a workflow's queued and running jobs")
    cancel.add_argument("workflow_id")

    run = command("run", client_command(_run), "start (or re-run) a workflow")
    run.add_argument("workflow_id")
    run.add_argument("--wait", action="store_true", help="show job states until it ends; exit 0 only on success")

    cli_tokens.add_commands(commands, parents=[connection])

    command(
        "server", _cmd_server, "start the rota server (configured by env: PORT, HOST, REDIS_URL, ...)",
        talks_to_server=False,
    )
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "submit" and not args.run and (args.wait or args.follow):
        # Nothing would start the workflow, so the wait would never end.
        args.usage_error(
            "--wait and --follow need the workflow to run: drop --no-run, or start it later with `rota run ID --wait`"
        )
    if hasattr(args, "token"):  # the commands that talk to the server
        try:
            args.token, args.token_source = resolve_token(args.token, os.environ)
        except TokenSourceError as exc:
            print(f"rota: {exc}", file=sys.stderr)
            return EXIT_ERROR
    return args.handler(args)
