"""Connection-level limits uvicorn does not have: a cap on open connections
(MAX_CONNECTIONS) answered with a JSON 503, a deadline for a request's
headers (BODY_TIMEOUT_SECS), and closing a connection answered before its
body arrived, so a client that connects and trickles or sends nothing
(slowloris) cannot hold sockets forever. uvicorn arms its idle timer only
after a first response, never while headers arrive, and puts it off with
every byte of a body nobody reads.
"""

from __future__ import annotations

import asyncio
from typing import Optional

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .models import ErrorBody, ErrorDetail


def _canned(status: str, code: str, message: str) -> bytes:
    body = msgspec.json.encode(ErrorBody(ErrorDetail(code, message)))
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\nretry-after: 1\r\n\r\n").encode() + body


_OVERLOADED = _canned("503 Service Unavailable", "overloaded",
                      "this server is at its connection limit (MAX_CONNECTIONS); retry shortly")
_TOO_SLOW = _canned("408 Request Timeout", "request_timeout",
                    "the request headers did not arrive in time (BODY_TIMEOUT_SECS)")


class GuardedHttpProtocol(HttpToolsProtocol):
    max_connections = 4096
    header_timeout = 30.0

    _header_timer: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(_OVERLOADED)
            transport.close()
            return
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # Answered before the body was all read (401, 404, 415, ...): uvicorn
        # would keep discarding whatever still trickles in, each byte
        # putting off its idle timer, forever. Close instead.
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            self.server_state.total_requests += 1
            self.transport.close()
            return
        super().on_response_complete()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

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


def protocol_class(max_connections: int, header_timeout: float) -> type[GuardedHttpProtocol]:
    return type("RotaHttpProtocol", (GuardedHttpProtocol,),
                {"max_connections": max_connections, "header_timeout": header_timeout})
