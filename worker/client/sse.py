"""Reading `text/event-stream` bodies: lines as SSE ends them, and the
events they make (the subset rota's server sends)."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from typing import AsyncIterator, Optional


@dataclass
class SseEvent:
    name: str
    data: str
    id: Optional[str] = None


@dataclass
class SseParser:
    """Turns `text/event-stream` lines into events (the subset rota's server sends)."""

    _name: Optional[str] = None
    _data: list[str] = field(default_factory=list)
    _id: Optional[str] = None

    def feed(self, line: str) -> Optional[SseEvent]:
        if not line:
            event = SseEvent(self._name or "message", "\n".join(self._data), self._id) if self._data else None
            self._name, self._data, self._id = None, [], None
            return event
        if line.startswith(":"):  # keep-alive comment
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._name = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


_SSE_LINE_END = re.compile(r"\r\n|\r|\n")


async def sse_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The lines of a `text/event-stream` body, read as it arrives.

    SSE ends lines only at CRLF, CR or LF. httpx's aiter_lines() also splits
    at U+2028, U+0085, \\x1c and the like (str.splitlines), which JSON leaves
    unescaped in a log chunk's data, cutting an event's data in two.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # SSE is always UTF-8
    buffer = ""
    async for chunk in chunks:
        scan_from = max(len(buffer) - 1, 0)  # the buffer holds no line end, bar a final CR
        buffer += decoder.decode(chunk)
        start = 0
        for end in _SSE_LINE_END.finditer(buffer, scan_from):
            if end.group() == "\r" and end.end() == len(buffer):
                break  # maybe the first half of a CRLF split between reads
            yield buffer[start : end.start()]
            start = end.end()
        buffer = buffer[start:]
    if buffer.endswith("\r"):
        yield buffer[:-1]
    # Anything else left is an unterminated line, which SSE discards.
