"""The daemon's own HTTP/1.1 client for its calls to the server.

httpx spent about 0.8 ms of the worker's CPU on each request here (its
request and response models, httpcore's pool and its checks of each idle
socket, anyio's streams), more than a fifth of all a `true` job cost the
worker, and a busy worker makes one request per job. This one writes a
request in one `write` on a kept-alive connection and parses the answer
in the connection's protocol: about 40 us.

It speaks only what the daemon needs of HTTP/1.1: a request with a JSON
body, an answer framed by Content-Length or chunked (or ended by the
server closing the connection), keep-alive unless the server says
`Connection: close`, TLS with the context httpx would make (the same
certificates: SSL_CERT_FILE and SSL_CERT_DIR too). Where httpx would go
through a proxy (HTTP_PROXY and the like) or the client was given a
transport of its own (tests), the daemon's `DaemonClient` keeps httpx.

A request fails as httpx's did: `Unreachable` when the server does not
answer (no connection, reset, nothing for `timeout` seconds: the timeout
is of silence, as httpx's read timeout is, not of the whole request),
`ApiError` for an error status. A request on a kept-alive connection
that the server closed before answering anything (its idle timeout
racing the request) is sent once more on a new connection: the daemon's
calls are all safe to repeat (claims carry a claim id, results are
replayed, log chunks carry their sequence).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Optional
from urllib.parse import urlsplit

import httpx
import msgspec

import server
from worker.client.api import Client
from worker.client.errors import ApiError, Unreachable

# Idle connections kept for reuse; more than this many at once are closed
# after their answer (httpx's default keep-alive pool is 20 too).
MAX_IDLE = 20
# An answer's head longer than this is not from a rota server.
_MAX_HEAD = 64 * 1024
# Seconds of silence a request may wait: httpx's default, as the Client has it.
DEFAULT_TIMEOUT = 10.0


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 as this client reads it."""


