"""One Redis pub/sub connection per server process, fanning out wake-ups.

The Lua scripts PUBLISH on `wake` (a job became ready: the message is its
label-set key) and on per-job channels (a log chunk arrived or the job's
state changed). Waiting long-poll claims and SSE log tails register here
instead of each holding a Redis connection of their own, so a thousand idle
workers or tailing operators cost one connection, not a thousand.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager, contextmanager
from typing import AsyncIterator, Callable, Iterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("rota.notifier")


class ClaimWaiter:
    __slots__ = ("labels", "event")

    def __init__(self, labels: frozenset[str]):
        self.labels = labels
        self.event = asyncio.Event()

    def wants(self, label_key: str) -> bool:
        return all(label in self.labels for label in label_key.split(",") if label)


class Notifier:
    def __init__(self, redis: Redis, wake_channel: str):
        self._redis = redis
        self._wake = wake_channel
        self._claims: set[ClaimWaiter] = set()
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._streams = 0
        # Channels with one in-process listener each (token revocations),
        # and what to do after a reconnect, when messages may have been lost.
        self._listeners: dict[str, Callable[[str], None]] = {}
        self._reconnect_hooks: list[Callable[[], None]] = []
        self._pubsub = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        # Set when the process begins to shut down: parked long-polls answer
        # null and SSE tails close, so clients move to another replica at once.
        self.draining = False
        self.connected = asyncio.Event()

    def listen(self, channel: str, on_message: Callable[[str], None], on_reconnect: Callable[[], None]) -> None:
        """Before start(): call `on_message` with each message on `channel`,
        and `on_reconnect` whenever the connection was lost and is back."""
        self._listeners[channel] = on_message
        self._reconnect_hooks.append(on_reconnect)

    @property
    def waiting_claims(self) -> int:
        return len(self._claims)

    @property
    def open_streams(self) -> int:
        return self._streams

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rota-notifier")
        try:
            await asyncio.wait_for(self.connected.wait(), timeout=5)
        except asyncio.TimeoutError:
            log.warning("pub/sub not connected yet; long-poll falls back to periodic re-checks")

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            # Bounded: a cancel swallowed inside the client must not hang shutdown.
            await asyncio.wait({self._task}, timeout=2)
        await self._close_pubsub()

    def begin_shutdown(self) -> None:
        self.draining = True
        self._wake_everyone()

    @contextmanager
    def claim_waiter(self, labels: list[str]) -> Iterator[ClaimWaiter]:
        """Register before trying to claim, so a job enqueued between the
        failed attempt and the wait still wakes us."""
        waiter = ClaimWaiter(frozenset(labels))
        self._claims.add(waiter)
        try:
            yield waiter
        finally:
            self._claims.discard(waiter)

    @asynccontextmanager
    async def watch(self, channel: str) -> AsyncIterator[asyncio.Event]:
        event = asyncio.Event()
        watchers = self._watchers.setdefault(channel, set())
        watchers.add(event)
        self._streams += 1
        try:
            if len(watchers) == 1:
                await self._subscribe(channel)
            yield event
        finally:
            self._streams -= 1
            watchers.discard(event)
            if not watchers:
                del self._watchers[channel]
                await self._unsubscribe(channel)

    def _dispatch(self, channel: str, data: str) -> None:
        listener = self._listeners.get(channel)
        if listener is not None:
            listener(data)
        elif channel == self._wake:
            for waiter in self._claims:
                if data.startswith("~") or waiter.wants(data):
                    waiter.event.set()
        else:
            for event in self._watchers.get(channel, ()):
                event.set()

    def wake_claims(self) -> None:
        for waiter in self._claims:
            waiter.event.set()

    def _wake_everyone(self) -> None:
        # After a reconnect we may have missed messages: let everyone re-check.
        self.wake_claims()
        for events in self._watchers.values():
            for event in events:
                event.set()

    async def _subscribe(self, channel: str) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.subscribe(channel)
            except Exception:  # noqa: BLE001 - a broken connection raises more than RedisError
                # Drop the connection: the reader loop then reconnects and
                # subscribes every watched channel, this one included.
                await self._close_pubsub()

    async def _unsubscribe(self, channel: str) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.unsubscribe(channel)
            except Exception:  # noqa: BLE001 - as above; a stale subscription is harmless
                pass

    async def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.aclose()
            except Exception:  # closing a broken connection may raise anything
                pass
            self._pubsub = None

    async def _run(self) -> None:
        delay = 0.05
        while not self._stopping:
            try:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(self._wake, *self._listeners, *self._watchers.keys())
                if not self.connected.is_set():
                    log.debug("pub/sub connected")
                self.connected.set()
                for hook in self._reconnect_hooks:
                    hook()
                self._wake_everyone()
                delay = 0.05
                while not self._stopping and self._pubsub is not None:
                    msg = await self._pubsub.get_message(timeout=None)
                    if msg and msg["type"] == "message":
                        self._dispatch(_text(msg["channel"]), _text(msg["data"]))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, RuntimeError, AttributeError) as exc:
                # RuntimeError/AttributeError: the connection was closed under
                # the reader (see _subscribe); treat it like any drop.
                if self._stopping:
                    return
                self.connected.clear()
                log.warning("pub/sub connection lost (%s); reconnecting in %.2fs", exc, delay)
                await self._close_pubsub()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
