"""`rota worker`: the daemon's command, its flags and its signal handling.

main.py's build_parser() calls add_commands(); everything about the
worker command lives here so the client commands and the daemon can change
independently.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import sys
from typing import Optional, Sequence

import msgspec

from server import limits
from server.logconfig import InertFormatter
from server.models import WorkerId
from worker.cli.command import EXIT_ERROR, ClientFactory, describe_error
from worker.cli.flags import env_default, label
from worker.client.api import Client
from worker.client.errors import ApiError, RotaError
from worker.daemon import run_as
from worker.daemon.claim_loop import Daemon
from worker.daemon.config import WorkerConfig, default_worker_id
from worker.daemon.run_as import RunAs
from worker.daemon.wire import DaemonClient

log = logging.getLogger("rota.worker")

# Flag values are checked here, before the worker connects, and refused in
# words: argparse prints "argument --flag: <message>" and exits 2. Each
# message starts "invalid value": what a bad value has always said.

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _whole_number(text: str, low: int, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"≥ {low}" if high is None else f"from {low} to {high}"
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be a whole number {bound}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _lease_ttl(text: str) -> int:
    return _whole_number(text, 1, 86_400)


def _seconds(text: str, *, above_zero: bool = False, at_most: float | None = None) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    low_ok = value > 0 if above_zero else value >= 0
    if not (low_ok and (value <= at_most if at_most is not None else not math.isnan(value))):
        bound = "above 0" if above_zero else "≥ 0"
        if at_most is not None:
            bound += f" and at most {at_most:g}"
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be a number of seconds {bound}")
    return value


def _non_negative_float(text: str) -> float:
    return _seconds(text)


def _claim_wait(text: str) -> float:
    return _seconds(text, above_zero=True, at_most=3600)


def _labels(text: str) -> list[str]:
    labels = sorted({label(item.strip()) for item in text.split(",") if item.strip()})
    if len(labels) > limits.MAX_LABELS:
        raise argparse.ArgumentTypeError(
            f"invalid value: {len(labels)} labels, more than a worker may offer ({limits.MAX_LABELS})")
    return labels


def _worker_id(text: str) -> str:
    try:
        return msgspec.convert(text, WorkerId)
    except msgspec.ValidationError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: a worker id is 1 to 200 characters, no spaces or control characters") from None


def _run_as(text: str) -> RunAs:
    try:
        return run_as.lookup(text.strip())
    except run_as.RunAsError as exc:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: {exc}") from None


def _flag(text: str) -> bool:
    """A boolean from the environment: 1/true/yes/on or 0/false/no/off."""
    if text.strip().lower() in _TRUE:
        return True
    if text.strip().lower() in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be 1, true, yes, on or 0, false, no, off")


def _cmd_worker(args: argparse.Namespace, connect: ClientFactory) -> int:
    if args.exclusive is None:
        try:
            args.exclusive = _flag(os.environ.get("ROTA_EXCLUSIVE", ""))
        except argparse.ArgumentTypeError as exc:
            args.usage_error(f"ROTA_EXCLUSIVE: {exc}")
    if args.exclusive and not args.labels:
        args.usage_error("--exclusive needs --labels (env ROTA_LABELS): an exclusive worker takes only jobs"
                         " that ask for one of its labels")
    if args.run_as is not None:
        try:
            run_as.require_root(args.run_as)
        except run_as.RunAsError as exc:
            args.usage_error(str(exc))
    # (a job's error, its stderr's tail, is in the lines about it: shown, not acted on)
    shown = logging.StreamHandler(sys.stderr)
    shown.setFormatter(InertFormatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[shown])
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per job event, not per request
    _warn_about_the_token(args.run_as, args.token_source)
    config = WorkerConfig(
        server=args.server,
        labels=args.labels,
        concurrency=args.concurrency,
        lease_ttl=args.lease_ttl,
        worker_id=args.worker_id,
        workdir=args.workdir,
        cancel_grace=args.cancel_grace,
        drain_timeout=args.drain_timeout,
        claim_wait=args.claim_wait,
        exclusive=args.exclusive,
        run_as=args.run_as,
    )
    # The daemon sends its calls on its own HTTP/1.1 connections (wire.py);
    # a factory a test hands in is kept as it is.
    daemon_connect = DaemonClient if connect is Client else connect
    return asyncio.run(_run_worker(config, daemon_connect, args.token, args.token_source))


def _warn_about_the_token(user: Optional[RunAs], token_source: Optional[str]) -> None:
    """Say at start when jobs can read this worker's token (README, Security)."""
    if user is None:
        if os.geteuid() == 0:
            log.warning("running as root without --run-as: every job runs as root, and can read this"
                        " worker's token; give --run-as USER to run jobs as an unprivileged user")
        return
    if token_source == "--token":
        log.warning("the token is on the command line (--token), which every user of this machine can read"
                    " with ps, %s included: pass it in ROTA_TOKEN or ROTA_TOKEN_FILE instead", user.name)
    path = os.environ.get("ROTA_TOKEN_FILE", "")
    if token_source and token_source.startswith("ROTA_TOKEN_FILE") and user.can("r", path):
        log.warning("ROTA_TOKEN_FILE %s is readable by %s, the user jobs run as: a job can read this worker's"
                    " token; let only the worker's user read it (chown root; chmod 600)", path, user.name)


