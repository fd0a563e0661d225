"""The Redis client: a real server from REDIS_URL, or embedded fakeredis."""

from __future__ import annotations

import asyncio
from typing import Any, Optional
from urllib.parse import urlsplit

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import parse_url
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from redis.asyncio.retry import Retry

from .redis_lean import LeanRedis, supported
from .settings import Settings


class WaitingConnectionPool(ConnectionPool):
    """At most `max_connections`, and a caller beyond waits (up to `timeout`)
    for one to come free instead of failing at once, as redis-py's default
    pool does. redis-py's own BlockingConnectionPool does the same through a
    Condition and a timeout scope on every command: measured, 25 us more per
    command than this semaphore, whose uncontended path never suspends."""

    def __init__(self, *, timeout: float, **kwargs: Any):
        super().__init__(**kwargs)
        self._wait_secs = timeout
        self._slots = asyncio.Semaphore(self.max_connections)

    async def get_connection(self, *args: Any, **kwargs: Any):
        if self._slots.locked():
            try:
                async with asyncio.timeout(self._wait_secs):
                    await self._slots.acquire()
            except TimeoutError:
                raise ConnectionError(f"no Redis connection came free within {self._wait_secs:g}s"
                                      " (REDIS_MAX_CONNECTIONS)") from None
        else:
            await self._slots.acquire()
        try:
            return await super().get_connection(*args, **kwargs)
        except BaseException:
            self._slots.release()
            raise

    async def release(self, connection: Any) -> None:
        try:
            await super().release(connection)
        finally:
            self._slots.release()


def connect(settings: Settings) -> Redis:
    if not settings.redis_url:
        import fakeredis

        return fakeredis.FakeAsyncRedis(decode_responses=True)
    # Retries ride out a Redis restart. A retried script may run twice only
    # if the first reply was lost; every script is safe then: a re-sent claim
    # carries the same lease id and gets the same claim back, and a repeated
    # complete/fail finds its settled record and answers as the first did.
    #
    # A bounded pool that waits: redis-py's default pool fails at once when
    # its connections are all busy, so a burst (a thousand long-polls woken,
    # a thousand tails reading) answered 503. Here a burst queues for up to
    # REDIS_POOL_TIMEOUT_SECS instead, and Redis never sees more than
    # REDIS_MAX_CONNECTIONS connections from this process.
    pool = WaitingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_secs,
        decode_responses=True,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=8),
        retry_on_error=[ConnectionError, TimeoutError, BusyLoadingError],
        socket_keepalive=True,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


def connect_lean(settings: Settings) -> Optional[LeanRedis]:
    """The scripts' own pipelined connection (server/redis_lean.py), for a
    real Redis reached by redis:// or unix://; None otherwise (the embedded
    store, TLS), when the scripts go through `connect`'s client."""
    if not settings.redis_url or not supported(settings.redis_url):
        return None
    return LeanRedis(settings.redis_url)


def describe(settings: Settings) -> str:
    """The store, fit for a log line or /healthz."""
    if not settings.redis_url:
        return "embedded in-memory store (fakeredis, Lua via lupa; data is lost on exit)"
    return shown_address(settings.redis_url)


def shown_address(url: str) -> str:
    """Scheme, host, port and database only, rebuilt from what redis-py itself
    reads from the URL: anything else in it (a user, a password, query
    options) may be a secret however it is spelt, e.g. `?passw%6Frd=...`,
    which redis-py decodes and authenticates with."""
    scheme = urlsplit(url).scheme.lower()
    try:
        parts = parse_url(url)
    except ValueError:
        return f"{scheme}://(an address that cannot be read)"
    db = parts.get("db", 0)
    if scheme == "unix":
        return f"unix://{parts.get('path', '')}?db={db}"
    host = parts.get("host") or "localhost"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{parts.get('port', 6379)}/{db}"


def connect_pubsub(settings: Settings) -> Redis:
    """The notifier's own client, with no retries: a dropped pub/sub
    connection must surface to the notifier, which re-subscribes every
    channel it needs. The client's own reconnect re-subscribes only the
    channels whose SUBSCRIBE had succeeded, silently losing the rest."""
    if not settings.redis_url:
        raise ValueError("the embedded store shares one client; there is nothing to connect")
    return Redis.from_url(settings.redis_url, decode_responses=True, socket_keepalive=True,
                          retry=Retry(NoBackoff(), retries=0))
