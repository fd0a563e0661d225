"""The front door: what a connection may cost before any token is checked,
below the application, in a subclass of uvicorn's httptools protocol.

- Connection slots (MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS): see
  server/slots.py. A request that passes a route's token check marks its
  connection through `scope["rota.trust"]`.
- A request's line and headers must arrive within HEADER_TIMEOUT_SECS (408),
  fit in MAX_HEADER_BYTES and MAX_HEADERS (431). uvicorn arms its idle timer
  only after a first response, and httptools has no header limit at all: an
  unfinished header is buffered (and re-copied) for as long as it grows.
- An answer sent before the request's body has all arrived (401, 404, 413,
  415, ...) says `Connection: close`, since nothing more can follow on that
  connection; then what the client still sends is read and dropped for up
  to LINGER_SECS, so it can finish sending and read the answer instead of
  meeting a reset. uvicorn would instead discard the body for as long as
  it trickles, each byte putting off its idle timer.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Optional

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from . import limits
from .models import ErrorBody, ErrorDetail
from .slots import Slots, address_group, trust_callback
from .sse import ABORT


def _canned(status: str, code: str, message: str) -> bytes:
    body = msgspec.json.encode(ErrorBody(ErrorDetail(code, message)))
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\nretry-after: 1\r\n\r\n").encode() + body


_OVERLOADED = _canned("503 Service Unavailable", "overloaded",
                      "this server is at its connection limit (MAX_CONNECTIONS); retry shortly")
_TOO_SLOW = _canned("408 Request Timeout", "request_timeout",
                    "the request line and headers did not arrive in time (HEADER_TIMEOUT_SECS)")
_TOO_LARGE = _canned("431 Request Header Fields Too Large", "headers_too_large",
                     f"the request line and headers may be at most {limits.MAX_HEADER_BYTES} bytes"
                     f" in at most {limits.MAX_HEADERS} headers")


class _TooManyHeaders(Exception):
    """Raised in the parser's header callback: it stops the parser at once."""


class _EarlyAnswerCycle(RequestResponseCycle):
    """A request whose answer, if it starts before the body has all
    arrived, says `Connection: close`: pooling clients otherwise send their
    next request on a connection about to close (EPIPE, ECONNRESET)."""

    closes = False

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and not self.response_started and self.more_body:
            self.closes = True
            headers = list(message.get("headers", ()))
            if not any(name.lower() == b"connection" for name, _ in headers):
                headers.append((b"connection", b"close"))
            await super().send({**message, "headers": headers})
            # uvicorn would close the moment the answer is written; the
            # protocol closes instead, once the client has stopped sending.
            self.keep_alive = True
            return
        await super().send(message)


