"""A minimal HTTP/1.1 keep-alive client for benchmarks.

httpx spends more CPU per request than the server under test, and client
and server share the same two cores here; this client keeps the load
generator cheap so the figures describe the server. Bodies go through
msgspec, as `rota worker`'s own client's do (worker/daemon/wire.py): a
batch's 32 claims are some 40 KB of JSON to read."""

from __future__ import annotations

import asyncio

import msgspec


class Conn:
    def __init__(self, host: str, port: int, token: str | None = None):
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> "Conn":
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def close(self) -> None:
        if self.writer:
            self.writer.close()

    async def request(self, method: str, path: str, body: bytes = b"", ctype: str = "application/json"):
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: {ctype}\r\n{self.auth}"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        data = await self.reader.readexactly(length) if length else b""
        return status, data

    async def post_json(self, path: str, obj=None):
        status, data = await self.request("POST", path, msgspec.json.encode(obj) if obj is not None else b"")
        return status, (msgspec.json.decode(data) if data else None)
