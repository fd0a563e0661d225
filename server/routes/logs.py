"""Job logs: history as JSON, and a live Server-Sent Events tail.

The SSE stream sends the history, then live chunks as they are appended,
with the Redis stream entry id as each event's `id:` so a client that
reconnects with Last-Event-ID resumes exactly where it stopped. When the job
is finished it sends an `end` event carrying the job's final state and
closes, so `curl -N` exits.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..errors import Overloaded
from ..http import stream_id
from ..models import LogChunk, encoder
from ..routing import Endpoint, Param
from ..store import TERMINAL

BATCH = 500
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
        _events(state, wf, job, last_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(state, wf: str, job: str, last_id: str):
    store, keepalive = state.store, state.settings.keepalive_secs
    yield b"retry: 1000\n\n"
    async with state.notifier.watch(store.job_channel(wf, job)) as changed:
        while True:
            changed.clear()
            # Read the state first: logs appended before it finished are then
            # all in the stream when we read it below.
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
            if job_state.status in TERMINAL and not (
                job_state.status == "cancelled" and await store.lease_held(wf, job)
            ):
                data = encoder.encode(job_state).decode().translate(_LINE_BREAKS)
                yield f"id: {last_id}\nevent: end\ndata: {data}\n\n".encode()
                return
            try:
                await asyncio.wait_for(changed.wait(), keepalive)
            except asyncio.TimeoutError:
                yield b": keep-alive\n\n"
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
