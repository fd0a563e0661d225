"""Job logs: history as JSON, a page at a time (bounded in bytes, the
cursor in a header, so seed 002's list stays a list), and a live
Server-Sent Events tail (see server/sse.py), ending with an `end` event
carrying the job's final state (the job as `GET /api/runs/{run}/jobs/{job}`
shows it).

Native paths name the run; seed 002's name a workflow and mean its latest
run: `for_latest_run` maps them onto the same handlers.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response

from .. import limits, sse
from ..errors import Unprocessable
from ..http import MAX_QUERY_INT, RESUME, StreamId, param, stream_id
from ..models import JobLogChunk, encoder
from ..routing import Endpoint, Param
from ..singleflight import SingleFlight
from ..store import LOG_LEVELS, TERMINAL, Store
from .jobview import job_view
from .resolve import for_latest_run


_ATTEMPT = Param("attempt", Annotated[int, Meta(ge=0, le=MAX_QUERY_INT)],
                 "only this attempt's chunks (from 0); all attempts, in order, by default")
_LEVEL = Param("level", Literal[LOG_LEVELS + ("warning",)],  # type: ignore[misc]
               "only the job's log entries (stream `event`) of this level or above")
_FILTERS = (_ATTEMPT, _LEVEL)
# Each is checked against its declared type; which may go together (after,
# before and tail are three ways to place a page) is said in words.
_AFTER = Param("after", StreamId, "the page after this stream id (X-Next-Cursor of the page before); not with"
               " before or tail")
_BEFORE = Param("before", StreamId, "the page that ends before this stream id (X-Prev-Cursor of the page after);"
                " not with after")
_TAIL = Param("tail", Annotated[int, Meta(ge=1, le=MAX_QUERY_INT)],
              f"read back from the end (or from `before`): the last chunks within this many bytes (above"
              f" {limits.LOG_PAGE_BYTES} means {limits.LOG_PAGE_BYTES}; at least one chunk); not with after")
_LIMIT = Param("limit", Annotated[int, Meta(ge=1, le=MAX_QUERY_INT)],
               f"chunks per page (above {limits.LOG_PAGE_CHUNKS}, the default, means {limits.LOG_PAGE_CHUNKS})")
_PAGING = (_AFTER, _BEFORE, _TAIL, _LIMIT)
# Which of after, before and tail may not go together (JSON Schema cannot
# relate one parameter to another: tests/test_openapi.py reads this too).
EXCLUSIVE = (("after", "before"), ("after", "tail"))


def _attempt(request: Request) -> Optional[int]:
    return param(request, _ATTEMPT)


def _level(request: Request) -> Optional[str]:
    level = param(request, _LEVEL)
    return "warn" if level == "warning" else level


async def history(request: Request) -> Response:
    store, p = request.app.state.store, request.path_params
    attempt, level = _attempt(request), _level(request)
    q = request.query_params
    after, before, tail = q.get("after"), q.get("before"), q.get("tail")
    if after is not None and before is not None:
        raise Unprocessable("invalid_query", "give after or before, not both", {"field": "before"})
    if after is not None and tail is not None:
        raise Unprocessable("invalid_query", "tail reads back from the end (or from before), not after a cursor",
                            {"field": "tail"})
    count = min(param(request, _LIMIT, limits.LOG_PAGE_CHUNKS), limits.LOG_PAGE_CHUNKS)
    max_bytes = min(param(request, _TAIL, limits.LOG_PAGE_BYTES), limits.LOG_PAGE_BYTES)
    backward = before is not None or tail is not None
    cursor = stream_id(before, "before", "invalid_before") if before is not None else ""
    start = stream_id(after, "after") if after is not None else "0-0"
    await store.job_state(p["run_id"], p["job"])  # 404 for an unknown job
    page = await store.read_logs(p["run_id"], p["job"], start, count, attempt, level,
                                 max_bytes=max_bytes, before=cursor if backward else None)
    headers = {}
    if page.entries and page.more:
        headers["X-Prev-Cursor" if backward else "X-Next-Cursor"] = page.entries[0 if backward else -1][0]
    if page.entries and before is not None:  # the entry at `before` follows this page
        headers["X-Next-Cursor"] = page.entries[-1][0]
    body = b"[" + b",".join(chunk for _, chunk in page.entries if chunk is not None) + b"]"
    return Response(body, media_type="application/json", headers=headers)


_ENDS = SingleFlight()


class JobLog:
    """A job's log stream, finished once the job is (and, for a cancelled
    job, once its worker has let go of the lease: it may still send the
    output the job prints while it is being stopped)."""

    event_name = "log"

    def __init__(self, store: Store, run: str, job: str, attempt: Optional[int], level: Optional[str]):
        self.store, self.run, self.job, self.attempt, self.level = store, run, job, attempt, level
        self._state = None

    async def read(self, after: str):
        page = await self.store.read_logs(self.run, self.job, after, limits.SSE_BATCH_ENTRIES, self.attempt,
                                          self.level, max_bytes=limits.SSE_BATCH_BYTES)
        return page.entries, page.more

    async def finished(self, only_appends: bool) -> Optional[bytes]:
        if self._state is None or not only_appends:
            self._state = await self.store.job_state(self.run, self.job)
        if self._state.status in TERMINAL and not (
            self._state.status == "cancelled" and await self.store.lease_held(self.run, self.job)
        ):
            # The whole job, as GET .../jobs/{job} shows it: the state read
            # above is only its record, without its spec and attempts. The
            # tails that end together (a thousand of one job) share one read.
            view = await _ENDS.do((id(self.store), self.run, self.job),
                                  lambda: job_view(self.store, self.run, self.job))
            return encoder.encode(view)
        return None


async def stream(request: Request) -> Response:
    store, p = request.app.state.store, request.path_params
    run, job = p["run_id"], p["job"]
    attempt, level = _attempt(request), _level(request)
    await store.job_state(run, job)  # 404 before any streaming starts
    return sse.start(request, store.job_channel(run, job), JobLog(store, run, job, attempt, level))


_HISTORY_TEXT = (f"A page of a job's log chunks, oldest first, each with its attempt: at most"
                 f" {limits.LOG_PAGE_BYTES} bytes and {limits.LOG_PAGE_CHUNKS} chunks (at least one). While more"
                 " follow, X-Next-Cursor names the last one: pass it as ?after= for the next page. Read backwards"
                 " with ?tail=BYTES or ?before=, which answer X-Prev-Cursor while more come before")
_STREAM_TEXT = ("Server-Sent Events: the log so far, then live chunks (`log` events, each with its stream id"
                " and attempt), then an `end` event with the job's final state")
endpoints = [
    Endpoint("GET", "/api/runs/{run_id}/jobs/{job}/logs", history, "read", _HISTORY_TEXT,
             response=list[JobLogChunk], params=_FILTERS + _PAGING, errors=(400, 404, 422), tag="logs"),
    Endpoint("GET", "/api/runs/{run_id}/jobs/{job}/logs/stream", stream, "read", _STREAM_TEXT, stream=True,
             params=_FILTERS + RESUME, errors=(400, 404, 422, 503), tag="logs"),
    # seed 002: the workflow's latest run
    Endpoint("GET", "/api/workflows/{wf}/jobs/{job}/logs", for_latest_run(history), "read",
             _HISTORY_TEXT + " (the workflow's latest run)", response=list[JobLogChunk],
             params=_FILTERS + _PAGING, errors=(400, 404, 422), tag="logs"),
    Endpoint("GET", "/api/workflows/{wf}/jobs/{job}/logs/stream", for_latest_run(stream), "read",
             _STREAM_TEXT + " (the workflow's latest run)", stream=True, params=_FILTERS + RESUME,
             errors=(400, 404, 422, 503), tag="logs"),
]
