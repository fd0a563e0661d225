"""worker/daemon/wire.py: the daemon's own HTTP/1.1 client, against a
scripted server on a real socket (answers framed every way HTTP/1.1
allows, kept-alive connections, a server that closes an idle one, one that
never answers) and against a real rota server."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from server.models import RegisterRequest
from worker.client.errors import ApiError, Unreachable
from worker.daemon import protocol
from worker.daemon.wire import DaemonClient


class Scripted:
    """A server on a free port that answers each request with the next of
    `answers` (raw bytes; None: close the connection without a word; ...:
    say nothing at all) and records what it was sent."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[tuple[bytes, dict[str, str], bytes]] = []
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None
        self.url = ""
        self._serving: set[asyncio.Task] = set()

    async def __aenter__(self) -> "Scripted":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None
        self.server.close()
        for task in self._serving:
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._serving.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((lines[0].encode(), headers, body))
                answer = self.answers.pop(0)
                if answer is None:
                    break
                if answer is ...:
                    await asyncio.sleep(3600)
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def answer(status: int, body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n{head}\r\n".encode() + body


async def test_a_call_goes_on_the_wire_with_its_token_and_json_body():
    async with Scripted(answer(200, b"null")) as server:
        async with DaemonClient(server.url + "/prefix/", token="tok") as client:
            assert client.wire is not None
            await protocol.register(client, RegisterRequest(worker_id="w", labels=["a"]))
    line, headers, body = server.requests[0]
    assert line == b"POST /prefix/api/workers/register HTTP/1.1"
    assert headers["authorization"] == "Bearer tok" and headers["content-type"] == "application/json"
    assert headers["host"] == server.url.removeprefix("http://")
    assert json.loads(body)["worker_id"] == "w" and json.loads(body)["labels"] == ["a"]


async def test_answers_framed_by_length_by_chunks_or_by_the_end_of_the_connection():
    chunked = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
               b"4\r\n[1, \r\n3;ext=1\r\n2, \r\n2\r\n3]\r\n0\r\nx-trailer: y\r\n\r\n")
    to_close = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n[4]"
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + answer(200, b"[5]")
    async with Scripted(answer(200, b"[0]"), chunked, to_close, interim) as server:
        async with DaemonClient(server.url) as client:
            got = [json.loads((await client._send("GET", "/api/x")).content) for _ in range(4)]
    assert got == [[0], [1, 2, 3], [4], [5]]
    assert server.connections == 2  # kept alive until the server said close


async def test_a_kept_alive_connection_is_used_again():
    async with Scripted(*[answer(200, b"{}")] * 5) as server:
        async with DaemonClient(server.url) as client:
            for _ in range(5):
                await client._send("POST", "/api/x")
    assert server.connections == 1


async def test_a_connection_the_server_closed_before_answering_is_tried_once_more_on_a_new_one():
    # The first answer is kept alive; the second request finds it closed by
    # the server (its idle timeout, as uvicorn's) and goes again.
    async with Scripted(answer(200, b"[1]"), None, answer(200, b"[2]")) as server:
        async with DaemonClient(server.url) as client:
            assert json.loads((await client._send("POST", "/api/x")).content) == [1]
            assert json.loads((await client._send("POST", "/api/x")).content) == [2]
    assert server.connections == 2 and len(server.requests) == 3


async def test_error_answers_are_api_errors_as_the_client_reads_them():
    body = json.dumps({"error": {"code": "lease_lost", "message": "gone", "details": {"a": 1}}}).encode()
    async with Scripted(answer(409, body), answer(502, b"<html>bad gateway</html>")) as server:
        async with DaemonClient(server.url) as client:
            with pytest.raises(ApiError) as lost:
                await client._send("POST", "/api/x")
            with pytest.raises(ApiError) as gateway:
                await client._send("POST", "/api/x")
    assert (lost.value.status, lost.value.code, lost.value.message, lost.value.details) == (409, "lease_lost", "gone",
                                                                                           {"a": 1})
    assert (gateway.value.status, gateway.value.code) == (502, "http_502")
    assert gateway.value.message == "<html>bad gateway</html>"


async def test_a_server_that_never_answers_is_unreachable_after_the_timeout():
    async with Scripted(...) as server:
        async with DaemonClient(server.url) as client:
            with pytest.raises(Unreachable, match=r"^cannot reach rota server at .*: no answer within 0.2s"):
                await client._send("POST", "/api/x", timeout=0.2)


async def test_no_server_is_unreachable_as_the_client_says_it():
    async with DaemonClient("http://127.0.0.1:9") as client:
        with pytest.raises(Unreachable, match=r"^cannot reach rota server at http://127.0.0.1:9: "):
            await client._send("GET", "/api/workers")


async def test_a_cancelled_request_does_not_leave_its_connection_for_the_next():
    async with Scripted(..., answer(200, b"[2]")) as server:
        async with DaemonClient(server.url) as client:
            pending = asyncio.create_task(client._send("POST", "/api/jobs/claims"))
            while not server.requests:
                await asyncio.sleep(0.01)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            assert json.loads((await client._send("POST", "/api/x")).content) == [2]
    assert server.connections == 2


async def test_httpx_stays_where_it_would_use_a_proxy_or_was_given_a_transport(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    async with DaemonClient("http://rota.test:3000") as client:
        assert client.wire is None
    monkeypatch.delenv("HTTP_PROXY")
    async with DaemonClient("http://rota.test:3000", transport=httpx.MockTransport(lambda r: httpx.Response(200))) as client:
        assert client.wire is None
        await client._send("GET", "/api/x")
    async with DaemonClient("http://rota.test:3000") as client:
        assert client.wire is not None


@pytest.mark.slow
async def test_the_daemons_calls_against_a_real_server(server, label):
    async with DaemonClient(server.url) as client:
        assert client.wire is not None
        await protocol.register(client, RegisterRequest(worker_id=f"wire-{label}", labels=[label]))
        assert any(w.worker_id == f"wire-{label}" for w in await client.workers())
        with pytest.raises(ApiError) as refused:
            await client.complete("no-such-lease", {})
    assert refused.value.status in (404, 409)


async def test_the_timeout_is_of_silence_since_the_request_went_out_not_twice_that():
    """When the timer fires and the request has sat in the send buffer or
    been answered with nothing since it was written, that is silence."""
    from worker.daemon.wire import _Connection

    class Transport(asyncio.Transport):
        def write(self, data):
            pass

        def get_write_buffer_size(self):
            return 0

        def abort(self):
            pass

    loop = asyncio.get_running_loop()
    conn = _Connection(loop)
    conn.connection_made(Transport())
    pending = asyncio.ensure_future(conn.request(b"POST / HTTP/1.1\r\n\r\n", 3600))
    await asyncio.sleep(0)
    conn._activity -= 3600  # as if the timeout had passed without a byte either way
    conn._check_silence()
    with pytest.raises(TimeoutError):
        await pending
