"""When runs start, as commands: `rota restart`, `rota reschedule` and
`rota schedules` (list, pause, resume)."""

from __future__ import annotations

import argparse
from typing import Awaitable, Callable

from server.models import RunOut, ScheduleOut
from worker.cli import show
from worker.cli.flags import add_json_flag
from worker.cli.output import print_json, table
from worker.cli.timing import clock, override_flags, overrides, started_line, when_body, when_flags
from worker.client.api import Client

# How runs.py waits for a run (--wait, --follow): handed in, so this module
# need not import the one that wires it.
WaitFor = Callable[[Client, RunOut, argparse.Namespace], Awaitable[tuple[int, RunOut]]]


async def _restart(client: Client, args: argparse.Namespace, wait_for: WaitFor) -> int:
    target = await show.resolve(client, args.target)
    run = await client.restart_run(target.need_run().run_id, overrides=overrides(args), **when_body(args))
    if not args.json:
        print(started_line(run, "restarted as"), flush=True)
    code = 0
    if args.wait or args.follow:
        code, run = await wait_for(client, run, args)
    if args.json:
        print_json(run)
    return code


async def reschedule(client: Client, args: argparse.Namespace) -> int:
    target = await show.resolve(client, args.target)
    run = await client.reschedule_run(target.need_run().run_id, **when_body(args))
    if args.json:
        print_json(run)
    elif run.status == "delayed":
        print(f"{run.workflow_id} run #{run.number} ({run.run_id}) now starts at {clock(run.scheduled_at)}")
    else:
        print(f"{run.workflow_id} run #{run.number} ({run.run_id}) starts now")
    return 0


def _schedule_row(s: ScheduleOut) -> list[str]:
    state = "paused" if s.paused else "active"
    return [s.id, s.cron, s.timezone, s.catch_up, state, clock(s.next_fire_at), clock(s.last_fired_at),
            s.last_run_id or "-", str(s.runs_started)]


async def schedules(client: Client, args: argparse.Namespace) -> int:
    if args.action == "list":
        found = await client.list_schedules(args.workflow)
        if args.json:
            print_json(found)
            return 0
        print(table(["SCHEDULE", "CRON", "TIMEZONE", "CATCH-UP", "STATE", "NEXT", "LAST TICK", "LAST RUN", "RUNS"],
                    [_schedule_row(s) for s in found]))
        return 0
    changed = await client.pause_schedule(args.schedule_id, pause=args.action == "pause")
    if args.json:
        print_json(changed)
    elif changed.paused:
        print(f"schedule {changed.id} paused: its ticks start nothing until `rota schedules resume {changed.id}`")
    else:
        print(f"schedule {changed.id} resumed: next run at {clock(changed.next_fire_at)}")
    return 0


def add_commands(command, waiting, wait_for: WaitFor) -> None:
    """`command(name, run, help, target)`, `waiting(sub)` and `wait_for` as runs.py has them."""

    async def restart(client: Client, args: argparse.Namespace) -> int:
        return await _restart(client, args, wait_for)

    sub = command("restart", restart, "start a new run of a run's definition version with its inputs and tags,"
                  " optionally on other labels or with other limits", "RUN|WORKFLOW")
    override_flags(sub)
    when_flags(sub)
    waiting(sub)
    add_json_flag(sub)

    sub = command("reschedule", reschedule, "move a delayed run's start (--at or --in; now starts it at once)",
                  "RUN|WORKFLOW")
    when_flags(sub, expires=False)
    add_json_flag(sub)
    sub.set_defaults(check=_needs_a_time, usage_error=sub.error)

    sub = command("schedules", schedules, "list the schedules (on: schedule:) with their next fire time;"
                  " pause or resume one")
    sub.add_argument("action", nargs="?", choices=("list", "pause", "resume"), default="list",
                     help="list (default), pause ID or resume ID")
    sub.add_argument("schedule_id", nargs="?", metavar="ID", help="a schedule: <workflow>:<index>, e.g. nightly:0")
    sub.add_argument("--workflow", metavar="WORKFLOW", help="only this workflow's")
    add_json_flag(sub)
    sub.set_defaults(check=_schedule_args, usage_error=sub.error)


def _needs_a_time(args: argparse.Namespace) -> None:
    if args.at is None and args.delay is None:
        args.usage_error("give the new start: --at TIME or --in DURATION (--in 0 starts it now)")


def _schedule_args(args: argparse.Namespace) -> None:
    if args.action in ("pause", "resume") and not args.schedule_id:
        args.usage_error(f"{args.action} needs the schedule's id (rota schedules lists them)")
    if args.action == "list" and args.schedule_id:
        args.usage_error("give pause or resume before the schedule's id")
