"""One Redis pub/sub connection per server process, fanning out wake-ups.

The Lua scripts PUBLISH on `wake` (a job became ready: the message is its
label-set key; `~<ms>:<key>` for one that becomes ready in that many ms) and
on per-job channels (a log chunk arrived or the job's state changed).
Waiting long-poll claims and SSE log tails register here instead of each
holding a Redis connection of their own, so a thousand idle workers or
tailing operators cost one connection, not a thousand.

One job, one wake-up: each ready job is a wake-up "token" handed to the
longest-waiting claim that can take it and holds none yet. Waking every
matching claim would run a claim script per idle worker per job. A claim
that spends its token on another queue's job hands the token on as it
leaves, so no ready job is left without a claim woken for it.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager, contextmanager
from typing import AsyncIterator, Callable, Iterator, Optional

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("rota.notifier")


class ClaimWaiter:
    __slots__ = ("labels", "exclusive", "event", "token")

    def __init__(self, labels: frozenset[str], exclusive: bool = False):
        self.labels = labels
        self.exclusive = exclusive  # takes no job without labels (as serves() in _ready.lua)
        self.event = asyncio.Event()
        # The label key of the ready job this claim was woken for, until its
        # next attempt spends it (None: free to be woken).
        self.token: Optional[str] = None

    def wants(self, label_key: str) -> bool:
        # An exclusive claim woken for an unlabelled job would find nothing,
        # spending the one wake-up another waiting worker needed.
        if self.exclusive and not label_key:
            return False
        return all(label in self.labels for label in label_key.split(",") if label)

    def take_token(self) -> Optional[str]:
        """Before an attempt: the wake-up it answers, if any; free to be woken again."""
        token, self.token = self.token, None
        self.event.clear()
        return token


class Watch:
    """One watcher of a job channel: `event` is set by any message;
    `status_unchanged` stays true while every message since the last reset
    was a log append ('log') or an in-job report ('info': progress, a step,
    resources...), so a log tail or a long-poll heartbeat can skip
    re-reading the job's state."""

    __slots__ = ("event", "status_unchanged")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.status_unchanged = False

    def reset(self) -> None:
        self.event.clear()
        self.status_unchanged = True

    def fire(self, data: str) -> None:
        self.status_unchanged = self.status_unchanged and data in ("log", "info")
        self.event.set()


class Notifier:
    def __init__(self, redis: Redis, wake_channel: str):
        self._redis = redis
        self._wake = wake_channel
        # Insertion-ordered: the longest-waiting claim comes first.
        self._claims: dict[ClaimWaiter, None] = {}
        self._watchers: dict[str, set[Watch]] = {}
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

    async def start(self, wait: bool = True) -> None:
        """`wait=False` when Redis is known to be down: don't hold startup."""
        self._task = asyncio.create_task(self._run(), name="rota-notifier")
        if not wait:
            return
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
        self.wake_all()

    @contextmanager
    def claim_waiter(self, labels: list[str], exclusive: bool = False) -> Iterator[ClaimWaiter]:
        """Register before trying to claim, so a job enqueued between the
        failed attempt and the wait still wakes us."""
        waiter = ClaimWaiter(frozenset(labels), exclusive)
        self._claims[waiter] = None
        try:
            yield waiter
        finally:
            del self._claims[waiter]
            if waiter.token is not None:  # woken, but leaving without spending it
                self._offer(waiter.token)

    @asynccontextmanager
    async def watch(self, channel: str, counted: bool = True) -> AsyncIterator[Watch]:
        """`counted`: an SSE tail, held to MAX_STREAMS (a long-poll heartbeat
        is not: one per running job, and a worker must always reach it)."""
        watch = Watch()
        watchers = self._watchers.setdefault(channel, set())
        watchers.add(watch)
        self._streams += counted
        try:
            if len(watchers) == 1:
                await self._subscribe(channel)
            yield watch
        finally:
            self._streams -= counted
            watchers.discard(watch)
            if not watchers:
                del self._watchers[channel]
                await self._unsubscribe(channel)

    @asynccontextmanager
    async def watch_many(self, channels: list[str]) -> AsyncIterator[Watch]:
        """One watcher of several job channels (a worker's heartbeat for all
        its leases), subscribed in one command; not counted, as above."""
        watch = Watch()
        fresh = []
        for channel in channels:
            watchers = self._watchers.setdefault(channel, set())
            if not watchers:
                fresh.append(channel)
            watchers.add(watch)
        try:
            if fresh:
                await self._subscribe(*fresh)
            yield watch
        finally:
            gone = []
            for channel in dict.fromkeys(channels):
                watchers = self._watchers.get(channel)
                if watchers is not None:
                    watchers.discard(watch)
                    if not watchers:
                        del self._watchers[channel]
                        gone.append(channel)
            if gone:
                await self._unsubscribe(*gone)

    def _dispatch(self, channel: str, data: str) -> None:
        listener = self._listeners.get(channel)
        if listener is not None:
            listener(data)
        elif channel == self._wake:
            if data.startswith("~"):
                delay_ms, _, label_key = data[1:].partition(":")
                # a hair late rather than early: the claim must find it due
                asyncio.get_running_loop().call_later(int(delay_ms) / 1000 + 0.002, self._offer, label_key)
            else:
                self._offer(data)
        else:
            for watch in self._watchers.get(channel, ()):
                watch.fire(data)

    def _offer(self, label_key: str) -> None:
        """Wake the longest-waiting claim that can take a job needing
        `label_key` and is not already woken; none such: a claim will find
        the job when it next asks."""
        for waiter in self._claims:
            if waiter.token is None and waiter.wants(label_key):
                waiter.token = label_key
                waiter.event.set()
                return

    def wake_claims(self) -> None:
        for waiter in self._claims:
            waiter.event.set()

    def wake_all(self) -> None:
        """Every parked claim and tail re-checks (after a reconnect messages
        may have been lost; after a revocation tokens must be re-checked)."""
        self.wake_claims()
        for watches in self._watchers.values():
            for watch in watches:
                watch.fire("")  # anything may have changed

    async def _subscribe(self, *channels: str) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.subscribe(*channels)
            except Exception:  # noqa: BLE001 - a broken connection raises more than RedisError
                # Drop the connection: the reader loop then reconnects and
                # subscribes every watched channel, these included.
                await self._close_pubsub()

    async def _unsubscribe(self, *channels: str) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.unsubscribe(*channels)
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
        lost = False  # said once per outage, not once per reconnect attempt
        while not self._stopping:
            try:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(self._wake, *self._listeners, *self._watchers.keys())
                if lost:
                    log.info("pub/sub reconnected")
                    lost = False
                self.connected.set()
                for hook in self._reconnect_hooks:
                    hook()
                self.wake_all()
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
                if not lost:
                    log.warning("pub/sub connection lost (%s); reconnecting", exc)
                    lost = True
                else:
                    log.debug("pub/sub still down (%s); next try in %.2fs", exc, delay)
                await self._close_pubsub()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
