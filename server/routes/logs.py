"""Job logs: history as JSON, and a live Server-Sent Events tail.

The SSE stream sends the history, then live chunks as they are appended,
with the Redis stream entry id as each event's `id:` so a client that
reconnects with Last-Event-ID resumes exactly where it stopped. When the job
is finished it sends an `end` event carrying the job's final state and
closes, so `curl -N` exits.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..auth import Principal, principal
from ..errors import ApiError, Overloaded
from ..http import stream_id
from ..models import ErrorBody, ErrorDetail, LogChunk, encoder
from ..routing import Endpoint, Param
from ..store import TERMINAL

BATCH = 500
# Inside an open stream, how long a store failure is retried before the
# stream ends with an error event (clients then reconnect with Last-Event-ID).
STORE_RETRY_SECS = 15.0
_STORE_GONE = b"retry: 2000\nevent: error\ndata: " + encoder.encode(ErrorBody(ErrorDetail(
    "store_unavailable", "the Redis store is not answering; reconnect with Last-Event-ID"))) + b"\n\n"
log = logging.getLogger("rota.logs")
# SSE ends lines only at CR/LF, but many clients split with str.splitlines(),
# which also breaks at these. Inside JSON strings their \u escapes mean the
# same text, so escaping them costs nothing and keeps such clients whole.
_LINE_BREAKS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x1c\x1d\x1e\x85\u2028\u2029"})


async def history(request: Request) -> Response:
    store, p = request.app.state.store, request.path_params
    await store.job_state(p["wf"], p["job"])  # 404 for an unknown job
    entries = await store.read_logs(p["wf"], p["job"])
    body = b"[" + b",".join(chunk.encode() for _, chunk in entries) + b"]"
    return Response(body, media_type="application/json")


async def stream(request: Request) -> StreamingResponse:
    state, p = request.app.state, request.path_params
    wf, job = p["wf"], p["job"]
    await state.store.job_state(wf, job)  # 404 before any streaming starts
    if state.notifier.open_streams >= state.settings.max_streams:
        raise Overloaded(f"this server already holds {state.settings.max_streams} log streams"
                         " (MAX_STREAMS); retry shortly")
    if "last-event-id" in request.headers:
        last_id = stream_id(request.headers["last-event-id"], "Last-Event-ID")
    else:
        last_id = stream_id(request.query_params.get("after", "0-0"), "after")
    return StreamingResponse(
        _events(state, wf, job, last_id, principal(request)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(state, wf: str, job: str, last_id: str, caller: Principal):
    store, keepalive = state.store, state.settings.keepalive_secs
    loop = asyncio.get_running_loop()
    failing_since = None
    yield b"retry: 1000\n\n"
    job_state = None
    async with state.notifier.watch(store.job_channel(wf, job)) as changed:
        while True:
            # Only log appends since the last pass: the job's state is as
            # read then, so skip reading it again (half the reads per chunk).
            fresh_state = job_state is None or not changed.only_logs
            changed.reset()
            try:
                # Read the state first: logs appended before it finished are
                # then all in the stream when we read it below.
                if fresh_state:
                    job_state = await store.job_state(wf, job)
                while True:
                    entries = await store.read_logs(wf, job, last_id, BATCH)
                    for eid, chunk in entries:
                        last_id = eid
                        yield f"id: {eid}\nevent: log\ndata: {chunk.translate(_LINE_BREAKS)}\n\n".encode()
                    if len(entries) < BATCH:
                        break
                # A cancelled job's worker may still send its last output while
                # it stops the job: end only once it has let go of the lease.
                ended = job_state.status in TERMINAL and not (
                    job_state.status == "cancelled" and await store.lease_held(wf, job)
                )
            except (RedisError, OSError) as exc:
                job_state = None  # read it afresh on the retry
                # The answer has begun: no status code can say this any more.
                # Retry (from the last id sent); past STORE_RETRY_SECS end
                # with an `error` event and a retry hint, never a silent cut.
                failing_since = failing_since or loop.time()
                if loop.time() - failing_since > STORE_RETRY_SECS:
                    log.warning("log stream of %s/%s ended: store unavailable (%s)", wf, job, exc)
                    yield _STORE_GONE
                    return
                await asyncio.sleep(0.5)
                continue
            failing_since = None
            if ended:
                data = encoder.encode(job_state).decode().translate(_LINE_BREAKS)
                yield f"id: {last_id}\nevent: end\ndata: {data}\n\n".encode()
                return
            try:
                await asyncio.wait_for(changed.event.wait(), keepalive)
            except asyncio.TimeoutError:
                yield b": keep-alive\n\n"
            try:  # a tail opened with a token revoked since reads no more
                await state.auth.check_alive(caller)
            except ApiError as exc:
                yield b"event: error\ndata: " + encoder.encode(ErrorBody(ErrorDetail(exc.code, exc.message))) + b"\n\n"
                return
            if state.notifier.draining:
                return  # the client reconnects (with Last-Event-ID) to a live replica


endpoints = [
    Endpoint("GET", "/api/workflows/{wf}/jobs/{job}/logs", history, "read", "A job's log chunks, oldest first",
             response=list[LogChunk], errors=(404,), tag="logs"),
    Endpoint("GET", "/api/workflows/{wf}/jobs/{job}/logs/stream", stream, "read",
             "Server-Sent Events: the log so far, then live chunks (`log` events, each with its stream id),"
             " then an `end` event with the job's final state",
             stream=True, errors=(400, 404, 503), tag="logs",
             params=(Param("after", str, "resume after this event id"),
                     Param("Last-Event-ID", str, "resume after this event id (what EventSource sends)",
                           where="header"))),
]
