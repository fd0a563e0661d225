"""Operational endpoints: liveness/readiness for probes, and the API's own
description at /openapi.json. Neither needs a token."""

from __future__ import annotations

import asyncio

from msgspec import Struct
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from .. import __version__
from ..http import JSON, error_response
from ..redis_conn import describe
from ..routing import Endpoint


HEALTH_PING_SECS = 2.0


class Health(Struct, kw_only=True):
    ok: bool
    store: str  # "redis" or "embedded"
    redis: str  # the store's address, password masked
    reaper: bool
    pubsub: bool
    auth: bool
    version: str
    # This process's parked long-poll claims and open SSE tails.
    waiting_claims: int
    open_streams: int


async def healthz(request: Request) -> JSON:
    state = request.app.state
    if not state.ready.is_set():
        return error_response(503, "store_unavailable",
                              f"starting: waiting for Redis at {describe(state.settings)}")
    try:
        # Bounded: the client's own retries ride out a restart for ~5 s,
        # longer than a probe waits; a probe wants a prompt 503.
        async with asyncio.timeout(HEALTH_PING_SECS):
            await state.redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        return error_response(503, "store_unavailable", f"redis is not answering: {exc or 'timed out'}")
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
    ))


async def openapi(request: Request) -> Response:
    return Response(request.app.state.openapi, media_type="application/json")


endpoints = [
    Endpoint("GET", "/healthz", healthz, "public", "Liveness and readiness: 503 while Redis is not answering",
             response=Health, errors=(503,), tag="operations"),
    Endpoint("GET", "/openapi.json", openapi, "public", "This API's OpenAPI 3.1 description", tag="operations"),
]
