"""worker/client.py: decoding, error messages, and the SSE log tail."""

import json

import httpx
import pytest

from server.models import JobOut
from worker.client.api import Client
from worker.client.errors import ApiError, RotaError, Unreachable, is_transient
from worker.client.sse import SseEvent, SseParser, sse_lines


def client_for(handler) -> Client:
    return Client("http://rota.test/", transport=httpx.MockTransport(handler))


def chunk_json(seq: int, data: str) -> str:
    return (
        f'{{"workflow_id":"wf","job_id":"j","sequence":{seq},"data":{data!r},'
        f'"timestamp_ms":1,"stream":"stdout"}}'
    ).replace("'", '"')


JOB_JSON = (
    '{"id":"j","name":"j","status":"success","command":"true","depends_on":[],'
    '"required_labels":[],"max_retries":0,"attempt":0}'
)


async def test_claim_decodes_null_and_a_job():
    answers = [b"null", (
        b'{"job":{"job_id":"j","workflow_id":"wf","command":"true","required_labels":[],'
        b'"retry_policy":{"max_retries":1,"backoff":{"Fixed":{"delay_secs":2}}},"attempt":0,'
        b'"upstream_outputs":{},"enqueued_at_ms":1,"delayed_until_ms":0},'
        b'"lease":{"lease_id":"L","job_id":"j","workflow_id":"wf","worker_id":"w","ttl_secs":30,"granted_at_ms":1}}'
    )]

    async def handler(request):
        assert request.headers["content-type"] == "application/json"
        return httpx.Response(200, content=answers.pop(0))

    async with client_for(handler) as client:
        assert await client.claim("w", [], 30, 1) is None
        claim = await client.claim("w", [], 30, 1)
    assert claim.lease.lease_id == "L" and claim.job.retry_policy.backoff.Fixed.delay_secs == 2


async def test_server_down_message():
    async with Client("http://127.0.0.1:9") as client:
        with pytest.raises(Unreachable, match=r"^cannot reach rota server at http://127.0.0.1:9: ") as info:
            await client.workers()
    assert is_transient(info.value)


async def test_error_body_message_and_fields():
    async def handler(request):
        body = {"error": {"code": "not_found", "message": "no workflow 'nope'", "details": {"id": "nope"}}}
        return httpx.Response(404, json=body)

    async with client_for(handler) as client:
        with pytest.raises(ApiError) as info:
            await client.status("nope")
    err = info.value
    assert str(err) == "error not_found: no workflow 'nope'"
    assert (err.status, err.code, err.details) == (404, "not_found", {"id": "nope"})
    assert not is_transient(err)


async def test_error_without_a_json_body():
    async def handler(request):
        return httpx.Response(502, text="Bad Gateway from the proxy")

    async with client_for(handler) as client:
        with pytest.raises(ApiError, match="error http_502: Bad Gateway from the proxy") as info:
            await client.run("wf")
    assert is_transient(info.value)


async def test_unexpected_body_is_a_clear_error():
    async def handler(request):
        return httpx.Response(200, json={"surprise": True})

    async with client_for(handler) as client:
        with pytest.raises(RotaError, match="unexpected response from rota server at http://rota.test"):
            await client.status("wf")


async def test_ids_are_escaped_in_paths():
    seen = []

    async def handler(request):
        seen.append(request.url.raw_path)
        return httpx.Response(202, json={})

    async with client_for(handler) as client:
        await client.cancel("a/b c")
    assert seen == [b"/api/workflows/a%2Fb%20c/cancel"]


async def test_submit_sends_the_document_as_is_and_run_flag():
    seen = []

    async def handler(request):
        seen.append((request.headers["content-type"], request.url.params.get("run"), request.content))
        return httpx.Response(201, json={
            "id": "wf1", "name": "n", "trigger": "", "status": "queued", "jobs": [], "created_at_ms": 1,
        })

    async with client_for(handler) as client:
        assert (await client.submit(b"name: n\n", "application/yaml", run=True)).id == "wf1"
        await client.submit(b"{}", "application/json", run=False)
    assert seen == [("application/yaml", "true", b"name: n\n"), ("application/json", None, b"{}")]


