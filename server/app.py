"""The Starlette application: routes, error rendering and the lifespan
(Redis connection, workflow files, pub/sub notifier, reaper)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Optional

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import NoPermissionError, OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from . import __version__, openapi, reaper, routing, scheduler, ui
from .auth import Auth
from .errors import ApiError
from .guards import RequestGuard
from .hotpath import HotPath
from .http import error_response
from .metrics.exposition import Exposition
from .metrics.flush import Flusher
from .metrics.tally import Tally
from .notifier import Notifier
from .redis_conn import connect, connect_lean, connect_pubsub, describe
from .routes import (batch, control, deadletters, logs, lookup, metrics, notes, ops, queues, runs, schedules, sdk,
                     sdk_seeds, session, strait_runs, tokens, worker_protocol, workflows)
from .settings import Settings
from .store import Store
from .tokens import TokenStore, auth_off_refusal
from .workflow_files import load_directory

log = logging.getLogger("rota")
access = logging.getLogger("rota.access")


def endpoints() -> list[routing.Endpoint]:
    """Every route the server has: the one table that routing, scopes and
    /openapi.json are all built from."""
    # The worker protocol first: routes are tried in this order (see
    # routing._ordered), and claim, heartbeat and complete are the hot path.
    return (worker_protocol.endpoints + batch.endpoints + workflows.endpoints + runs.endpoints + schedules.endpoints
            + notes.endpoints + logs.endpoints + lookup.endpoints + control.endpoints + deadletters.endpoints
            + sdk.endpoints + sdk_seeds.endpoints + strait_runs.endpoints + tokens.endpoints + session.endpoints
            + queues.endpoints + ops.endpoints + metrics.endpoints + ui.endpoints)


# 4xx a worker meets in the protocol's normal course (a result after a
# cancel, a heartbeat after its job ended or waits, output after its log is
# full, which the log script says once): not news at INFO.
_PROTOCOL_CODES = frozenset({"job_cancelled", "lease_lost", "job_waiting", "log_limit_exceeded"})


def _refused(request: Request, status: int, code: str) -> None:
    """One INFO line per 4xx: an operator sees who is being turned away and why."""
    if 400 <= status < 500:
        level = logging.DEBUG if code in _PROTOCOL_CODES else logging.INFO
        access.log(level, "refused %s %s: %d %s", request.method, request.url.path, status, code)


async def _api_error(request: Request, exc: ApiError):
    _refused(request, exc.status, exc.code)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _http_error(request: Request, exc: HTTPException):
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    _refused(request, exc.status_code, code)
    return error_response(exc.status_code, code, exc.detail, headers=exc.headers)


async def _client_gone(request: Request, exc: ClientDisconnect):
    # Nobody is left to answer: an everyday event, not an error.
    log.debug("client went away during %s %s", request.method, request.url.path)
    return Response(status_code=499)


_store_down_said = [0.0, 0]  # when the last line was logged, requests since


async def _store_down(request: Request, exc: Exception):
    # One line per 10 s of outage, not one per request a fleet sends.
    now = time.monotonic()
    if now - _store_down_said[0] >= 10:
        more = f" ({_store_down_said[1]} more request(s) since the last line)" if _store_down_said[1] else ""
        log.warning("store unavailable: %s%s", exc, more)
        _store_down_said[:] = [now, 0]
    else:
        _store_down_said[1] += 1
    return error_response(503, "store_unavailable", "the Redis store is not answering; retry shortly")


# Redis answering "no" to rota's own commands is an operator's matter (an
# ACL without a command, maxmemory reached, a read-only replica), not a bug:
# one line in the log, and a 503 that names it.
_REFUSALS = ("NOPERM", "OOM", "READONLY", "can't run this command", "no permissions")


async def _store_error(request: Request, exc: ResponseError):
    text = str(exc)
    if isinstance(exc, (NoPermissionError, OutOfMemoryError, ReadOnlyError)) or any(r in text for r in _REFUSALS):
        log.error("Redis refused %s %s: %s", request.method, request.url.path, text)
        return error_response(503, "store_refused", f"Redis refused the command: {text}")
    return await _internal(request, exc)


async def _internal(request: Request, exc: Exception):
    # Never bad input (that is a 4xx above): a bug, so log it whole.
    log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal server error")


class Refused(Exception):
    """The server must not serve this store as configured (said in the log)."""


async def _when_redis_answers(prepare, stop: asyncio.Event) -> None:
    """Retries `prepare` until Redis answers (or the server stops, or refuses)."""
    delay = 0.5
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return
        except asyncio.TimeoutError:
            pass
        try:
            await prepare()
        except (RedisError, OSError):
            delay = min(delay * 2, 5.0)
            continue
        except Refused:
            return
        log.info("Redis is back: workflows loaded, serving in full")
        return


# A request no route took is labelled as one per method (a scanner's paths
# must not each make a series, nor its made-up methods).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _unmatched(method: str) -> str:
    return f"{method if method in _METHODS else 'OTHER'} unmatched"


class RotaApp(Starlette):
    """Starlette, with the worker's hot calls served past the layers that do
    no work for them (server/hotpath.py), and every request's time tallied
    by its route's template (rota_http_request_duration_seconds)."""

    hot: Optional[HotPath] = None
    tally: Optional[Tally] = None  # the store's, once the lifespan has made it

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        began = time.perf_counter()
        try:
            hot = self.hot
            route = hot.route(scope) if hot is not None else None
            if route is None or not await hot.serve(self, scope, receive, send, route):  # type: ignore[union-attr]
                await super().__call__(scope, receive, send)
        finally:
            if self.tally is not None:
                self.tally.request(time.perf_counter() - began, scope.get("rota.route") or _unmatched(scope["method"]))


