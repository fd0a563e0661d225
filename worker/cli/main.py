"""`rota`: the command line for operators, CI pipelines and build machines.

This module holds the parser, the global flags and main(), and wires the
command groups, one module each: worker (`rota worker`), runs (workflows
and runs; status and logs from show, --wait and --follow from watch),
workers, control (pausing and resuming; concurrency groups), tokens,
in_job (what a job's script runs, and approve), completion. What they share is in command, output and flags. Every command
that talks to the server gets its client from the factory main() is handed
(worker/client/api.py's Client, unless a test hands in its own). Exit
codes: 0 on success, 1 when a waited-for workflow fails or is cancelled, 2
when the command itself fails (bad usage, server unreachable, an error
answer, a refused token).

The API token comes from --token, else ROTA_TOKEN, else the file named by
ROTA_TOKEN_FILE (how systemd credentials and Kubernetes secrets arrive).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from server import __version__
from worker.cli import completion, control, in_job, runs, tokens, workers
from worker.cli import worker as worker_command
from worker.cli.command import (
    EXIT_ERROR,
    ClientFactory,
    TokenSourceError,
    normalize_server,
    resolve_token,
)
from worker.cli.flags import env_default
from worker.client.api import DEFAULT_SERVER, Client

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as the shell reports a tool the pipe's reader left


def _cmd_server(args: argparse.Namespace, connect: ClientFactory) -> int:
    from server.__main__ import main as server_main  # the server's dependencies load only here

    server_main([] if args.workers is None else ["--workers", str(args.workers)])
    return 0


# ---- parser -----------------------------------------------------------------------


class _Defaulted(str):
    """The --server a subcommand got by default: a --server given before the
    subcommand (`rota --server URL status ID`) wins over it."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rota",
        description="rota: pull-based worker-lease job queue.",
        epilog="exit codes: 0 ok; 1 a waited-for workflow failed or was cancelled; 2 error",
    )
    parser.add_argument("--version", action="version", version=f"rota {__version__}")
    # Accepted before the subcommand too, as gh and kubectl do; given after, they win.
    parser.add_argument("--server", dest="server_before", metavar="URL", help="as a subcommand's --server")
    parser.add_argument("--token", dest="token_before", metavar="TOKEN", help="as a subcommand's --token")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--server",
        default=_Defaulted(env_default("ROTA_SERVER", DEFAULT_SERVER)),
        help="server URL; host:port means http:// (env ROTA_SERVER; default %(default)s)",
    )
    connection.add_argument(
        # No default here: it would be printed by --help. main() resolves it.
        "--token",
        help="API token (default: env ROTA_TOKEN, else the contents of the file named by ROTA_TOKEN_FILE);"
        " prefer the environment, since other users can see flags in `ps`",
    )

    worker_command.add_commands(commands, parents=[connection])
    runs.add_commands(commands, parents=[connection])
    workers.add_commands(commands, parents=[connection])
    control.add_commands(commands, parents=[connection])
    tokens.add_commands(commands, parents=[connection])
    in_job.add_commands(commands, parents=[connection])
    about = "start the rota server (configured by env: PORT, HOST, REDIS_URL, ...)"
    server = commands.add_parser("server", help=about, description=about)
    server.set_defaults(handler=_cmd_server)
    # The flag's text lives here too: the server's modules load only when it runs.
    server.add_argument("--workers", type=int, metavar="N",
                        help="server processes on the port (env SERVER_WORKERS, default 1);"
                        " above 1 needs REDIS_URL and Linux")
    completion.add_commands(commands, build_parser)
    return parser


def parse(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The command line as the handlers read it: flags checked together, the
    server URL and token resolved. Raises TokenSourceError."""
    args = build_parser().parse_args(argv)
    if args.command == "submit" and not args.run and (args.wait or args.follow):
        # Nothing would start the workflow, so the wait would never end.
        args.usage_error(
            "--wait and --follow need the workflow to run: drop --no-run, or start it later with `rota run ID --wait`"
        )
    if getattr(args, "timeout", None) is not None and not (args.wait or getattr(args, "follow", False)):
        args.usage_error("--timeout bounds a wait: add --wait (or --follow)")
    if getattr(args, "cancel_on_interrupt", False) and not (args.wait or getattr(args, "follow", False)):
        args.usage_error("--cancel-on-interrupt is for a wait: add --wait (or --follow)")
    if hasattr(args, "check"):  # a command's own checks of its flags together
        args.check(args)
    if hasattr(args, "server"):  # the commands that talk to the server
        if args.server_before and isinstance(args.server, _Defaulted):
            args.server = args.server_before
        args.server = normalize_server(args.server)
        args.token, args.token_source = resolve_token(args.token or args.token_before, os.environ)
    return args


def main(argv: Optional[list[str]] = None, *, client_factory: ClientFactory = Client) -> int:
    """`rota ARGV`'s exit code. Every command that talks to the server gets
    its client from `client_factory` (tests hand in one on a fake transport)."""
    try:
        args = parse(argv)
    except TokenSourceError as exc:
        print(f"rota: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        return args.handler(args, client_factory)
    except BrokenPipeError:
        # `rota runs | head`: the reader has gone, which is no error of ours.
        # Point stdout at /dev/null so the exit's own flush stays quiet, and
        # exit as a tool killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