def test_sse_parser():
    parser = SseParser()
    lines = [
        "retry: 1000", "",
        ": keep-alive", "",
        "id: 1-0", "event: log", "data: {\"a\":1}", "",
        "event: end", "data: line1", "data:line2", "",
    ]
    events = [e for e in map(parser.feed, lines) if e is not None]
    assert events == [SseEvent("log", '{"a":1}', "1-0"), SseEvent("end", "line1\nline2", None)]


async def pieces(*chunks: bytes):
    for chunk in chunks:
        yield chunk


async def test_sse_lines_end_only_at_cr_lf_or_crlf():
    # U+2028, U+2029, U+0085 and \x1c-\x1e end lines for str.splitlines(), not for SSE.
    body = "data: a\u2028b\u2029c\x85d\x1ce\x1df\x1eg\x0bh\x0ci\r\ndata: é\rdata: 3\n\r\r\n".encode()
    want = ["data: a\u2028b\u2029c\x85d\x1ce\x1df\x1eg\x0bh\x0ci", "data: é", "data: 3", "", ""]
    assert [line async for line in sse_lines(pieces(body))] == want
    # The same bytes cut at every offset: a CRLF or a UTF-8 sequence split between reads.
    for cut in range(1, len(body)):
        assert [line async for line in sse_lines(pieces(body[:cut], body[cut:]))] == want, cut


async def test_sse_lines_a_cr_at_the_very_end_ends_a_line():
    assert [line async for line in sse_lines(pieces(b"data: x\n\r"))] == ["data: x", ""]
    assert [line async for line in sse_lines(pieces(b"data: x\n", b"unterminated"))] == ["data: x"]


async def test_follow_logs_keeps_unicode_line_separators_in_the_data():
    data = "hello\u2028world\x85\u2029!\n"
    chunk = {"workflow_id": "wf", "job_id": "j", "sequence": 0, "data": data, "timestamp_ms": 1, "stream": "stdout"}
    body = (
        f"id: 1-0\r\nevent: log\r\ndata: {json.dumps(chunk, ensure_ascii=False)}\r\n\r\n"
        f"event: end\r\ndata: {JOB_JSON}\r\n\r\n"
    ).encode()
    cut = body.index(b"\r\n") + 1  # the first CRLF's CR and LF arrive in different reads

    async def handler(request):
        return httpx.Response(200, content=pieces(body[:cut], body[cut:]), headers={"content-type": "text/event-stream"})

    async with client_for(handler) as client:
        items = [item async for item in client.follow_logs("wf", "j")]
    assert [i.data for i in items if not isinstance(i, JobOut)] == [data]
    assert isinstance(items[-1], JobOut)


async def test_follow_logs_resumes_after_a_drop_with_last_event_id():
    requests = []
    bodies = [
        # dropped after the first event, without an `end`
        f"retry: 1000\n\nid: 1-0\nevent: log\ndata: {chunk_json(0, 'a')}\n\n",
        f": keep-alive\n\nid: 2-0\nevent: log\ndata: {chunk_json(1, 'b')}\n\n"
        f"id: 2-0\nevent: end\ndata: {JOB_JSON}\n\n",
    ]

    async def handler(request):
        requests.append(request.headers.get("last-event-id"))
        return httpx.Response(200, text=bodies.pop(0), headers={"content-type": "text/event-stream"})

    async with client_for(handler) as client:
        items = [item async for item in client.follow_logs("wf", "j")]
    assert requests == [None, "1-0"]
    assert [i.data for i in items if not isinstance(i, JobOut)] == ["a", "b"]
    assert isinstance(items[-1], JobOut) and items[-1].status == "success"


async def test_follow_logs_of_an_unknown_job():
    async def handler(request):
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no job wf/x", "details": None}})

    async with client_for(handler) as client:
        with pytest.raises(ApiError, match="error not_found: no job wf/x"):
            [item async for item in client.follow_logs("wf", "x")]
