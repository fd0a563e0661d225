"""The scripts' own Redis connection: one per process, every call pipelined
on it, for the state changes of the hot path (claim, heartbeat, complete,
fail and their batch forms all run one script each).

redis-py spends about 45 us of CPU per command here (its pool, retry and
timeout scopes, the connection's health check, command packing, the
response callbacks); this client spends under 10: a command is packed by
hiredis, written with every other command issued in the same turn of the
event loop (one write for all of them, as ioredis's auto-pipelining does),
and answered from a queue of futures as hiredis parses the replies. Redis
runs commands one at a time anyway, so one connection loses no
parallelism; a cancelled caller leaves its reply to be read and dropped,
so the connection never goes out of step.

Only the scripts go through here (FCALL and FUNCTION LOAD, EVALSHA and EVAL
after NOSCRIPT: see server/scripts.py); reads, pub/sub and everything else
keep redis-py. redis:// and unix:// URLs only: rediss://
(TLS) keeps redis-py's client for the scripts too.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Any, Optional

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import parse_url
from redis.exceptions import BusyLoadingError, ConnectionError, NoScriptError, ResponseError

# As redis_conn.connect's client: retried calls ride out a Redis restart
# (every script is safe to run twice; see there).
RETRIES = 8
BACKOFF_BASE, BACKOFF_CAP = 0.05, 1.0
CONNECT_TIMEOUT_SECS = 5.0


def supported(url: str) -> bool:
    return url.lower().startswith(("redis://", "unix://"))


class _Pipe(asyncio.Protocol):
    """One connection: commands out in order, replies matched to them in order."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
        self._waiting: collections.deque[asyncio.Future] = collections.deque()
        self._out: list[bytes] = []
        self._transport: Optional[asyncio.Transport] = None
        self._loop = asyncio.get_running_loop()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Each write is whole commands: Nagle would hold one back for
            # the last one's acknowledgement.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def call(self, *args: Any) -> asyncio.Future:
        if self.closed:
            raise ConnectionError("the connection to Redis was lost")
        future = self._loop.create_future()
        self._waiting.append(future)
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(hiredis.pack_command(args))
        return future

    def _flush(self) -> None:
        if self.closed or self._transport is None:
            return
        out, self._out = self._out, []
        self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                future = self._waiting.popleft()
                if not future.done():  # its caller may have gone (cancelled)
                    future.set_result(reply)
        except hiredis.ProtocolError as exc:  # out of step: nothing after can be trusted
            self._fail(ConnectionError(f"Redis protocol error: {exc}"))
            if self._transport is not None:
                self._transport.abort()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._fail(ConnectionError(f"the connection to Redis was lost{f': {exc}' if exc else ''}"))

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class LeanRedis:
    def __init__(self, url: str):
        if not supported(url):
            raise ValueError("the lean client speaks redis:// and unix:// only")
        parts = parse_url(url)
        self._path = parts.get("path") if url.lower().startswith("unix://") else None
        self._host, self._port = parts.get("host", "localhost"), int(parts.get("port", 6379))
        self._db = int(parts.get("db", 0) or 0)
        self._username, self._password = parts.get("username"), parts.get("password")
        self._pipe: Optional[_Pipe] = None
        self._connecting: Optional[asyncio.Task] = None

    async def _connect(self) -> _Pipe:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(CONNECT_TIMEOUT_SECS):
            if self._path:
                _, pipe = await loop.create_unix_connection(_Pipe, self._path)
            else:
                _, pipe = await loop.create_connection(_Pipe, self._host, self._port)
            try:
                if self._password:
                    auth = (self._username, self._password) if self._username else (self._password,)
                    _raise(await pipe.call("AUTH", *auth))
                if self._db:
                    _raise(await pipe.call("SELECT", self._db))
            except BaseException:
                pipe.close()
                raise
        return pipe

    async def _live(self) -> _Pipe:
        if self._pipe is not None and not self._pipe.closed:
            return self._pipe
        # Concurrent callers share one connection attempt.
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            self._pipe = await asyncio.shield(connecting)
        except OSError as exc:
            raise ConnectionError(f"cannot reach Redis: {exc}") from None
        except TimeoutError:
            raise ConnectionError("Redis did not answer within 5s") from None
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None
        return self._pipe

    async def evalsha(self, sha: str, source: str, keys: list[str], args: list[Any]) -> Any:
        """The script's reply; redis-py's exceptions for what goes wrong,
        so the app's handlers answer as they do for redis-py's client."""
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:  # Redis restarted, or SCRIPT FLUSH: it learns the script again
            return await self.execute("EVAL", source, len(keys), *keys, *args)

    async def execute(self, *args: Any) -> Any:
        """One command's reply (FCALL, FUNCTION LOAD, EVALSHA), retried as
        evalsha() says; redis-py's exceptions."""
        delay = BACKOFF_BASE
        for attempt in range(RETRIES + 1):
            try:
                pipe = await self._live()
                return _raise(await pipe.call(*args))
            except (ConnectionError, BusyLoadingError):
                if attempt == RETRIES:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_CAP)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None


def _raise(reply: Any) -> Any:
    """An error reply as the exception redis-py raises for it (NOPERM,
    OOM, READONLY, LOADING, NOSCRIPT each have their own class)."""
    if isinstance(reply, ResponseError):
        raise BaseParser.parse_error(str(reply))
    return reply