class _OneWrite:
    """The transport as one response's cycle sees it. uvicorn writes a
    response's head, then its body: two system calls and two packets for
    every answer. This holds a head whose length is known (not a stream's,
    whose head must go out at once) until the body's first write and sends
    both in one."""

    __slots__ = ("_transport", "_cycle", "_head", "_done")

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle):
        self._transport = transport
        self._cycle = cycle
        self._head: Optional[bytes] = None
        self._done = False

    def write(self, data: bytes) -> None:
        if not self._done:
            if self._head is not None:
                data = self._head + data
                self._head = None
                self._done = True
            elif self._cycle.response_started:  # (a 100 Continue is written before)
                if self._cycle.chunked_encoding is False:
                    self._head = data
                    return
                self._done = True
        self._transport.write(data)

    def close(self) -> None:
        if self._head is not None:  # a response cut short: what there was goes out
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpProtocol(HttpToolsProtocol):
    slots: Slots  # one per server: see protocol_class
    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._head = 0  # bytes of the current request's line and headers so far
        self._too_many = False  # a request had more than MAX_HEADERS
        self._header_timer: Optional[asyncio.TimerHandle] = None
        self._linger_timer: Optional[asyncio.TimerHandle] = None
        self._lingering = False
        self._stopping = False
        self._trust = trust_callback(self.slots, weakref.ref(self))

    # ---- connection slots ----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        for conn in self.slots.admit(self, address_group(self.client)):
            conn._push_out()
        if not transport.is_closing():
            self._arm_header_timer()

    def _push_out(self) -> None:
        if self.transport.is_closing():
            return
        # Say why, unless an answer is under way or out already (lingering).
        if not self._lingering and (self.cycle is None or self.cycle.response_complete):
            self.transport.write(_OVERLOADED)
        self.transport.close()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.slots.release(self)
        self._disarm_header_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        self._stopping = True
        if self._lingering:
            self.transport.close()
            return
        super().shutdown()

    # ---- reading a request ---------------------------------------------------------
    # Per request this costs a few microseconds over uvicorn's own: the
    # parser's progress is read off the request's cycle, not counted in
    # callbacks, and only a request whose body is still arriving gets the
    # early-answer cycle.

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the answer is out: what still comes is dropped (see _linger)
        self._unset_keepalive_if_required()
        # Fed in pieces no larger than what the head may still grow by, so an
        # over-long head is caught at its first byte too many, before the
        # parser has buffered more. Bytes in a row that end no head and are no
        # body (a head in the making, or trailers) count as head.
        rest: Any = data
        while rest:
            if self._head >= limits.MAX_HEADER_BYTES:
                self._refuse(_TOO_LARGE)
                return
            room = limits.MAX_HEADER_BYTES - self._head
            if len(rest) > room:
                rest = memoryview(rest)
                chunk, rest = rest[:room], rest[room:]
            else:
                chunk, rest = rest, b""
            cycle = self.cycle
            if cycle is not None:
                body, more = len(cycle.body), cycle.more_body
            try:
                self.parser.feed_data(chunk)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            except httptools.HttpParserError:
                if self._too_many:
                    self._refuse(_TOO_LARGE)
                else:
                    msg = "Invalid HTTP request received."
                    self.logger.warning(msg)
                    self.send_400_response(msg)
                return
            if self.cycle is not cycle:  # a head ended
                self._head = 0
                self._disarm_header_timer()
            elif cycle is not None and (len(cycle.body) != body or cycle.more_body != more):
                self._head = 0  # body arrived, or the request ended
            else:
                self._head += len(chunk)
            if self._lingering or self.transport.is_closing():
                return
        if self._head and self._header_timer is None:
            self._arm_header_timer()  # the next request's head has begun
        cycle = self.cycle
        if cycle is not None and cycle.more_body and type(cycle) is RequestResponseCycle:
            # Its task has not run yet: the class takes effect before its first send.
            cycle.__class__ = _EarlyAnswerCycle

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["rota.trust"] = self._trust  # type: ignore[typeddict-unknown-key]
        # An event stream drops a client that stopped reading (server/sse.py):
        # close() would wait for the buffered bytes to drain, abort does not.
        self.scope.setdefault("extensions", {})[ABORT] = self.transport.abort  # type: ignore[index]

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # A HEAD answer writes no body to carry its head.
        if cycle is not None and cycle is not before and self.scope["method"] != "HEAD":
            cycle.transport = _OneWrite(self.transport, cycle)  # type: ignore[assignment]

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's own, with a count: raising stops the parser at once.
        if len(self.headers) >= limits.MAX_HEADERS:
            self._too_many = True
            raise _TooManyHeaders
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    # ---- after an answer -----------------------------------------------------------

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and getattr(cycle, "closes", False):
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            if cycle.more_body and not self._stopping:
                self._linger()
            else:
                self.transport.close()
            return
        super().on_response_complete()

    def _refuse(self, answer: bytes) -> None:
        self._disarm_header_timer()
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an answer to an earlier request is under way: no second one
            return
        self.transport.write(answer)
        self._linger()

    def _linger(self) -> None:
        """Half-closes (the answer is complete), then reads and drops what the
        client still sends until it closes, or for LINGER_SECS at most."""
        self._lingering = True
        self._disarm_header_timer()
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger_timer = self.loop.call_later(limits.LINGER_SECS, self.transport.close)

    # ---- the header deadline ---------------------------------------------------------

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        # Between requests on a keep-alive connection uvicorn's own idle
        # timer applies; this one only cuts a request whose headers stall.
        if self.cycle is not None and not self.cycle.response_complete:
            return
        if not self.transport.is_closing():
            self.transport.write(_TOO_SLOW)
            self.transport.close()


def protocol_class(max_connections: int, per_address: int, header_timeout: float) -> type[GuardedHttpProtocol]:
    return type("RotaHttpProtocol", (GuardedHttpProtocol,),
                {"slots": Slots(max_connections, per_address), "header_timeout": header_timeout})
