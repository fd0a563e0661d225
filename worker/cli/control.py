"""`rota pause | resume RUN | --workflow W | --label L`, `rota paused` and
`rota groups`: holding runs, workflows and label queues back, and letting
them go; what is held; the concurrency groups runs and jobs wait in."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import Optional, Sequence

from server.models import RunOut
from worker.cli import show
from worker.cli.command import add_client_command
from worker.cli.flags import add_json_flag
from worker.cli.output import print_json, table
from worker.client.api import Client
from worker.client.errors import RotaError


def run_note(run: RunOut) -> str:
    """Why a run is held, for listings: `paused`, `group G`, `workflow paused`."""
    held = []
    if run.paused:
        held.append("paused")
    if run.waiting_for_workflow:
        held.append("workflow paused")
    if run.waiting_for_group:
        held.append(f"group {run.waiting_for_group}")
    return f" ({', '.join(held)})" if held else ""


async def _control(client: Client, args: argparse.Namespace) -> int:
    resume = args.command == "resume"
    if args.workflow:
        workflow_id = await show.workflow_id(client, args.workflow)
        answer = await client.pause_workflow(workflow_id, args.new_runs or "queue", resume=resume)
        subject = f"workflow {workflow_id}"
    elif args.label:
        answer = await client.pause_label(args.label, resume=resume)
        subject = f"label {args.label}"
    else:
        target = await show.resolve(client, args.target)
        # a one-off's id names its one run too (`rota submit` prints it as such)
        if target.workflow is not None and not (target.workflow.kind == "oneoff" and target.run is not None):
            # a workflow named bare: pausing its latest run is seldom what was meant
            verb = args.command
            raise RotaError(f"{args.target} is a workflow: `rota {verb} --workflow {args.target}` {verb}s it"
                            f" (its new runs); to {verb} one run, name the run by its id")
        answer = await client.pause_run(target.need_run().run_id, resume=resume)
        run = answer.run
        subject = f"{run.workflow_id} run #{run.number} ({run.run_id})"
    if args.json:
        print_json(answer)
    else:
        print(f"{subject}: {answer.detail}")
    return 0


def _time(ms: Optional[int]) -> str:
    return "-" if not ms else datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%MZ")


async def _paused(client: Client, args: argparse.Namespace) -> int:
    paused = await client.paused()
    if args.json:
        print_json(paused)
        return 0
    if not paused.workflows and not paused.labels:
        print("nothing is paused")
        return 0
    rows = [["workflow", w.workflow_id, f"new runs: {w.new_runs}", f"{w.waiting_runs} run(s) waiting",
             _time(w.paused_at_ms)] for w in paused.workflows]
    rows += [["label", p.label, "-", f"{p.queued} job(s) queued", _time(p.paused_at_ms)] for p in paused.labels]
    print(table(["KIND", "NAME", "NEW RUNS", "HELD", "SINCE"], rows))
    return 0


async def _groups(client: Client, args: argparse.Namespace) -> int:
    page = await client.concurrency_groups(args.group, args.limit)
    if args.json:
        print_json(page.groups)
        return 0

    def member(m) -> str:
        return m.run_id + (f"/{m.job_id}" if m.job_id else "")

    # a rate (limit: N per D) as N/Ds, so it is not read as N at once
    rows = [[g.group, f"{g.limit}/{g.per_secs}s" if g.per_secs else str(g.limit), str(len(g.running)), str(len(g.waiting)),
             ", ".join(member(m) for m in g.running) or "-",
             ", ".join(member(m) for m in g.waiting[:3]) + (" ..." if len(g.waiting) > 3 else "") or "-"]
            for g in page.groups]
    if not rows:
        print("no concurrency group is in use" if not args.group else f"group {args.group} is not in use")
        return 0
    print(table(["GROUP", "LIMIT", "RUNNING", "WAITING", "RUNNING NOW", "NEXT"], rows))
    if page.next_cursor:
        print(f"(the {len(rows)} most recently entered shown; more with --limit)", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> None:
    given = [x for x in (args.target, args.workflow, args.label) if x]
    if len(given) != 1:
        args.usage_error("give one of RUN, --workflow WORKFLOW or --label LABEL")
    if args.new_runs and not args.workflow:
        args.usage_error("--new-runs is for --workflow")


def add_commands(commands: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Adds `rota pause`, `resume`, `paused` and `groups`; `parents` carry --server and --token."""

    def command(name: str, run, help: str) -> argparse.ArgumentParser:
        return add_client_command(commands, parents, name, run, help)
    for verb, text in (("pause", "pause a run (its queued jobs go to no worker; running ones finish), a workflow"
                                 " (its new runs wait, or are refused) or a label (no worker takes its jobs)"),
                       ("resume", "resume a paused run, workflow or label")):
        sub = command(verb, _control, text)
        sub.add_argument("target", metavar="RUN", nargs="?", help="the run, by its id")
        sub.add_argument("--workflow", metavar="WORKFLOW", help=f"{verb} the workflow instead")
        sub.add_argument("--label", metavar="LABEL", help=f"{verb} the label's queues instead (admin scope)")
        if verb == "pause":
            sub.add_argument("--new-runs", choices=("queue", "skip"),
                             help="with --workflow: new runs wait for it to resume (queue, the default) or are"
                                  " refused (skip)")
        else:
            sub.set_defaults(new_runs=None)
        sub.set_defaults(check=_check, usage_error=sub.error)
        add_json_flag(sub)

    paused = command("paused", _paused, "list the paused workflows and labels")
    add_json_flag(paused)

    groups = command("groups", _groups, "list the concurrency groups in use: who runs, who waits")
    groups.add_argument("group", metavar="GROUP", nargs="?", help="only this group")
    groups.add_argument("--limit", type=int, default=100, metavar="N", help="at most N groups (default %(default)s)")
    add_json_flag(groups)
