"""`rota worker`: the daemon's command, its flags and its signal handling.

cli.py's build_parser() calls add_worker_command(); everything about the
worker command lives here so the client commands and the daemon can change
independently.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Optional, Sequence

from worker import cli
from worker.cli import EXIT_ERROR, _env, describe_error
from worker.client import ApiError, RotaError
from worker.daemon import Daemon, WorkerConfig, default_worker_id

log = logging.getLogger("rota.worker")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(text)
    return value


def _labels(text: str) -> list[str]:
    return sorted({label.strip() for label in text.split(",") if label.strip()})


def _cmd_worker(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per job event, not per request
    config = WorkerConfig(
        server=args.server,
        labels=args.labels,
        concurrency=args.concurrency,
        lease_ttl=args.lease_ttl,
        worker_id=args.worker_id,
        workdir=args.workdir,
        cancel_grace=args.cancel_grace,
        drain_timeout=args.drain_timeout,
    )
    return asyncio.run(_run_worker(config, args.token, args.token_source))


async def _run_worker(config: WorkerConfig, token: Optional[str], token_source: Optional[str]) -> int:
    # cli.Client, looked up at call time: one place (cli's) for every command's
    # client, which is also where tests put a fake transport.
    async with cli.Client(config.server, token=token) as client:
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


def add_worker_command(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]", parents: Sequence[argparse.ArgumentParser]
) -> argparse.ArgumentParser:
    """Add `rota worker` to cli.py's subcommands; `parents` carries --server and --token."""
    help = "run a worker daemon that claims and runs jobs"
    worker = commands.add_parser("worker", parents=list(parents), help=help, description=help)
    worker.set_defaults(handler=_cmd_worker)
    worker.add_argument(
        "--labels", type=_labels, default=_env("ROTA_LABELS", ""),
        help="comma-separated labels this machine offers (env ROTA_LABELS)",
    )
    worker.add_argument(
        "--concurrency", type=_positive_int, default=_env("ROTA_CONCURRENCY", str(WorkerConfig.concurrency)),
        help="jobs run at once (env ROTA_CONCURRENCY; default %(default)s)",
    )
    worker.add_argument(
        "--lease-ttl", type=_positive_int, default=_env("ROTA_LEASE_TTL", str(WorkerConfig.lease_ttl)),
        help="lease length in seconds; heartbeats every third (env ROTA_LEASE_TTL; default %(default)s)",
    )
    worker.add_argument(
        "--worker-id", default=_env("ROTA_WORKER_ID", default_worker_id()),
        help="worker name (env ROTA_WORKER_ID; default host-pid)",
    )
    worker.add_argument(
        "--workdir", default=_env("ROTA_WORKDIR", str(WorkerConfig.workdir)),
        help="where each job gets its working directory (env ROTA_WORKDIR; default %(default)s)",
    )
    worker.add_argument(
        "--cancel-grace", type=_non_negative_float, default=_env("ROTA_CANCEL_GRACE", str(WorkerConfig.cancel_grace)),
        help="seconds between SIGTERM and SIGKILL of a stopped job (env ROTA_CANCEL_GRACE; default %(default)s)",
    )
    worker.add_argument(
        "--drain-timeout", type=_non_negative_float, default=_env("ROTA_DRAIN_TIMEOUT", str(WorkerConfig.drain_timeout)),
        help="on SIGTERM/SIGINT, seconds running jobs may finish before they are stopped"
        " and failed as retryable (env ROTA_DRAIN_TIMEOUT; default %(default)s)",
    )
    return worker
