"""Dead letters: jobs that failed for good. List, replay (as the per-job
retry), dismiss."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response

from ..http import JSON, Limit, decode_body, param
from ..models import DeadLetterFilter, DeadLetterPage, ErrorText, Id, Label, ReplayAnswer, ReplayRequest
from ..routing import Endpoint, Param

MAX_PAGE = 1000


# Each filter of the query has its DeadLetterFilter field's type.
_FILTERS = (Param("workflow_id", Id, "only this workflow's"), Param("label", Label, "only jobs requiring this label"),
            Param("error", ErrorText, "only errors containing this text"))
_LIMIT = Param("limit", Limit, f"at most this many (default 100; above {MAX_PAGE} means {MAX_PAGE})")
# A cursor is a dead letter's sequence number (as next_cursor gives it).
_CURSOR = Param("cursor", Annotated[str, Meta(pattern=r"^[0-9]{1,19}\Z")], "next_cursor of the previous page")


async def list_dead(request: Request) -> JSON:
    limit = min(param(request, _LIMIT, 100), MAX_PAGE)
    flt = DeadLetterFilter(**{p.name: param(request, p) for p in _FILTERS})
    items, cursor = await request.app.state.store.list_dead_letters(flt, limit, param(request, _CURSOR))
    return JSON(DeadLetterPage(items=items, next_cursor=cursor))


async def replay(request: Request) -> JSON:
    req = await decode_body(request, ReplayRequest)
    store = request.app.state.store
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
             params=_FILTERS + (_LIMIT, _CURSOR)),
    Endpoint("POST", "/api/dead-letters/replay", replay, "submit",
             "Retry dead letters (each as the per-job retry) by items or by filter, at most 1,000 a call",
             body=ReplayRequest, body_required=True, response=ReplayAnswer, errors=(422,), tag="dead letters"),
    Endpoint("DELETE", "/api/dead-letters/{run_id}/{job}", dismiss, "admin", "Dismiss a dead letter",
             status=204, errors=(404,), tag="dead letters"),
]