def create_app(settings: Optional[Settings] = None, redis: Optional[Redis] = None) -> Starlette:
    """`redis` lets tests share one client (e.g. fakeredis) with the app."""
    settings = settings or Settings.from_env()
    table = endpoints()
    auth = Auth(settings.auth, settings.admin_token, settings.metrics_token)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        client = redis if redis is not None else connect(settings)
        lean = connect_lean(settings) if redis is None else None
        store = Store.from_settings(client, settings, lean)
        token_store = TokenStore(client, store.prefix, store.scripts)
        # A real Redis gets a second, retry-free client for pub/sub (see
        # connect_pubsub); in-process stores share the one client.
        pubsub_client = connect_pubsub(settings) if redis is None and settings.redis_url else client
        notifier = Notifier(pubsub_client, store.wake_channel)
        def revoked(token_id: str) -> None:
            auth.revoked(token_id)
            notifier.wake_all()  # each parked claim and open tail re-checks its token

        notifier.listen(token_store.channel, revoked, auth.reset)
        app.state.settings, app.state.redis, app.state.store, app.state.notifier = settings, client, store, notifier
        app.state.tokens = token_store
        app.tally = store.tally  # type: ignore[attr-defined]
        app.state.metrics_flusher = Flusher(store, settings.metrics_flush_secs, lambda: notifier.open_streams)
        app.state.exposition = Exposition()
        log.info("store: %s", describe(settings))
        log.info("auth: %s", "on (every route but /healthz and /openapi.json needs a token)" if auth.enabled
                 else "off (anyone who can reach the port can run commands on the workers)")
        async def prepare() -> None:
            """What needs Redis before the server serves in full."""
            refused = await auth_off_refusal(settings, token_store)
            if refused:
                # Not ready, so every route but the public ones answers 503;
                # `rota server` exits (app.state.on_refused).
                app.state.refused = refused
                log.error("%s", refused)
                app.state.on_refused()
                raise Refused(refused)
            await store.upgrade()
            await auth.start(token_store)
            if settings.workflows_dir:
                await load_directory(store, settings.workflows_dir)
            app.state.ready.set()

        app.state.ready = asyncio.Event()
        stop_waiting = asyncio.Event()
        waiting = None
        try:
            await prepare()
        except Refused:
            pass
        except (RedisError, OSError) as exc:
            # Start anyway, answering 503 meanwhile: an orchestrator may well
            # start Redis and rota together, in either order.
            log.warning("waiting for Redis at %s (%s); /healthz answers 503 until it answers",
                        describe(settings), exc)
            waiting = asyncio.create_task(_when_redis_answers(prepare, stop_waiting))
        await notifier.start(wait=app.state.ready.is_set())
        upkeep_stop = asyncio.Event()
        upkeep = asyncio.create_task(auth.upkeep(upkeep_stop))
        flushing = asyncio.create_task(app.state.metrics_flusher.run_forever(upkeep_stop))
        reaper_task, scheduler_task, reaper_stop = None, None, asyncio.Event()
        if settings.api_only:
            log.info("API_ONLY=1: this process runs no reaper and no scheduler")
            if not settings.redis_url:
                log.warning("API_ONLY=1 with the embedded store: nothing will ever reap expired leases"
                            " or fire a schedule")
        else:
            reaper_task = asyncio.create_task(reaper.run_forever(store, settings.reap_interval_secs, reaper_stop))
            scheduler_task = asyncio.create_task(
                scheduler.run_forever(store, settings.schedule_interval_secs, reaper_stop))
            log.info("reaper: every %.1fs; scheduler: every %.1fs", settings.reap_interval_secs,
                     settings.schedule_interval_secs)
        scheme = "https" if settings.ssl_certfile else "http"
        log.info("rota listening on %s://%s:%d", scheme, settings.host, settings.port)
        try:
            yield
        finally:
            reaper_stop.set()
            upkeep_stop.set()
            stop_waiting.set()
            for task in (reaper_task, scheduler_task, upkeep, waiting, flushing):
                if task and not (await asyncio.wait({task}, timeout=5))[0]:
                    task.cancel()
            await notifier.stop()
            if redis is None:
                await client.aclose()
                if lean is not None:
                    await lean.aclose()
                if pubsub_client is not client:
                    await pubsub_client.aclose()

    guard = dict(allowed_hosts=settings.allowed_hosts, origins=settings.cors_origins,
                 max_body_bytes=settings.max_body_bytes, body_timeout_secs=settings.body_timeout_secs,
                 auth=settings.auth)
    middleware = [Middleware(ui.UiHeaders), Middleware(RequestGuard, **guard)]
    if settings.cors_origins:
        # No CORS headers at all unless asked: seed 002 is permissive when
        # CORS_ORIGINS is unset, which no server that runs shell can afford.
        middleware.insert(0, Middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
            expose_headers=["Idempotent-Replayed", "X-Next-Offset", "X-Next-Cursor", "X-Prev-Cursor"]))
    app = RotaApp(
        routes=routing.routes(table),
        middleware=middleware,
        exception_handlers={
            ApiError: _api_error,
            ClientDisconnect: _client_gone,
            HTTPException: _http_error,
            RedisConnectionError: _store_down,
            RedisTimeoutError: _store_down,
            ResponseError: _store_error,
            ConnectionError: _store_down,
            Exception: _internal,
        },
        lifespan=lifespan,
    )
    app.hot = HotPath(table, RequestGuard(None, **guard), app.exception_handlers)  # type: ignore[arg-type]
    app.state.auth = auth
    app.state.endpoints = table
    # Why the server refuses to serve its store, if it does (see prepare);
    # `rota server` replaces on_refused with a stop of the process.
    app.state.refused = None
    app.state.on_refused = lambda: None
    app.state.openapi = msgspec.json.encode(openapi.build(table, title="rota", version=__version__))
    return app