async def _run_worker(config: WorkerConfig, connect: ClientFactory, token: Optional[str],
                      token_source: Optional[str]) -> int:
    async with connect(config.server, token=token) as client:
        daemon = Daemon(config, client)
        loop = asyncio.get_running_loop()
        interrupts = 0

        def on_signal(signum: int) -> None:
            nonlocal interrupts
            interrupts += 1
            if signum == signal.SIGINT and interrupts > 1:
                log.warning("second interrupt: killing running jobs and exiting now")
                daemon.kill_jobs()
                os._exit(130)
            log.info("%s: no new claims; draining running jobs", signal.Signals(signum).name)
            daemon.request_stop()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await daemon.run()
        except RotaError as exc:
            # Refusals of the worker itself (a bad token, labels, worker id)
            # end here: retrying them would change nothing.
            if isinstance(exc, ApiError) and exc.code == "worker_id_taken":
                message = (
                    f"worker id {config.worker_id!r} belongs to another token:"
                    " pick another with --worker-id (env ROTA_WORKER_ID)"
                )
            else:
                message = describe_error(exc, token_source)
            log.error("worker stopped: %s", message)
            return EXIT_ERROR
    return 0


def add_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]", parents: Sequence[argparse.ArgumentParser]
) -> argparse.ArgumentParser:
    """Add `rota worker` to main.py's subcommands; `parents` carries --server and --token."""
    help = "run a worker daemon that claims and runs jobs"
    worker = commands.add_parser("worker", parents=list(parents), help=help, description=help)
    worker.set_defaults(handler=_cmd_worker, usage_error=worker.error)
    worker.add_argument(
        "--labels", type=_labels, default=env_default("ROTA_LABELS", ""),
        help="comma-separated labels this machine offers (env ROTA_LABELS)",
    )
    worker.add_argument(
        "--concurrency", type=_positive_int, default=env_default("ROTA_CONCURRENCY", str(WorkerConfig.concurrency)),
        help="jobs run at once (env ROTA_CONCURRENCY; default %(default)s)",
    )
    worker.add_argument(
        "--lease-ttl", type=_lease_ttl, default=env_default("ROTA_LEASE_TTL", str(WorkerConfig.lease_ttl)),
        help="lease length in seconds; heartbeats every third (env ROTA_LEASE_TTL; default %(default)s)",
    )
    worker.add_argument(
        "--worker-id", type=_worker_id, default=env_default("ROTA_WORKER_ID", default_worker_id()),
        help="worker name (env ROTA_WORKER_ID; default <hostname>-<pid>-<6 random hex>)",
    )
    worker.add_argument(
        "--workdir", default=env_default("ROTA_WORKDIR", str(WorkerConfig.workdir)),
        help="where each job gets its working directory (env ROTA_WORKDIR; default %(default)s)",
    )
    worker.add_argument(
        "--cancel-grace", type=_non_negative_float, default=env_default("ROTA_CANCEL_GRACE", str(WorkerConfig.cancel_grace)),
        help="seconds between SIGTERM and SIGKILL of a stopped job (env ROTA_CANCEL_GRACE; default %(default)s)",
    )
    worker.add_argument(
        "--drain-timeout", type=_non_negative_float, default=env_default("ROTA_DRAIN_TIMEOUT", str(WorkerConfig.drain_timeout)),
        help="on SIGTERM/SIGINT, seconds running jobs may finish before they are stopped"
        " and handed back to run again elsewhere, no retry spent (env ROTA_DRAIN_TIMEOUT; default %(default)s)",
    )
    worker.add_argument(
        # None: not given, so ROTA_EXCLUSIVE decides (read when the worker starts,
        # so that a bad value there troubles no other command).
        "--exclusive", action=argparse.BooleanOptionalAction, default=None,
        help="take only jobs that ask for at least one of --labels, never unlabelled ones"
        " (env ROTA_EXCLUSIVE=1; default: no)",
    )
    worker.add_argument(
        # None: not given. Read from ROTA_RUN_AS here, so a bad user is a usage error.
        "--run-as", type=_run_as, default=env_default("ROTA_RUN_AS", "") or None, metavar="USER",
        help="start every job as USER (name or uid), so that no job can read this worker's token;"
        " the worker must run as root (env ROTA_RUN_AS; default: jobs run as the worker's user)",
    )
    worker.add_argument(
        "--claim-wait", type=_claim_wait, default=env_default("ROTA_CLAIM_WAIT", f"{WorkerConfig.claim_wait:g}"),
        help="seconds each claim long-polls for a job; the server caps it at its MAX_WAIT_SECS"
        " (env ROTA_CLAIM_WAIT; default %(default)s)",
    )
    return worker
