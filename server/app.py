"""The Starlette application: routes, error rendering and the lifespan
(Redis connection, workflow files, pub/sub notifier, reaper)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Optional

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request

from . import reaper
from .errors import ApiError, PayloadTooLarge
from .http import error_response
from .notifier import Notifier
from .redis_conn import connect, connect_pubsub, describe
from .routes import logs, ops, worker_protocol, workflows
from .settings import Settings
from .store import Store
from .workflow_files import load_directory

log = logging.getLogger("rota")


class BodyLimit:
    """Refuses bodies over MAX_BODY_BYTES with 413, whether announced by
    Content-Length or only discovered while streaming (chunked uploads)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                return await _too_large(self.max_bytes)(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise PayloadTooLarge("body_too_large", f"request body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


def _too_large(limit: int):
    return error_response(413, "body_too_large", f"request body exceeds {limit} bytes")


async def _api_error(request: Request, exc: ApiError):
    return error_response(exc.status, exc.code, exc.message, exc.details)


async def _http_error(request: Request, exc: HTTPException):
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, exc.detail)


async def _store_down(request: Request, exc: Exception):
    log.warning("store unavailable: %s", exc)
    return error_response(503, "store_unavailable", "the Redis store is not answering; retry shortly")


async def _internal(request: Request, exc: Exception):
    # Never bad input (that is a 4xx above): a bug, so log it whole.
    log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal server error")


def create_app(settings: Optional[Settings] = None, redis: Optional[Redis] = None) -> Starlette:
    """`redis` lets tests share one client (e.g. fakeredis) with the app."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        client = redis if redis is not None else connect(settings)
        store = Store.from_settings(client, settings)
        # A real Redis gets a second, retry-free client for pub/sub (see
        # connect_pubsub); in-process stores share the one client.
        pubsub_client = connect_pubsub(settings) if redis is None and settings.redis_url else client
        notifier = Notifier(pubsub_client, store.wake_channel)
        app.state.settings, app.state.redis, app.state.store, app.state.notifier = settings, client, store, notifier
        log.info("store: %s", describe(settings))
        if settings.workflows_dir:
            await load_directory(store, settings.workflows_dir)
        await notifier.start()
        reaper_task, reaper_stop = None, asyncio.Event()
        if settings.api_only:
            log.info("API_ONLY=1: this process runs no reaper")
            if not settings.redis_url:
                log.warning("API_ONLY=1 with the embedded store: nothing will ever reap expired leases")
        else:
            reaper_task = asyncio.create_task(reaper.run_forever(store, settings.reap_interval_secs, reaper_stop))
            log.info("reaper: every %.1fs", settings.reap_interval_secs)
        log.info("rota listening on http://%s:%d", settings.host, settings.port)
        try:
            yield
        finally:
            reaper_stop.set()
            if reaper_task and not (await asyncio.wait({reaper_task}, timeout=5))[0]:
                reaper_task.cancel()
            await notifier.stop()
            if redis is None:
                await client.aclose()
                if pubsub_client is not client:
                    await pubsub_client.aclose()

    middleware = [
        Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins) or ["*"],
                   allow_methods=["*"], allow_headers=["*"], expose_headers=["Idempotent-Replayed"]),
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
    ]
    return Starlette(
        routes=workflows.routes + worker_protocol.routes + logs.routes + ops.routes,
        middleware=middleware,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            RedisConnectionError: _store_down,
            RedisTimeoutError: _store_down,
            ConnectionError: _store_down,
            Exception: _internal,
        },
        lifespan=lifespan,
    )
