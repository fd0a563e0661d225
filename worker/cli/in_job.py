"""`rota progress | log | checkpoint | state | annotate | output | spawn |
wait-event`: what a job's script tells its server, from inside the job
(Buildkite's `buildkite-agent annotate`, `meta-data`, `pipeline upload`);
and `rota approve`, the operator's side of a wait.

The in-job commands are worker/sdk.py's calls: they find the job's lease in
the environment `rota worker` gives it (ROTA_SERVER, ROTA_LEASE_ID,
ROTA_RUN_TOKEN), and end with one line and exit 2 outside a job or once
the lease has ended. `rota checkpoint load` and `rota state get` exit 1
when there is nothing to print, so a script can test for it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any, Callable, Optional
from urllib.parse import quote

from server.models import EVENT_KEY_PATTERN, EventPost, JobOut
from worker.cli.command import EXIT_ERROR, EXIT_FAILED, ClientFactory, Handler, client_command
from worker.cli.flags import parse_duration
from worker.client.api import Client
from worker.client.errors import RotaError
from worker.sdk import Job, SdkError, current_job

_JSON_SUFFIXES = (".json",)


def _job(args: argparse.Namespace) -> Job:
    # --server defaults to ROTA_SERVER, which rota worker sets; the lease's own
    # run token speaks for the job, else an API token given to the command.
    job = current_job({**os.environ, "ROTA_SERVER": args.server})
    return Job(args.server, job.lease_id, os.environ.get("ROTA_RUN_TOKEN") or args.token)


def _in_job(run: Callable[[Job, argparse.Namespace], Optional[int]]) -> Handler:
    # The SDK speaks for the job (its run token, its lease): not a Client.
    def command(args: argparse.Namespace, connect: ClientFactory) -> int:
        try:
            return run(_job(args), args) or 0
        except SdkError as exc:
            print(f"rota {args.command}: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            return 130

    return command


class _Usage(SdkError):
    """A bad argument found after parsing (an unreadable file, bad JSON)."""


def _pairs(items: list[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise _Usage(f"{what} {item!r} is not KEY=VALUE")
        pairs[key] = value
    return pairs


def _read(source: str) -> bytes:
    """A file's bytes, or stdin's for `-`."""
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        with open(source, "rb") as f:
            return f.read()
    except OSError as exc:
        raise _Usage(f"cannot read {source}: {exc.strerror}") from None


def _print_value(value: Any) -> None:
    """A string as it is (like `jq -r`), anything else as JSON."""
    print(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


# ---- in-job commands -------------------------------------------------------------------


def _progress(job: Job, args: argparse.Namespace) -> None:
    job.progress(args.percent, args.step, step_index=args.step_index)


def _log(job: Job, args: argparse.Namespace) -> None:
    message = " ".join(args.message) if args.message else sys.stdin.read().rstrip("\n")
    if not message.strip():  # a job's stdin is /dev/null: a bare `rota log` is a mistake
        raise _Usage("nothing to log: give the message as arguments or on stdin")
    if not job.log(args.level, message, **_pairs(args.data, "--data")):
        # dropped, like the job's output once its log is full: never a reason to fail the job
        print("rota log: the job's log is full (the server's LOG_MAX_BYTES): entry dropped", file=sys.stderr)


def _checkpoint_save(job: Job, args: argparse.Namespace) -> None:
    raw = _read(args.file)
    if args.text:
        data: Any = raw.decode(errors="replace")
    else:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            where = "stdin" if args.file == "-" else args.file
            raise _Usage(f"{where} is not JSON ({exc}); save text with --text") from None
    job.checkpoint(data)


def _checkpoint_load(job: Job, args: argparse.Namespace) -> int:
    value = job.load_checkpoint()
    if value is None:
        print("rota checkpoint: no checkpoint: no earlier attempt of this job saved one", file=sys.stderr)
        return EXIT_FAILED
    _print_value(value) if args.raw else print(json.dumps(value, ensure_ascii=False))
    return 0


_MISSING = object()


def _state_get(job: Job, args: argparse.Namespace) -> int:
    value = job.state.get(args.key, _MISSING)
    if value is _MISSING:
        if args.default is not None:
            print(args.default)
            return 0
        print(f"rota state: the run's state has no key {args.key!r}", file=sys.stderr)
        return EXIT_FAILED
    _print_value(value)
    return 0


def _state_set(job: Job, args: argparse.Namespace) -> None:
    text = args.value if args.value is not None else _read("-").decode(errors="replace")
    if args.json:
        try:
            value: Any = json.loads(text)
        except ValueError as exc:
            raise _Usage(f"the value is not JSON ({exc})") from None
    else:
        value = text
    job.state.set(args.key, value)


def _state_delete(job: Job, args: argparse.Namespace) -> None:
    job.state.delete(args.key)


def _annotate(job: Job, args: argparse.Namespace) -> None:
    # KEY=VALUE arguments annotate the job; otherwise the text (the
    # arguments, or stdin) is a Markdown note on the run, as Buildkite's.
    note = args.style is not None or args.context is not None or not args.body
    if not note and all("=" in item for item in args.body):
        job.annotate(_pairs(args.body, "annotation"))
        return
    markdown = " ".join(args.body) if args.body else sys.stdin.read()
    if not markdown.strip():
        raise _Usage("nothing to annotate: give KEY=VALUE pairs, or Markdown as arguments or on stdin")
    job.annotate_run(markdown, args.style or "info", args.context or "default")


def _output(job: Job, args: argparse.Namespace) -> None:
    job.output(_pairs(args.pairs, "output"))


def _spawn(job: Job, args: argparse.Namespace) -> None:
    document = _read(args.file)
    if args.file != "-" and args.file.lower().endswith(_JSON_SUFFIXES):
        answer = job.call("POST", "spawn", content=document, content_type="application/json")
    else:
        answer = job.spawn(document)  # stdin: JSON if it looks like JSON, else YAML
    if answer.get("child_run_id"):
        print(f"started run {answer['child_run_id']}")
    for job_id in answer.get("jobs") or []:
        print(f"added job {job_id}")


_EVENT_KEY = re.compile(EVENT_KEY_PATTERN)
_MAX_WAIT_SECS = 30 * 86_400


def _wait_event(job: Job, args: argparse.Namespace) -> None:
    # Checked here so the message is in the command's words, not the schema's.
    if not _EVENT_KEY.match(args.key):
        raise _Usage(f"invalid event key {args.key!r}: 1 to 200 letters, digits and _ . : -")
    if args.wait_timeout > _MAX_WAIT_SECS:
        raise _Usage("--timeout is at most 30d")
    waiting = job.wait_for_event(args.key, args.wait_timeout)
    print(f"waiting for event {args.key} until {waiting.get('expires_at')}: this attempt ends now;"
          " the job runs again when the event comes", file=sys.stderr)


# ---- rota approve (an operator's API token) ----------------------------------------------


async def _approve(client: Client, args: argparse.Namespace) -> int:
    try:
        payload = _pairs(args.payload, "--payload") if args.payload else None
    except _Usage as exc:
        raise RotaError(str(exc)) from None
    path = f"/api/runs/{quote(args.run_id, safe='')}/jobs/{quote(args.job_id, safe='')}/approve"
    response = await client._send("POST", path, EventPost(payload=payload))
    job = client._decode(response.content, JobOut)
    print(f"approved {args.run_id}/{args.job_id}: {job.status}")
    return 0


def add_commands(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Adds the in-job commands and `rota approve`; `parents` carry --server and --token."""

    def command(name: str, run, help: str, under: argparse._SubParsersAction = commands) -> argparse.ArgumentParser:
        sub = under.add_parser(name, parents=parents, help=help, description=help)
        sub.set_defaults(handler=_in_job(run))
        return sub

    progress = command("progress", _progress, "(in a job) report how far the job is: shown in its status")
    progress.add_argument("percent", type=_percent, help="0 to 100")
    progress.add_argument("step", nargs="?", help="what it is doing, e.g. 'batch 3 of 10'")
    progress.add_argument("--step-index", type=int, help="the index of that step")

    log = command("log", _log, "(in a job) add a log entry with a level to the job's log")
    log.add_argument("--level", default="info", choices=("debug", "info", "warn", "warning", "error"))
    log.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", help="structured data; repeatable")
    log.add_argument("message", nargs="*", help="the message (default: stdin)")

    about = "(in a job) save a checkpoint for the job's next attempt, or load this attempt's"
    checkpoint = commands.add_parser("checkpoint", help=about, description=about)
    checkpoints = checkpoint.add_subparsers(dest="checkpoint_command", required=True, metavar="COMMAND")
    save = command("save", _checkpoint_save, "save FILE (or - for stdin), JSON, as the job's checkpoint",
                   checkpoints)
    save.add_argument("file", metavar="FILE|-")
    save.add_argument("--text", action="store_true", help="save the content as a string, not JSON")
    load = command("load", _checkpoint_load, "print the checkpoint this attempt started with"
                   " (JSON; exit 1 if there is none)", checkpoints)
    load.add_argument("-r", "--raw", action="store_true", help="print a string checkpoint without quotes")

    about = "(in a job) get, set and delete keys of the run's state, shared by its jobs"
    state = commands.add_parser("state", help=about, description=about)
    states = state.add_subparsers(dest="state_command", required=True, metavar="COMMAND")
    get = command("get", _state_get, "print a key's value (a string as it is, else JSON; exit 1 if unset)",
                  states)
    get.add_argument("key")
    get.add_argument("--default", help="print this if the key is unset (and exit 0)")
    set_ = command("set", _state_set, "set a key to VALUE (default: stdin), a string unless --json", states)
    set_.add_argument("key")
    set_.add_argument("value", nargs="?")
    set_.add_argument("--json", action="store_true", help="VALUE is JSON")
    delete = command("delete", _state_delete, "delete a key", states)
    delete.add_argument("key")

    annotate = command("annotate", _annotate, "(in a job) annotate the job with KEY=VALUE pairs, or the run"
                       " with a Markdown note (the arguments, or stdin)")
    annotate.add_argument("body", nargs="*", metavar="KEY=VALUE|MARKDOWN")
    annotate.add_argument("--style", choices=("info", "warning", "error", "success"),
                          help="the note's style (default info)")
    annotate.add_argument("--context", help="the note's context: a later note of the same context replaces it")

    output = command("output", _output, "(in a job) set outputs now; those in $ROTA_OUTPUT at the end win")
    output.add_argument("pairs", nargs="+", metavar="KEY=VALUE")

    spawn = command("spawn", _spawn, "(in a job) add the jobs of FILE (YAML or JSON; - for stdin) to the run")
    spawn.add_argument("file", metavar="FILE|-")

    wait = command("wait-event", _wait_event, "(in a job) end this attempt waiting for event KEY; the job"
                   " runs again, with its checkpoint and $ROTA_EVENT, when the event comes")
    wait.add_argument("key")
    # (dest: `timeout` is the --wait bound of the run commands, which main.parse checks)
    wait.add_argument("--timeout", dest="wait_timeout", type=parse_duration, default=86_400, metavar="DURATION",
                      help="fail the job if no event comes in this long: 30d, 12h, 90m, 3600s or seconds"
                      " (default 1 day)")

    about = "release a waiting job or approval gate of a run"
    approve = commands.add_parser("approve", parents=parents, help=about, description=about)
    approve.set_defaults(handler=client_command(_approve))
    approve.add_argument("run_id", metavar="RUN")
    approve.add_argument("job_id", metavar="JOB")
    approve.add_argument("--payload", action="append", default=[], metavar="KEY=VALUE",
                         help="the approval's payload, which becomes a gate's outputs; repeatable")


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage from 0 to 100")
    return value
