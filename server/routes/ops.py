"""Operational endpoints: liveness/readiness for load balancers and probes."""

from __future__ import annotations

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.routing import Route

from ..http import JSON, error_response


async def healthz(request: Request) -> JSON:
    state = request.app.state
    try:
        await state.redis.ping()
    except (RedisError, OSError) as exc:
        return error_response(503, "store_unavailable", f"redis is not answering: {exc}")
    return JSON({
        "ok": True,
        "store": "redis" if state.settings.redis_url else "embedded",
        "reaper": not state.settings.api_only,
        "pubsub": state.notifier.connected.is_set(),
    })


routes = [Route("/healthz", healthz, methods=["GET"])]
