"""Operational endpoints: liveness/readiness for probes, and the API's own
description at /openapi.json. Neither needs a token; /healthz tells more
to a token that may read."""

from __future__ import annotations

import asyncio
import os
from typing import Optional

from msgspec import Struct
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from .. import __version__
from ..http import JSON, error_response
from ..redis_conn import describe
from ..routing import Endpoint
from ..slots import trust


HEALTH_PING_SECS = 2.0


class Health(Struct, kw_only=True, omit_defaults=True):
    ok: bool
    # The rest only for a caller who may read (a token with the read scope,
    # or anyone with auth off): to anyone else the store's address, the
    # version and the load are reconnaissance, and a probe needs the status.
    store: Optional[str] = None  # "redis" or "embedded"
    redis: Optional[str] = None  # the store's scheme, host, port and db
    reaper: Optional[bool] = None
    pubsub: Optional[bool] = None
    auth: Optional[bool] = None
    version: Optional[str] = None
    # This process's parked long-poll claims and open SSE tails.
    waiting_claims: Optional[int] = None
    open_streams: Optional[int] = None
    # Which process answered, and how many share the port (`--workers`).
    pid: Optional[int] = None
    processes: Optional[int] = None


def _not_ok() -> JSON:
    return error_response(503, "store_unavailable", "the store is not answering")


async def _shows_detail(request: Request) -> bool:
    """With auth on, only a token with the read scope sees more than ok; a
    token that is sent is checked as anywhere else (401, 403)."""
    auth = request.app.state.auth
    if not auth.enabled:
        return True
    if "authorization" not in request.headers:
        return False
    await auth.authorize(request, "read")
    trust(request.scope)
    return True


async def healthz(request: Request) -> JSON:
    state = request.app.state
    if not state.ready.is_set():
        return _not_ok()  # and no token can be checked before Redis has answered
    detail = await _shows_detail(request)
    try:
        # Bounded: the client's own retries ride out a restart for ~5 s,
        # longer than a probe waits; a probe wants a prompt 503.
        async with asyncio.timeout(HEALTH_PING_SECS):
            await state.redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        if not detail:
            return _not_ok()
        return error_response(503, "store_unavailable", f"redis is not answering: {exc or 'timed out'}")
    if not detail:
        return JSON(Health(ok=True))
    return JSON(Health(
        ok=True,
        store="redis" if state.settings.redis_url else "embedded",
        redis=describe(state.settings),
        reaper=not state.settings.api_only,
        pubsub=state.notifier.connected.is_set(),
        auth=state.auth.enabled,
        version=__version__,
        waiting_claims=state.notifier.waiting_claims,
        open_streams=state.notifier.open_streams,
        pid=os.getpid(),
        processes=state.settings.server_workers,
    ))


async def openapi(request: Request) -> Response:
    return Response(request.app.state.openapi, media_type="application/json")


endpoints = [
    Endpoint("GET", "/healthz", healthz, "public",
             "Liveness and readiness: 503 while Redis is not answering. Anyone gets {ok}; a token with the read"
             " scope (or anyone, with auth off) gets the detail, and a token sent is checked (401, 403)",
             response=Health, errors=(401, 403, 503), tag="operations"),
    Endpoint("GET", "/openapi.json", openapi, "public", "This API's OpenAPI 3.1 description", tag="operations"),
]
