"""`rota workers`: the fleet as the server sees it; `rota workers rm ID...`
and `rota workers --prune [--older-than D]` remove workers that are gone
(an admin's, or a worker token's own)."""

from __future__ import annotations

import argparse
import time
from typing import Callable, Sequence

from server.models import WorkerOut
from worker.cli.command import add_client_command
from worker.cli.flags import add_json_flag, parse_duration
from worker.cli.output import elapsed, print_json, table
from server.terminal import safe
from worker.client.api import Client


async def _workers(client: Client, args: argparse.Namespace) -> int:
    if args.action:
        return await _remove(client, args)
    if args.prune:
        return await _prune(client, args)
    workers = await client.workers()
    if args.json:
        print_json(workers)
        return 0
    now_ms = time.time() * 1000
    rows = [
        [
            w.worker_id,
            w.status,
            ",".join(f"{x} (paused)" if x in w.paused_labels else x for x in w.labels)
            + (" (exclusive)" if w.exclusive else "") if w.labels else "-",
            # a seed worker says neither: its slots are unknown
            f"{w.free_slots}/{w.concurrency}" if w.concurrency is not None and w.free_slots is not None else "-",
            ",".join(w.current_jobs) or "-",
            w.version or "-",
            w.host or "-",
            f"{max(now_ms - w.last_seen_ms, 0) / 1000:.0f}s ago",
        ]
        for w in workers
    ]
    print(table(["WORKER", "STATUS", "LABELS", "FREE", "JOBS", "VERSION", "HOST", "LAST SEEN"], rows))
    return 0


async def _remove(client: Client, args: argparse.Namespace) -> int:
    for worker_id in args.action[1:]:
        await client.remove_worker(worker_id)
        print(f"removed worker {safe(worker_id)}", flush=True)
    return 0


async def _prune(client: Client, args: argparse.Namespace) -> int:
    # What each was, for the lines below (the server judges again, sparing any seen meanwhile).
    before = {w.worker_id: w for w in await client.workers()}
    removed: list[str] = []
    while True:
        answer = await client.prune_workers(args.older_than)
        removed += answer.removed
        if not answer.more or not answer.removed:
            break
    if args.json:
        print_json(removed)
        return 0
    now_ms = time.time() * 1000
    for worker_id in removed:
        print(safe(f"removed worker {worker_id}{_was(before.get(worker_id), now_ms)}"))
    if not removed:
        print("no worker to remove")
    return 0


def _was(worker: WorkerOut | None, now_ms: float) -> str:
    if worker is None:
        return ""
    return f" ({worker.status}, last seen {elapsed((now_ms - worker.last_seen_ms) / 1000)} ago)"


def _check(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    def check(args: argparse.Namespace) -> None:
        if args.action and (args.action[0] != "rm" or len(args.action) < 2):
            parser.error("the only action is `rota workers rm ID [ID...]`")
        if args.action and args.prune:
            parser.error("rm names the workers to remove, --prune finds them: give one, not both")
        if args.older_than is not None and not args.prune:
            parser.error("--older-than goes with --prune")
    return check


def add_commands(commands: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Adds `rota workers`; `parents` carry --server and --token."""
    workers = add_client_command(commands, parents, "workers", _workers,
                                 "list registered workers; rm or --prune removes them")
    workers.add_argument("action", nargs="*", metavar="rm ID",
                         help="remove these workers: shown `stopped` (last seen kept) until forgotten ten minutes"
                         " on; one still running shows again when next seen (a worker token may remove its"
                         " own, an admin any)")
    workers.add_argument("--prune", action="store_true",
                         help="remove every worker that shows offline or lost (admin)")
    workers.add_argument("--older-than", type=parse_duration, metavar="DURATION",
                         help="with --prune: instead, every worker not seen for this long (10m, 2h, 7d)")
    workers.set_defaults(check=_check(workers))
    add_json_flag(workers)
