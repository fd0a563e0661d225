"""`python -m server` / `rota server`: start the rota server."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import sys
from typing import Optional

import uvicorn
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette

from . import logconfig
from .app import create_app
from .connections import protocol_class
from .settings import Settings, SettingsError
from .store import Store
from .tokens import TokenStore, auth_off_refusal

EXIT_BAD_SETTING = 2
EXIT_INTERRUPTED = 130


class _Server(uvicorn.Server):
    """Tells the app the moment a stop signal arrives: uvicorn otherwise
    waits for open long-polls and SSE tails until its grace period ends,
    then cuts them off."""

    def __init__(self, config: uvicorn.Config, app: Starlette):
        super().__init__(config)
        self._app = app
        self.interrupted = False
        self.refused = False
        app.state.on_refused = self._refuse

    def _refuse(self) -> None:
        """The app refuses its store (it logged why, once Redis answered): stop."""
        self.refused = True
        self.should_exit = True

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


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"rota: bad setting: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_SETTING)
    refused = _refusal(settings)
    if refused:
        print(f"rota: {refused}", file=sys.stderr)
        sys.exit(EXIT_BAD_SETTING)
    logconfig.configure(settings.log_level, settings.log_format)
    _raise_open_file_limit(settings.max_connections + 256)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's lines go through rota's handler and format
        access_log=settings.log_level in ("debug", "trace"),
        # Long-poll claims and SSE tails are open for up to a minute; give
        # them a few seconds to finish on shutdown rather than hanging.
        timeout_graceful_shutdown=5,
        http=protocol_class(settings.max_connections, settings.max_connections_per_address,
                            settings.header_timeout_secs),
        ssl_keyfile=settings.ssl_keyfile,
        ssl_certfile=settings.ssl_certfile,
    )
    server = _Server(config, app)
    try:
        server.run()
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
