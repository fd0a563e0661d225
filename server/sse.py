"""Server-Sent Events over a Redis stream: the history, then live entries as
they are appended, then an `end` event once the thing followed is finished.

Each event carries the stream entry id as its `id:`, so a client that
reconnects with Last-Event-ID resumes exactly where it stopped. A follower
holds no Redis connection while it waits: the notifier wakes it when its
channel hears something. Job logs and run events both stream this way.

A stream holds at most one batch (SSE_BATCH_BYTES) at a time: the server
writes an event only once the client has taken enough of the last ones
(uvicorn's flow control), and a client that takes nothing for
SSE_WRITE_TIMEOUT_SECS is dropped, its batch, socket and slot freed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Callable, Optional, Protocol

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Message, Scope, Send

from .auth import Principal, principal
from .errors import ApiError, Overloaded
from .http import stream_id
from .models import ErrorBody, ErrorDetail, encoder

# Inside an open stream, how long a store failure is retried before the
# stream ends with an error event (clients then reconnect with Last-Event-ID).
STORE_RETRY_SECS = 15.0
log = logging.getLogger("rota.sse")
journal = logging.getLogger("rota.events")
# SSE ends lines only at CR/LF, but many clients split with str.splitlines(),
# which also breaks at these. Inside JSON strings their \u escapes mean the
# same text, so escaping them costs nothing and keeps such clients whole.
_LINE_BREAKS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x1c\x1d\x1e\x85\u2028\u2029"})


def event(name: str, eid: Optional[str], data: bytes) -> bytes:
    head = f"id: {eid}\n" if eid else ""
    return f"{head}event: {name}\ndata: {data.decode().translate(_LINE_BREAKS)}\n\n".encode()


def _error(code: str, message: str, retry_ms: Optional[int] = None) -> bytes:
    hint = f"retry: {retry_ms}\n" if retry_ms else ""
    return hint.encode() + event("error", None, encoder.encode(ErrorBody(ErrorDetail(code, message))))


class Feed(Protocol):
    """What a stream follows."""

    event_name: str

    async def read(self, after: str) -> tuple[list[tuple[str, Optional[bytes]]], bool]:
        """A batch of entries after `after`, oldest first, (id, None) for one
        to skip, within SSE_BATCH_BYTES/SSE_BATCH_ENTRIES; and whether more
        entries follow it."""

    async def finished(self, only_appends: bool) -> Optional[bytes]:
        """The `end` event's data once the followed thing is finished, else
        None. Called on every pass; `only_appends`: nothing but appends
        happened since the last pass (its state may be taken as read then)."""


def start(request: Request, channel: str, feed: Feed) -> StreamingResponse:
    """The streaming answer: 503 `overloaded` at MAX_STREAMS; 400 for a bad
    Last-Event-ID or ?after."""
    state = request.app.state
    if state.notifier.open_streams >= state.settings.max_streams:
        raise Overloaded(f"this server already holds {state.settings.max_streams} event streams"
                         " (MAX_STREAMS); retry shortly")
    if "last-event-id" in request.headers:
        last_id = stream_id(request.headers["last-event-id"], "Last-Event-ID")
    else:
        last_id = stream_id(request.query_params.get("after", "0-0"), "after")
    return _Stream(
        _follow(state, channel, feed, last_id, principal(request)),
        state.settings.sse_write_timeout_secs, request.url.path,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# Where the HTTP protocol (server/connections.py) puts its connection's
# abort: closing a socket whose peer reads nothing would wait forever to
# flush what is buffered for it, abort frees it at once.
ABORT = "rota.abort"


class _Stream(StreamingResponse):
    """A streaming answer whose every write must be taken by the client
    within `write_timeout` seconds (each send waits while uvicorn's buffer
    for the socket is above its high-water mark); past it, the connection
    is aborted and the stream ends, freeing its batch and its MAX_STREAMS
    slot."""

    def __init__(self, content: AsyncIterator[bytes], write_timeout: float, what: str, **kwargs):
        super().__init__(content, **kwargs)
        self.write_timeout, self.what = write_timeout, what
        self._abort: Optional[Callable[[], None]] = None

    async def __call__(self, scope: Scope, receive, send: Send) -> None:
        self._abort = scope.get("extensions", {}).get(ABORT)
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Not left to the garbage collector: the feed's watch holds a
            # MAX_STREAMS slot until the generator is closed.
            await self.body_iterator.aclose()  # type: ignore[attr-defined]

    async def stream_response(self, send: Send) -> None:
        async def timed(message: Message) -> None:
            async with asyncio.timeout(self.write_timeout):
                await send(message)

        try:
            await super().stream_response(timed)
        except TimeoutError:
            journal.info("stream %s dropped: its client took nothing for %gs (SSE_WRITE_TIMEOUT_SECS)",
                         self.what, self.write_timeout)
            if self._abort is not None:
                self._abort()


async def _follow(state, channel: str, feed: Feed, last_id: str, caller: Principal) -> AsyncIterator[bytes]:
    keepalive = state.settings.keepalive_secs
    loop = asyncio.get_running_loop()
    failing_since = None
    fresh = True  # the first pass, and one after a failure, read everything
    yield b"retry: 1000\n\n"
    async with state.notifier.watch(channel) as changed:
        while True:
            only_appends = changed.status_unchanged and not fresh
            changed.reset()  # before reading: what happens meanwhile wakes another pass
            try:
                # What `finished` needs is read first: entries appended before
                # the end are then all there when the stream is read below.
                done = await feed.finished(only_appends)
                fresh = False
                while True:
                    entries, more = await feed.read(last_id)
                    for eid, data in entries:
                        last_id = eid
                        if data is not None:
                            yield event(feed.event_name, eid, data)
                    if not more:
                        break
            except (RedisError, OSError) as exc:
                # The answer has begun: no status code can say this any more.
                # Retry (from the last id sent); past STORE_RETRY_SECS end
                # with an `error` event and a retry hint, never a silent cut.
                fresh = True
                failing_since = failing_since or loop.time()
                if loop.time() - failing_since > STORE_RETRY_SECS:
                    log.warning("stream of %s ended: store unavailable (%s)", channel, exc)
                    yield _error("store_unavailable", "the Redis store is not answering; reconnect with"
                                 " Last-Event-ID", retry_ms=2000)
                    return
                await asyncio.sleep(0.5)
                continue
            failing_since = None
            if done is not None:
                yield event("end", last_id, done)
                return
            # Checked before the wait too: a stream that opened, or was woken
            # and reset, after the shutdown's wake-all would otherwise wait a
            # whole keepalive, past uvicorn's grace period (as wait_unless_gone).
            if not state.notifier.draining:
                try:
                    await asyncio.wait_for(changed.event.wait(), keepalive)
                except asyncio.TimeoutError:
                    yield b": keep-alive\n\n"
            if state.notifier.draining:
                return  # the client reconnects (with Last-Event-ID) to a live replica
            try:  # a stream opened with a token revoked since reads no more
                await state.auth.check_alive(caller)
            except ApiError as exc:
                yield _error(exc.code, exc.message)
                return
