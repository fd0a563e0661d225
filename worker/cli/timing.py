"""When runs start, as flags and as text: `--at`, `--in`, `--expires-in`
and the per-run override flags of `rota run` and `rota restart`, and the
lines `rota run` and `rota status` print about a delayed, scheduled or
restarted run."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any, Optional

from server.inputs import text as input_text
from server.limits import MAX_LABELS
from server.models import RunOut, RunOverrides
from worker.cli.flags import duration_of, int_bounds, label, parse_duration, whole_number_of


def parse_time(text: str) -> int:
    """`--at`: RFC 3339 (without an offset: this machine's local time) or
    epoch milliseconds, as epoch milliseconds."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time like 2026-05-01T09:00, 2026-05-01T09:00:00Z"
                                         " or epoch milliseconds") from None
    if at.tzinfo is None:
        at = at.astimezone()  # the local time of this machine
    return round(at.timestamp() * 1000)


def parse_delay(text: str) -> int:
    """`--in`: a duration (90s, 30m, 2h, 1d), or 0 / now."""
    return 0 if text.strip().lower() in ("0", "now") else parse_duration(text)


def when_flags(sub: argparse.ArgumentParser, expires: bool = True) -> None:
    group = sub.add_mutually_exclusive_group()
    group.add_argument("--at", type=parse_time, metavar="TIME",
                       help="start it then, not now (2026-05-01T09:00 local, ...Z, or epoch ms); it waits `delayed`")
    group.add_argument("--in", dest="delay", type=parse_delay, metavar="DURATION",
                       help="start it this long from now (90s, 30m, 2h, 1d; 0 for now)")
    if expires:
        sub.add_argument("--expires-in", type=parse_duration, metavar="DURATION",
                         help="if no job of it has started this long from now, it ends `expired`")


def override_flags(sub: argparse.ArgumentParser) -> None:
    """The per-run overrides, each checked as RunOverrides declares it
    before anything is sent."""
    low, high = int_bounds(RunOverrides, "priority")
    sub.add_argument("--max-attempts", type=whole_number_of(RunOverrides, "max_attempts"), metavar="N",
                     help="each job's attempts, the first included")
    sub.add_argument("--job-timeout", type=duration_of(RunOverrides, "timeout_secs"), metavar="DURATION",
                     help="each job's timeout")
    sub.add_argument("--priority", type=whole_number_of(RunOverrides, "priority"), metavar="N",
                     help=f"each job's priority ({low} to {high})")
    sub.add_argument("--label", dest="labels", action="append", type=label, metavar="LABEL",
                     help="run each job on workers with these labels instead of its own (repeat for several)")
    sub.add_argument("--add-label", dest="add_labels", action="append", type=label, metavar="LABEL",
                     help="add this label to each job's (repeat for several)")
    sub.set_defaults(check=_labels_fit)


def _labels_fit(args: argparse.Namespace) -> None:
    for flag, given in (("--label", args.labels), ("--add-label", args.add_labels),
                        ("--label and --add-label", (args.labels or []) + (args.add_labels or []))):
        count = len(set(given or ()))
        if count > MAX_LABELS:
            args.usage_error(f"{flag}: {count} labels, more than a job may need ({MAX_LABELS})")


def when_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if getattr(args, "at", None) is not None:
        body["scheduled_at"] = args.at
    if getattr(args, "delay", None) is not None:
        body["delay"] = args.delay
    if getattr(args, "expires_in", None) is not None:
        body["expires_in"] = args.expires_in
    return body


def overrides(args: argparse.Namespace) -> Optional[dict[str, Any]]:
    found = {"max_attempts": args.max_attempts, "timeout_secs": args.job_timeout, "priority": args.priority,
             "labels": args.labels, "add_labels": args.add_labels}
    found = {k: v for k, v in found.items() if v is not None}
    return found or None


def clock(ms: Optional[int]) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def started_line(run: RunOut, verb: str = "started") -> str:
    line = f"{verb} {run.workflow_id} run #{run.number}: {run.run_id}"
    if run.status == "delayed":
        line += f" (delayed until {clock(run.scheduled_at)})"
    return line


def run_lines(run: RunOut) -> list[str]:
    """What `rota status` says of when a run started and why, beyond its status."""
    lines = []
    if run.status == "delayed":
        lines.append(f"delayed until {clock(run.scheduled_at)}")
    elif run.scheduled_at is not None:
        lines.append(f"scheduled for {clock(run.scheduled_at)}")
    if run.expires_at is not None and run.status in ("delayed", "queued", "expired"):
        lines.append(f"{'expired' if run.status == 'expired' else 'expires'} at {clock(run.expires_at)}")
    if run.schedule_id:
        lines.append(f"started by schedule {run.schedule_id}")
    if run.restarted_from:
        lines.append(f"restart of run {run.restarted_from}")
    if run.overrides is not None:
        shown = {k: v for k, v in (("max_attempts", run.overrides.max_attempts),
                                   ("timeout_secs", run.overrides.timeout_secs),
                                   ("priority", run.overrides.priority), ("labels", run.overrides.labels),
                                   ("add_labels", run.overrides.add_labels), ("backoff", run.overrides.backoff))
                 if v is not None}
        lines.append("overrides " + ", ".join(f"{k}={input_text(v) if not isinstance(v, list) else ','.join(v)}"
                                              for k, v in shown.items()))
    return ["; ".join(lines)] if lines else []
