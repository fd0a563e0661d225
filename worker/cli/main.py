"""`rota`: the command line for operators, CI pipelines and build machines.

This module holds the parser, the global flags and main(); the commands live
by concern: cli_runs (workflows and runs), cli_watch (--wait, --follow),
cli_worker (the daemon), cli_tokens (API tokens), cli_common (what they
share). Every command talks to the server through worker/client.py. Exit
codes: 0 on success, 1 when a waited-for workflow fails or is cancelled, 2
when the command itself fails (bad usage, server unreachable, an error
answer, a refused token).

The API token comes from --token, else ROTA_TOKEN, else the file named by
ROTA_TOKEN_FILE (how systemd credentials and Kubernetes secrets arrive).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, Optional

from server import __version__
from worker.cli.common import (  # noqa: F401  (re-exported: cli_worker, cli_tokens and tests use these names)
    EXIT_ERROR,
    EXIT_FAILED,
    TokenSourceError,
    _env,
    client_command,
    describe_error,
    normalize_server,
    one_line,
    resolve_token,
    table,
)
from worker.cli.watch import FINISHED, watch  # noqa: F401
from worker.client.api import DEFAULT_SERVER, ApiError, Client, RotaError  # noqa: F401  (tests patch cli.Client)

log = logging.getLogger("rota.worker")
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as the shell reports a tool the pipe's reader left


def _cmd_server(args: argparse.Namespace) -> int:
    from server.__main__ import main as server_main  # the server's dependencies load only here

    server_main()
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
        default=_Defaulted(_env("ROTA_SERVER", DEFAULT_SERVER)),
        help="server URL; host:port means http:// (env ROTA_SERVER; default %(default)s)",
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

    from worker.cli import completion as cli_completion, in_job as cli_job, runs as cli_runs, tokens as cli_tokens, worker as cli_worker  # they build on this module

    cli_worker.add_worker_command(commands, parents=[connection])
    cli_runs.add_commands(commands, parents=[connection])
    cli_tokens.add_commands(commands, parents=[connection])
    cli_job.add_commands(commands, parents=[connection])

    command(
        "server", _cmd_server, "start the rota server (configured by env: PORT, HOST, REDIS_URL, ...)",
        talks_to_server=False,
    )
    cli_completion.add_command(commands, build_parser)
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


def main(argv: Optional[list[str]] = None) -> int:
    try:
        args = parse(argv)
    except TokenSourceError as exc:
        print(f"rota: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        return args.handler(args)
    except BrokenPipeError:
        # `rota runs | head`: the reader has gone, which is no error of ours.
        # Point stdout at /dev/null so the exit's own flush stays quiet, and
        # exit as a tool killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
