"""Dead letters: jobs that failed for good. List, replay (as the per-job
retry), dismiss."""

from __future__ import annotations

from typing import Optional

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ..errors import Unprocessable
from ..http import JSON, decode_body, query_int
from ..models import DeadLetterFilter, DeadLetterPage, ReplayAnswer, ReplayRequest
from ..routing import Endpoint, Param

MAX_PAGE = 1000


def _filter(request: Request) -> DeadLetterFilter:
    q = request.query_params
    try:
        return msgspec.convert({"workflow_id": q.get("workflow_id") or None, "label": q.get("label") or None,
                                "error": q.get("error") or None}, DeadLetterFilter)
    except msgspec.ValidationError as exc:
        raise Unprocessable("invalid_query", str(exc), {"field": str(exc).rpartition("`$.")[2].rstrip("`")}) \
            from None


def _cursor(request: Request) -> Optional[str]:
    raw = request.query_params.get("cursor") or None
    if raw is not None and not raw.isdigit():
        raise Unprocessable("invalid_query", "cursor must be a next_cursor from a previous page", {"field": "cursor"})
    return raw


async def list_dead(request: Request) -> JSON:
    limit = min(query_int(request, "limit", 100, minimum=1), MAX_PAGE)
    items, cursor = await request.app.state.store.list_dead_letters(_filter(request), limit, _cursor(request))
    return JSON(DeadLetterPage(items=items, next_cursor=cursor))


async def replay(request: Request) -> JSON:
    req = await decode_body(request, ReplayRequest)
    store = request.app.state.store
    if (req.items is None) == (req.filter is None):
        raise Unprocessable("invalid_body", "give items or filter, not both nor neither", {"field": "$"})
    more = False
    if req.items is not None:
        items = list(dict.fromkeys((i.run_id, i.job_id) for i in req.items))
    else:
        found, cursor = await store.list_dead_letters(req.filter, MAX_PAGE)
        items, more = [(d.run_id, d.job_id) for d in found], cursor is not None
    return JSON(ReplayAnswer(outcomes=await store.replay_dead_letters(items), more=more))


async def dismiss(request: Request) -> Response:
    p = request.path_params
    await request.app.state.store.dismiss_dead_letter(p["run_id"], p["job"])
    return Response(status_code=204)


endpoints = [
    Endpoint("GET", "/api/dead-letters", list_dead, "read",
             "Jobs that failed for good, newest first, filtered, cursor-paged", response=DeadLetterPage,
             errors=(422,), tag="dead letters",
             params=(Param("workflow_id", str, "only this workflow's"),
                     Param("label", str, "only jobs requiring this label"),
                     Param("error", str, "only errors containing this text"),
                     Param("limit", int, "at most this many (default 100; above 1000 means 1000)"),
                     Param("cursor", str, "next_cursor of the previous page"))),
    Endpoint("POST", "/api/dead-letters/replay", replay, "submit",
             "Retry dead letters (each as the per-job retry) by items or by filter, at most 1,000 a call",
             body=ReplayRequest, body_required=True, response=ReplayAnswer, errors=(422,), tag="dead letters"),
    Endpoint("DELETE", "/api/dead-letters/{run_id}/{job}", dismiss, "admin", "Dismiss a dead letter",
             status=204, errors=(404,), tag="dead letters"),
]