class Response:
    """An answer: what the daemon reads of one (httpx.Response's names)."""

    __slots__ = ("status_code", "reason_phrase", "headers", "content")

    def __init__(self, status_code: int, reason_phrase: str, headers: dict[str, str], content: bytes):
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers  # names in lower case
        self.content = content

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class _Connection(asyncio.Protocol):
    """One connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self.transport: Optional[asyncio.Transport] = None
        self.closed = False
        self._buf = bytearray()
        self._waiter: Optional[asyncio.Future[Response]] = None
        self._head: Optional[tuple[int, str, dict[str, str]]] = None
        self._body_start = 0
        self._length: Optional[int] = None  # None: chunked, or to the end of the connection
        self._chunked = False
        self._chunks: list[bytes] = []
        self._chunk_at = 0  # where the next chunk's size line starts
        self.keep_alive = True
        self.answered_any = False  # a byte of the answer arrived
        self._timeout = DEFAULT_TIMEOUT
        self._activity = 0.0
        self._written = 0
        self._timer: Optional[asyncio.TimerHandle] = None

    # ---- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Nothing asked: the server speaks out of turn. Not reusable.
            self._fail(ProtocolError("the server sent data with no request"))
            return
        self.answered_any = True
        self._activity = self._loop.time()
        self._buf += data
        try:
            self._parse()
        except ProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> Optional[bool]:
        if self._waiter is not None and self._head is not None and self._length is None and not self._chunked:
            self._answer(bytes(self._buf[self._body_start:]))  # an answer framed by the end of the connection
        return None  # close our side

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            if self._head is not None and self._length is None and not self._chunked:
                self._answer(bytes(self._buf[self._body_start:]))
            else:
                self._waiter.set_exception(
                    exc or ConnectionResetError("the server closed the connection before it answered"))
        self._stop_timer()

    # ---- a request --------------------------------------------------------------------

    async def request(self, data: bytes, timeout: float) -> Response:
        assert self.transport is not None and self._waiter is None
        self._waiter = waiter = self._loop.create_future()
        self._timeout = timeout
        self._activity = self._loop.time()
        self.transport.write(data)
        self._written = self.transport.get_write_buffer_size()  # (what is still to go out)
        self._timer = self._loop.call_later(timeout, self._check_silence)
        try:
            return await waiter
        except BaseException:
            self.close()  # cancelled or failed mid-answer: the connection's state is unknown
            raise
        finally:
            self._stop_timer()
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _check_silence(self) -> None:
        self._timer = None
        if self._waiter is None or self._waiter.done():
            return
        now = self._loop.time()
        assert self.transport is not None
        written = self.transport.get_write_buffer_size()
        if written != self._written:  # a long body still going out is not silence
            self._written = written
            self._activity = now
        idle = now - self._activity
        if idle >= self._timeout:
            self._fail(TimeoutError(f"no answer within {self._timeout:g}s"))
        else:
            self._timer = self._loop.call_later(self._timeout - idle, self._check_silence)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    def _answer(self, body: bytes) -> None:
        assert self._head is not None and self._waiter is not None
        status, reason, headers = self._head
        self._head = None
        if not self._waiter.done():
            self._waiter.set_result(Response(status, reason, headers, body))

    # ---- parsing ----------------------------------------------------------------------

    def _parse(self) -> None:
        buf = self._buf
        while self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise ProtocolError("the answer's head is too long")
                return
            head = self._read_head(bytes(buf[:end]))
            del buf[:end + 4]
            if head is not None:  # (None: an interim 1xx answer, skipped)
                self._head = head
                self._body_start = 0
                self._chunk_at = 0
                self._chunks = []
        if self._chunked:
            self._parse_chunks()
        elif self._length is not None and len(buf) >= self._length:
            body = bytes(buf[:self._length])
            if len(buf) > self._length:  # more than it said: not a connection to use again
                self.keep_alive = False
            buf.clear()
            self._answer(body)

    def _read_head(self, head: bytes) -> Optional[tuple[int, str, dict[str, str]]]:
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
        status = int(code)
        if 100 <= status < 200:
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise ProtocolError(f"a malformed header line: {line[:80]!r}")
            key = name.strip().lower().decode("latin-1")
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        connection = headers.get("connection", "").lower()
        self.keep_alive = version == b"HTTP/1.1" and "close" not in connection
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if status in (204, 304):
            self._length = 0
        elif self._chunked:
            self._length = None
        elif "content-length" in headers:
            try:
                self._length = int(headers["content-length"])
            except ValueError:
                raise ProtocolError(f"a bad Content-Length: {headers['content-length'][:40]!r}") from None
        else:
            self._length = None  # to the end of the connection
            self.keep_alive = False
        return status, reason.decode("latin-1"), headers

    def _parse_chunks(self) -> None:
        buf = self._buf
        while True:
            line_end = buf.find(b"\r\n", self._chunk_at)
            if line_end < 0:
                return
            size_text = bytes(buf[self._chunk_at:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"a bad chunk size: {size_text[:20]!r}") from None
            if size == 0:
                # then trailers, if any, and an empty line (the size line's CRLF starts it when none)
                if buf.find(b"\r\n\r\n", line_end) < 0:
                    return
                buf.clear()
                self._answer(b"".join(self._chunks))
                return
            start = line_end + 2
            if len(buf) < start + size + 2:
                return
            self._chunks.append(bytes(buf[start:start + size]))
            del buf[:start + size + 2]
            self._chunk_at = 0


class Http1Pool:
    """Kept-alive connections to one server, each carrying one request at a time."""

    def __init__(self, server_url: str, headers: dict[str, str], ssl_context: Optional[ssl.SSLContext]):
        url = urlsplit(server_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {server_url!r}")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._prefix = url.path.rstrip("/")
        self._ssl = ssl_context if url.scheme == "https" else None
        fixed = {"Host": url.netloc.rpartition("@")[2], "User-Agent": f"rota-worker/{server.__version__}",
                 "Accept": "*/*", **headers}
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in fixed.items()).encode("latin-1")
        self._idle: list[_Connection] = []

    async def request(self, method: str, path: str, body: Optional[bytes], timeout: float) -> Response:
        data = b"%s %s HTTP/1.1\r\n%s" % (method.encode(), (self._prefix + path).encode(), self._fixed)
        if body is not None:
            data += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        else:
            data += b"Content-Length: 0\r\n\r\n" if method in ("POST", "PUT", "PATCH") else b"\r\n"
        while self._idle:
            conn = self._idle.pop()
            if conn.closed:
                continue
            try:
                return self._done(conn, await conn.request(data, timeout))
            except (ConnectionError, ProtocolError):
                if conn.answered_any:
                    raise
                # The server closed it as we sent (its idle timeout): once more, on a new one.
                break
        conn = await self._connect(timeout)
        return self._done(conn, await conn.request(data, timeout))

    def _done(self, conn: _Connection, response: Response) -> Response:
        if conn.keep_alive and not conn.closed and len(self._idle) < MAX_IDLE:
            conn.answered_any = False
            self._idle.append(conn)
        else:
            conn.close()
        return response

    async def _connect(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(loop.create_connection(
            lambda: _Connection(loop), self._host, self._port, ssl=self._ssl,
            server_hostname=self._host if self._ssl is not None else None), timeout)
        return conn

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class DaemonClient(Client):
    """The rota Client, its requests sent by an `Http1Pool` where httpx would
    connect straight to the server (no transport given, no proxy for the
    URL); otherwise exactly the Client."""

    def __init__(self, server_url: str = "http://127.0.0.1:3000", *, token: Optional[str] = None,
                 transport: Optional[httpx.AsyncBaseTransport] = None, **kwargs: Any):
        super().__init__(server_url, token=token, transport=transport, **kwargs)
        self.wire: Optional[Http1Pool] = None
        if transport is None and self._direct():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            context = httpx.create_ssl_context() if self.server.startswith("https:") else None
            try:
                self.wire = Http1Pool(self.server, headers, context)
            except ValueError:
                self.wire = None

    def _direct(self) -> bool:
        """httpx would connect to the server itself, through no proxy."""
        try:
            return self._http._transport_for_url(httpx.URL(self.server)) is self._http._transport
        except (AttributeError, httpx.InvalidURL):  # another httpx: keep to it
            return False

    async def aclose(self) -> None:
        if self.wire is not None:
            self.wire.close()
        await super().aclose()

    async def _send(self, method: str, path: str, body: msgspec.Struct | None = None, *,
                    content: bytes | None = None, headers: dict[str, str] | None = None,
                    params: dict[str, str] | list[tuple[str, str]] | None = None,
                    timeout: float | None = None) -> Any:
        if self.wire is None or content is not None or headers is not None or params is not None:
            return await super()._send(method, path, body, content=content, headers=headers, params=params,
                                       timeout=timeout)
        data = msgspec.json.encode(body) if body is not None else None
        try:
            response = await self.wire.request(method, path, data, timeout if timeout is not None else DEFAULT_TIMEOUT)
        except (OSError, TimeoutError, ProtocolError, ssl.SSLError) as exc:
            raise Unreachable(self.server, exc) from exc
        if response.is_error:
            raise ApiError.from_response(response)  # type: ignore[arg-type]  # (the names it reads)
        return response
