"""A response's head and body leave in one write (server/connections.py):
one system call and one packet per answer instead of two."""

from __future__ import annotations

from types import SimpleNamespace

from server.connections import _OneWrite


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def cycle(chunked) -> SimpleNamespace:
    return SimpleNamespace(response_started=False, chunked_encoding=chunked)


def test_a_head_of_known_length_goes_out_with_the_body():
    real, c = Recorder(), cycle(None)
    t = _OneWrite(real, c)
    t.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the response starts: at once
    c.response_started, c.chunked_encoding = True, False
    t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert real.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    t.write(b"{}")
    assert real.writes[1:] == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    assert t.is_closing() is False  # the rest is the transport's own


def test_a_streams_head_goes_out_at_once_and_each_chunk_as_it_comes():
    real, c = Recorder(), cycle(None)
    t = _OneWrite(real, c)
    c.response_started, c.chunked_encoding = True, True
    for part in (b"HEAD", b"chunk1", b"chunk2"):
        t.write(part)
    assert real.writes == [b"HEAD", b"chunk1", b"chunk2"]


def test_a_held_head_is_not_lost_when_the_answer_is_cut_short():
    real, c = Recorder(), cycle(None)
    t = _OneWrite(real, c)
    c.response_started, c.chunked_encoding = True, False
    t.write(b"HEAD")
    t.close()
    assert real.writes == [b"HEAD"] and real.closed
