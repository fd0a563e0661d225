"""`rota submit | run | status | logs | retry | cancel | runs | delete |
dead-letters | workflows`: starting and managing runs (status and logs are
show.py's, --wait and --follow watch.py's)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from typing import Optional

from server.models import RunOut, WorkflowOut
from worker.cli import control, schedule, show, timing
from worker.cli.command import Reported, add_client_command
from worker.cli.flags import add_json_flag, key_values, parse_duration
from worker.cli.output import elapsed, one_line, print_json, table
from worker.cli.watch import FINISHED, Watch, until_interrupted
from worker.client.api import Client
from worker.client.errors import ApiError, RotaError

CONTENT_TYPES = {".yml": "application/yaml", ".yaml": "application/yaml", ".json": "application/json"}


# ---- submit ---------------------------------------------------------------------------


def read_document(path: str) -> tuple[bytes, str, str]:
    """(the document, its Content-Type, its name for messages); `-` is stdin."""
    if path == "-":
        document = sys.stdin.buffer.read()
        # No file name to go by: JSON starts with `{`, anything else is YAML.
        json_like = document.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
        return document, "application/json" if json_like else "application/yaml", "<stdin>"
    content_type = CONTENT_TYPES.get(os.path.splitext(path)[1].lower(), "application/yaml")
    try:
        with open(path, "rb") as f:
            return f.read(), content_type, path
    except OSError as exc:
        raise RotaError(f"cannot read {path}: {exc.strerror}") from exc


def problem_lines(name: str, exc: ApiError) -> Optional[str]:
    """A refused document's problems as `FILE:LINE:COL: field: message`, one a
    line (what editors and CI annotations read), or None if it has none."""
    problems = exc.details.get("problems") if isinstance(exc.details, dict) else None
    if exc.code != "invalid_workflow" or not problems:
        return None
    lines = []
    for p in problems:
        where = f"{name}:{p['line']}:{p['column']}" if "line" in p else name
        lines.append(f"{where}: {p.get('field', 'document')}: {p.get('message', '')}")
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return "\n".join(lines) + f"\nrota: {name}: {count}; nothing was submitted"


def _idempotency_key(args: argparse.Namespace) -> Optional[str]:
    return args.idempotency_key or os.environ.get("ROTA_IDEMPOTENCY_KEY") or None


async def _submit(client: Client, args: argparse.Namespace) -> int:
    document, content_type, name = read_document(args.file)
    key = _idempotency_key(args)
    run: Optional[RunOut] = None
    try:
        if args.id:
            workflow = await client.put_workflow(args.id, document, content_type, idempotency_key=key)
        else:
            workflow = await client.submit(document, content_type, run=args.run, idempotency_key=key)
    except ApiError as exc:
        lines = problem_lines(name, exc)
        if lines is None:
            raise
        raise Reported(lines) from None
    if args.id and args.run:
        run = await client.start_run(args.id, idempotency_key=key)
    if not args.json:
        # A one-off workflow has one run: its id names both. Under --id, the run is what is new.
        print(run.run_id if run else workflow.id, flush=True)
    if run is None and workflow.latest_run_id and (args.json or args.wait or args.follow):
        run = await client.get_run(workflow.latest_run_id)
    code = 0
    if run is not None and (args.wait or args.follow):
        code, run = await _wait(client, run, args)
    if args.json:
        print_json({"workflow": workflow, "run": run})
    return code


async def _wait(client: Client, run: RunOut, args: argparse.Namespace) -> tuple[int, RunOut]:
    """--wait/--follow: the exit code, and the run as it ended (else as it was)."""
    # With --json, stdout is for the JSON alone.
    out = sys.stderr if getattr(args, "json", False) else sys.stdout
    watching = Watch(client, run.run_id, out, getattr(args, "follow", False), getattr(args, "timeout", None),
                     time.monotonic)
    code = await until_interrupted(watching.run(), client, run.run_id, cancel=args.cancel_on_interrupt)
    return code, watching.final or run


wait_for = _wait


# ---- run, retry, cancel, delete ---------------------------------------------------------


async def _run(client: Client, args: argparse.Namespace) -> int:
    workflow_id = await show.workflow_id(client, args.workflow_id)
    run = await client.start_run(workflow_id, inputs=dict(args.inputs), tags=dict(args.tags),
                                 idempotency_key=_idempotency_key(args), overrides=timing.overrides(args),
                                 **timing.when_body(args))
    if not args.json:
        print(timing.started_line(run), flush=True)
    code = 0
    if args.wait or args.follow:
        code, run = await _wait(client, run, args)
    if args.json:
        print_json(run)
    return code


async def _retry(client: Client, args: argparse.Namespace) -> int:
    target = await show.resolve(client, args.target)
    before = target.need_run()
    if not args.job and before.status == "success":
        # the server would answer as for a retry, with nothing put back
        print(f"every job of {target.label()} succeeded: nothing to retry (no-op)")
        return 0
    run = await client.retry_run(before.run_id, args.job)
    what = f"job {args.job} of " if args.job else ""
    print(f"retrying {what}{run.workflow_id} run #{run.number} ({run.run_id})", flush=True)
    return (await _wait(client, run, args))[0] if args.wait else 0


async def _cancel(client: Client, args: argparse.Namespace) -> int:
    target = await show.resolve(client, args.target)
    if target.run is None:
        print(f"workflow {args.target} has not run: nothing to cancel (no-op)")
        return 0
    run = target.run
    if args.job:
        job = next((j for j in run.jobs or [] if j.id == args.job), None)
        if job is None:
            raise ApiError(404, "job_not_found", f"no job {args.job!r} in {target.label()}")
        if job.status in show.TERMINAL:
            print(f"job {args.job} of {target.label()} already finished ({job.status}): nothing to cancel (no-op)")
            return 0
    elif run.status in FINISHED:
        print(f"{target.label()} already finished ({run.status}): nothing to cancel (no-op)")
        return 0
    await client.cancel_run(run.run_id, args.job)
    print(f"cancel requested for {'job ' + args.job + ' of ' if args.job else ''}{target.label()}")
    return 0


async def _delete(client: Client, args: argparse.Namespace) -> int:
    await client.delete_workflow(args.workflow_id)
    print(f"deleted workflow {args.workflow_id} and its finished runs")
    return 0


# ---- listings ---------------------------------------------------------------------------


def _time(ms: Optional[float]) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%MZ")


def _took(run: RunOut) -> str:
    if run.started_at is None:
        return "-"
    return elapsed(((run.finished_at or time.time() * 1000) - run.started_at) / 1000)


async def _runs(client: Client, args: argparse.Namespace) -> int:
    workflow = await show.workflow_id(client, args.workflow) if args.workflow else None
    page = await client.list_runs(workflow, args.status, dict(args.tags), limit=args.limit)
    if args.json:
        print_json(page.runs)
        return 0
    rows = [[r.run_id, r.workflow_id, str(r.number), r.status + control.run_note(r), r.triggered_by,
             _time(r.created_at), _took(r),
             ", ".join(f"{n} {s}" for s, n in sorted(r.job_counts.items()) if n) or "-",
             ",".join(f"{k}={v}" for k, v in r.tags.items()) or "-", one_line(r.name) or "-"] for r in page.runs]
    print(table(["RUN", "WORKFLOW", "#", "STATUS", "TRIGGER", "CREATED", "TOOK", "JOBS", "TAGS", "NAME"], rows))
    if page.next_cursor:
        print(f"(the newest {len(page.runs)} shown; more with --limit)", file=sys.stderr)
    return 0


async def _dead_letters(client: Client, args: argparse.Namespace) -> int:
    if args.replay:
        answer = await client.replay_dead_letters(args.workflow)
        if args.json:
            print_json(answer)
            return 0
        rows = [[o.run_id, o.job_id, o.outcome, one_line(o.detail)] for o in answer.outcomes]
        print(table(["RUN", "JOB", "OUTCOME", "DETAIL"], rows))
        if answer.more:
            print("more dead letters match: run it again for the rest", file=sys.stderr)
        return 0
    page = await client.dead_letters(args.workflow, limit=args.limit)
    if args.json:
        print_json(page.items)
        return 0
    rows = [[d.run_id, d.job_id, d.workflow_id, _time(d.failed_at_ms), str(d.attempt),
             ",".join(d.required_labels) or "-", one_line(d.error)] for d in page.items]
    print(table(["RUN", "JOB", "WORKFLOW", "FAILED", "ATTEMPT", "LABELS", "ERROR"], rows))
    return 0


async def _workflows(client: Client, args: argparse.Namespace) -> int:
    workflows: list[WorkflowOut] = []
    offset = 0
    while len(workflows) < args.limit:  # pages (a page may stop short: X-Next-Offset says where it ended)
        page, offset = await client.list_workflows(min(args.limit - len(workflows), 1000), offset)
        if not page:
            break
        workflows += page
    if args.json:
        print_json(workflows)
        return 0
    rows = [[w.id + (f" (paused: new runs {'wait' if w.paused == 'queue' else 'refused'})" if w.paused else ""),
             one_line(w.name, 40), w.kind or "-", str(w.runs),
             f"#{w.latest_run_number} {w.status}" if w.latest_run_number else "-",
             _time(w.updated_at_ms or w.created_at_ms)] for w in workflows]
    print(table(["WORKFLOW", "NAME", "KIND", "RUNS", "LATEST", "UPDATED"], rows))
    if len(workflows) == args.limit:
        print(f"(the newest {len(workflows)} shown; more with --limit)", file=sys.stderr)
    return 0


# ---- the parser ---------------------------------------------------------------------------


def add_commands(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Adds the workflow and run commands; `parents` carry --server and --token."""

    def command(name: str, run, help: str, target: Optional[str] = None) -> argparse.ArgumentParser:
        return add_client_command(commands, parents, name, run, help, target)

    def waiting(sub: argparse.ArgumentParser, follow: bool = True) -> None:
        sub.add_argument("--wait", action="store_true", help="show job states until it ends; exit 0 only on success")
        if follow:
            sub.add_argument("--follow", action="store_true", help="like --wait, also streaming every job's logs")
        sub.add_argument("--timeout", type=parse_duration, metavar="DURATION",
                         help="with --wait: cancel the run and exit 1 after this long (30m, 2h, 90s)")
        sub.add_argument("--cancel-on-interrupt", action="store_true",
                         help="with --wait: on SIGINT or SIGTERM cancel the run (default: leave it going and say"
                         " how to cancel it)")
        sub.set_defaults(usage_error=sub.error)

    def idempotency(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--idempotency-key", metavar="KEY",
                         help="a retried command with the same KEY starts nothing new (env ROTA_IDEMPOTENCY_KEY)")

    submit = command("submit", _submit, "submit a YAML or JSON workflow file (- for stdin); prints its id")
    submit.add_argument("file", metavar="FILE")
    submit.add_argument("--id", metavar="ID", help="keep the definition under this id (replacing it) and start"
                        " a new numbered run of it; prints the run id")
    submit.add_argument(
        "--run", action=argparse.BooleanOptionalAction, default=True, help="start it at once (default: yes)"
    )
    waiting(submit)
    idempotency(submit)
    add_json_flag(submit)

    run = command("run", _run, "start a new run of a workflow; prints its number and run id")
    run.add_argument("workflow_id", metavar="WORKFLOW")
    run.add_argument("--input", dest="inputs", action="append", type=key_values("--input"), default=[],
                     metavar="KEY=VALUE", help="an input (the jobs see ROTA_INPUT_KEY; a workflow with typed inputs reads 3 as a number,"
                     " true as a boolean); repeat for several")
    run.add_argument("--tag", dest="tags", action="append", type=key_values("--tag"), default=[],
                     metavar="KEY=VALUE", help="a tag to find the run by (rota runs --tag); repeat for several")
    timing.when_flags(run)
    timing.override_flags(run)
    waiting(run)
    idempotency(run)
    add_json_flag(run)

    status = command("status", show.status, "show a run's jobs (a workflow: its latest run's)", "RUN|WORKFLOW")
    status.add_argument("--full", action="store_true", help="show errors whole, not cut to one line")
    add_json_flag(status)

    logs = command("logs", show.logs, "print a job's log, or every job's (each line behind its job's name)",
                   "RUN|WORKFLOW")
    logs.add_argument("job_id", metavar="JOB", nargs="?", help="the job (default: every job)")
    logs.add_argument("-f", "--follow", action="store_true", help="stream live until the job (every job) ends")
    logs.add_argument("--attempt", type=int, metavar="N", help="only attempt N (from 0)")
    logs.add_argument("--level", choices=("debug", "info", "warn", "error"),
                      help="only the entries the job logged (rota log, the SDK) at this level or above")
    logs.add_argument("--raw", action="store_true",
                      help="the text as the job wrote it, escape sequences and all (default: every control"
                      " character shown as ^[, ^M, <U+202E>..., colours kept)")

    retry = command("retry", _retry, "re-run a finished run's failed, cancelled and skipped jobs", "RUN")
    retry.add_argument("--job", metavar="JOB", help="only this job (and its skipped downstream)")
    waiting(retry, follow=False)

    cancel = command("cancel", _cancel, "cancel a run (a workflow: its latest run)", "RUN|WORKFLOW")
    cancel.add_argument("--job", metavar="JOB", help="only this job; its downstream is skipped, the rest goes on")

    runs = command("runs", _runs, "list runs, newest first")
    runs.add_argument("workflow", metavar="WORKFLOW", nargs="?", help="only this workflow's")
    runs.add_argument("--status", choices=sorted(FINISHED | {"delayed", "queued", "running"}),
                      help="only runs in this status")
    runs.add_argument("--tag", dest="tags", action="append", type=key_values("--tag"), default=[],
                      metavar="KEY=VALUE", help="only runs with this tag; repeat: all must match")
    runs.add_argument("--limit", type=int, default=50, metavar="N", help="at most N runs (default %(default)s)")
    add_json_flag(runs)

    delete = command("delete", _delete, "delete a workflow definition and its finished runs (admin scope)")
    delete.add_argument("workflow_id", metavar="WORKFLOW")

    dead = command("dead-letters", _dead_letters, "list jobs that failed for good; --replay retries them")
    dead.add_argument("--workflow", metavar="WORKFLOW", help="only this workflow's")
    dead.add_argument("--replay", action="store_true", help="retry them (each as `rota retry RUN --job JOB`)")
    dead.add_argument("--limit", type=int, default=100, metavar="N", help="at most N listed (default %(default)s)")
    add_json_flag(dead)

    workflows = command("workflows", _workflows, "list workflow definitions, newest first, with their latest run")
    workflows.add_argument("--limit", type=int, default=100, metavar="N",
                           help="at most N workflows (default %(default)s)")
    add_json_flag(workflows)

    schedule.add_commands(command, waiting, wait_for)
