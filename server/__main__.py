"""`python -m server` / `rota server`: start the rota server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import signal
import socket
import sys
from typing import Optional

import uvicorn
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette

from . import logconfig
from .app import create_app
from .connections import protocol_class
from .processes import EXIT_BAD_SETTING, EXIT_INTERRUPTED, supervise
from .settings import MAX_SERVER_WORKERS, Settings, SettingsError
from .store import Store
from .tokens import TokenStore, auth_off_refusal


class _Server(uvicorn.Server):
    """Tells the app the moment a stop signal arrives: uvicorn otherwise
    waits for open long-polls and SSE tails until its grace period ends,
    then cuts them off."""

    def __init__(self, config: uvicorn.Config, app: Starlette, parent: Optional[int] = None):
        super().__init__(config)
        self._app = app
        self.interrupted = False
        self.refused = False
        app.state.on_refused = self._refuse
        # One of `--workers N`: the supervising parent's pid. A child left
        # behind by a parent that was killed stops, rather than serve on
        # with no one to stop it.
        self._parent = parent

    def _refuse(self) -> None:
        """The app refuses its store (it logged why, once Redis answered): stop."""
        self.refused = True
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self._parent is not None and not self.should_exit and os.getppid() != self._parent:
            logging.getLogger("rota").warning("the supervising process is gone; stopping")
            self.handle_exit(signal.SIGTERM, None)
        return await super().on_tick(counter)

    def handle_exit(self, sig, frame) -> None:
        self.interrupted |= sig == signal.SIGINT
        notifier = getattr(self._app.state, "notifier", None)
        if notifier is not None:
            try:
                asyncio.get_running_loop().call_soon_threadsafe(notifier.begin_shutdown)
            except RuntimeError:
                pass  # no loop yet: nothing is parked
        super().handle_exit(sig, frame)


def _raise_open_file_limit(wanted: int) -> None:
    """Each connection is a file descriptor: lift the soft limit (often 1024)
    toward MAX_CONNECTIONS plus room for Redis and files, as far as the
    hard limit allows, and say so when that is not enough."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < wanted:
        logging.getLogger("rota").warning(
            "open-file limit %d is below MAX_CONNECTIONS + 256; connections beyond it will fail", soft)


def _refusal(settings: Settings) -> Optional[str]:
    """auth_off_refusal, asked before anything starts, so a refusal is one
    line and exit 2; with Redis not answering yet, the app asks once it does."""
    if settings.auth or settings.auth_off_explicit or not settings.redis_url:
        return None

    async def ask() -> Optional[str]:
        client = Redis.from_url(settings.redis_url, decode_responses=True, socket_connect_timeout=2,
                                socket_timeout=2)
        try:
            store = Store.from_settings(client, settings)
            return await auth_off_refusal(settings, TokenStore(client, store.prefix, store.scripts))
        except (RedisError, OSError):
            return None
        finally:
            await client.aclose()

    return asyncio.run(ask())


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m server", description="start the rota server"
                                     " (configured by env: PORT, HOST, REDIS_URL, ...)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help=f"server processes on the port, 1 to {MAX_SERVER_WORKERS} (env SERVER_WORKERS,"
                        " default 1); above 1 needs REDIS_URL and Linux")
    # Internal: how `--workers N` hands each child its listening socket,
    # and names itself (the child's own getppid() could already be init's).
    parser.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--supervisor", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    if args.workers is not None:
        # Through the environment, so it is checked as every setting is and
        # each child reads the same number.
        os.environ["SERVER_WORKERS"] = str(args.workers)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"rota: bad setting: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_SETTING)
    # before any process starts, so a refusal is one line (each process's
    # app asks again as it starts, and stops the server if it must)
    refused = _refusal(settings) if args.listen_fd is None else None
    if refused:
        print(f"rota: {refused}", file=sys.stderr)
        sys.exit(EXIT_BAD_SETTING)
    logconfig.configure(settings.log_level, settings.log_format)
    if settings.server_workers > 1 and args.listen_fd is None:
        try:
            sys.exit(supervise(settings))
        except (SettingsError, OSError) as exc:
            print(f"rota: {exc}", file=sys.stderr)
            sys.exit(EXIT_BAD_SETTING)
    serve(settings.process_share(), args.listen_fd, args.supervisor)


def serve(settings: Settings, listen_fd: Optional[int] = None, supervisor: Optional[int] = None) -> None:
    _raise_open_file_limit(settings.max_connections + 256)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's lines go through rota's handler and format
        access_log=settings.log_level in ("debug", "trace"),
        # uvicorn's X-Forwarded-For rewriting runs on every request; nothing
        # in rota reads the client address from the request (connection
        # slots use the socket's peer), so it would only change the debug
        # access log's address.
        proxy_headers=False,
        # Long-poll claims and SSE tails are open for up to a minute; give
        # them a few seconds to finish on shutdown rather than hanging.
        timeout_graceful_shutdown=5,
        http=protocol_class(settings.max_connections, settings.max_connections_per_address,
                            settings.header_timeout_secs),
        ssl_keyfile=settings.ssl_keyfile,
        ssl_certfile=settings.ssl_certfile,
    )
    sockets = None if listen_fd is None else [socket.socket(fileno=listen_fd)]
    server = _Server(config, app, supervisor)
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully on SIGINT, then raises the signal
        # again for the default handler: Python's is this exception, and a
        # Ctrl-C is no error to print a traceback for. 130 = 128 + SIGINT,
        # as a shell reports a command Ctrl-C ended.
        sys.exit(EXIT_INTERRUPTED)
    if server.refused:
        sys.exit(EXIT_BAD_SETTING)
    if server.interrupted:
        # Started with SIGINT ignored (nohup, a job started with `&`), the
        # raised signal is ignored too: still say the run was interrupted.
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
