"""What every HTTP request must pass before it is routed.

- Host allow-list: a web page can rebind its own DNS name to 127.0.0.1 and
  then talk to a loopback server as "same origin"; its requests still carry
  its own name in `Host`, so only the names the server answers to are let in.
- Cross-origin writes: a browser sends a "simple" cross-origin POST (no
  body, or text/plain) without asking first, and only then applies CORS to
  the answer, too late for a server that runs shell. A request that changes
  something and carries an `Origin` not in CORS_ORIGINS is refused, unless
  it names the very host the request is for: the dashboard's own page.
  That last needs the Host to be one the server knows (ALLOWED_HOSTS), or
  auth on: a page that rebinds its own name to this server looks
  same-origin, but it has no token to send.
- Body size (MAX_BODY_BYTES, announced or streamed) and arrival time
  (BODY_TIMEOUT_SECS): a client that trickles its body is cut off with 408
  instead of holding a connection and a handler forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Optional
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import PayloadTooLarge, RequestTimeout
from .http import error_response

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(host: str) -> str:
    """The name part of a Host header: `[::1]:3000` -> `[::1]`, `a.b:80` -> `a.b`;
    anything malformed comes back whole, to match no allowed name."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]" if rest == "" or (rest.startswith(":") and rest[1:].isdigit()) else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() else host


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    name = host_name(host)
    for pattern in allowed:
        pattern = pattern.lower()
        if name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


def guarded_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[Optional[str], Optional[str], Optional[bytes]]:
    """What the guard reads of a request's head, in one pass: its Host
    (a name no allow-list holds when there are several), Origin and
    Content-Length."""
    host = origin = length = None
    hosts = 0
    for name, value in headers:
        if name == b"host":
            host = value.decode("latin-1")
            hosts += 1
        elif name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"content-length":
            length = value
    return (host if hosts <= 1 else "(several Host headers)"), origin, length


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Optional[tuple[str, ...]],
        origins: tuple[str, ...],
        max_body_bytes: int,
        body_timeout_secs: float,
        auth: bool = False,
    ):
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.origins = frozenset(origins)
        # Only with auth on (settings refuse it otherwise): a page still needs
        # a token for every write, and a browser never sends one by itself.
        self.any_origin = "*" in self.origins
        self.same_origin_ok = auth or allowed_hosts is not None
        self.max_body_bytes = max_body_bytes
        self.body_timeout_secs = body_timeout_secs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host, origin, length = guarded_headers(scope["headers"])
        refusal = self.refusal(scope["method"], host, origin, length)
        if refusal is not None:
            return await refusal(scope, receive, send)
        await self.app(scope, self.limited(receive), send)

    def refusal(self, method: str, host: Optional[str], origin: Optional[str], length: Optional[bytes]):
        if self.allowed_hosts is not None and not host_allowed(host or "", self.allowed_hosts):
            return error_response(400, "invalid_host",
                                  f"this server does not answer to Host {host!r}; see ALLOWED_HOSTS",
                                  {"allowed_hosts": list(self.allowed_hosts)})
        if origin is not None and method not in _SAFE_METHODS and origin not in self.origins and not self.any_origin \
                and not (self.same_origin_ok and _same_host(origin, host)):
            return error_response(403, "cross_origin_refused",
                                  f"requests from web origin {origin!r} may not change anything here;"
                                  " list it in CORS_ORIGINS to allow it", {"origin": origin})
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return error_response(413, "body_too_large", f"request body exceeds {self.max_body_bytes} bytes",
                                  headers={"Connection": "close"})
        return None

    def limited(self, receive: Receive) -> Receive:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_secs
        seen = 0
        complete = False

        async def limited_receive() -> Message:
            nonlocal seen, complete
            if complete:  # only disconnect news from here on: no deadline
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _body_late(self.body_timeout_secs) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > self.max_body_bytes:
                    raise _too_large(self.max_body_bytes)
            else:
                complete = True
            return message

        return limited_receive


def _same_host(origin: str, host: Optional[str]) -> bool:
    """Whether `origin` (scheme://host[:port]) names the Host the request
    was sent to (behind a TLS proxy the scheme may differ; the host may not)."""
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(host) and netloc.lower() == host.strip().lower()  # type: ignore[union-attr]


def _too_large(limit: int) -> PayloadTooLarge:
    exc = PayloadTooLarge("body_too_large", f"request body exceeds {limit} bytes")
    exc.headers = {"Connection": "close"}
    return exc


def _body_late(secs: float) -> RequestTimeout:
    exc = RequestTimeout("request_timeout", f"the request body did not arrive within {secs:g}s (BODY_TIMEOUT_SECS)")
    exc.headers = {"Connection": "close"}
    return exc
