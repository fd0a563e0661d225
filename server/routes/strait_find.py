"""Finding Strait runs (seed 003's `GET /v1/runs` and `/v1/runs/dlq`):
its filters, checked as declared, onto rota's own listing of runs, and a
rota run shown as a Strait run (server/strait_view.py)."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Callable, Optional

import msgspec
from msgspec import Meta
from starlette.requests import Request

from .. import strait_view as view
from ..errors import NotFound, Unprocessable
from ..http import JSON, Limit, param
from ..limits import MAX_EPOCH_MS
from ..models import RunFilter, StateKey
from ..models.runs import RunId, Trigger
from ..models.strait import StraitRun, StraitStatus
from ..routing import Param
from ..store import Store

DEFAULT_PAGE, MAX_PAGE = 50, 100
_FILTER_TEXT = 4096  # payload_contains, as JSON text

# The query's parameters, each checked against its declared type (what
# /openapi.json shows).
PROJECT = Param("project_id", Annotated[str, Meta(min_length=1, max_length=128)],
                "required, as Strait requires it; rota has one project, which any value names", required=True)
_STATUS = Param("status", StraitStatus, "a Strait status")
_META_KEY = Param("metadata_key", StateKey, "runs whose metadata (their jobs' annotations) has this key")
_META_VALUE = Param("metadata_value", Annotated[str, Meta(max_length=1024)],
                    "... with this value (alone: runs with any metadata key of this value)")
_TRIGGERED_BY = Param("triggered_by", Trigger, "api, cli, cron, retry, restart, spawn, continue, ...")
_BATCH = Param("batch_id", RunId, "runs one bulk-replay started")
_PAYLOAD = Param("payload_contains", dict[str, Any],
                 f"a JSON object the run's inputs contain (as PostgreSQL's @>), at most {_FILTER_TEXT} characters",
                 json=True)
_LIMIT = Param("limit", Limit, f"at most this many (default {DEFAULT_PAGE}; above {MAX_PAGE} means {MAX_PAGE})")
_CURSOR = Param("cursor", Annotated[datetime.datetime, Meta(tz=True)],
                "the created_at of the last run of the page before (RFC 3339): runs created before it")
PAGE = (_LIMIT, _CURSOR)
LIST_PARAMS = (PROJECT, _STATUS, _META_KEY, _META_VALUE, _TRIGGERED_BY, _BATCH, _PAYLOAD) + PAGE


async def views(store: Store, ids: list[str]) -> list[StraitRun]:
    """The Strait runs of these rota runs (those still kept), in order."""
    return [msgspec.convert(view.run(head, rows, meta), StraitRun) for head, rows, meta in await store.run_records(ids)]


async def one(store: Store, run: str) -> tuple[StraitRun, dict]:
    """A run as Strait shows it, and its head; 404 if there is none."""
    records = await store.run_records([run])
    if not records:
        raise NotFound("run_not_found", f"no run {run!r}")
    head, rows, meta = records[0]
    return msgspec.convert(view.run(head, rows, meta), StraitRun), head


# ---- listing -------------------------------------------------------------------------


def require_project(request: Request) -> None:
    """Strait requires a project; rota has one, which every project_id names."""
    if param(request, PROJECT) is None:
        raise Unprocessable("invalid_query", "project_id is required (rota has one project: any value names it)",
                            {"field": "project_id"})


def _limit(request: Request) -> int:
    return min(param(request, _LIMIT, DEFAULT_PAGE), MAX_PAGE)


def _cursor(request: Request) -> Optional[int]:
    """Strait's cursor: the created_at of the last run of the page before,
    as epoch ms (a time before any run: an empty page)."""
    when = param(request, _CURSOR)
    if when is None:
        return None
    return max(0, min(int(when.timestamp() * 1000), MAX_EPOCH_MS))


def _payload_filter(request: Request) -> Optional[dict]:
    if len(request.query_params.get(_PAYLOAD.name, "")) > _FILTER_TEXT:
        raise Unprocessable("invalid_query", f"payload_contains is longer than {_FILTER_TEXT} characters",
                            {"field": _PAYLOAD.name})
    return param(request, _PAYLOAD)


def _run_filter(request: Request) -> RunFilter:
    key, value = param(request, _META_KEY), param(request, _META_VALUE)
    return RunFilter(triggered_by=param(request, _TRIGGERED_BY), batch_id=param(request, _BATCH),
                     annotations={key: value} if key else {}, annotation_value=None if key else value,
                     inputs_contain=_payload_filter(request))


async def scan(store: Store, flt: RunFilter, limit: int, want: Optional[Callable[[str], bool]],
               before: Optional[int] = None) -> list[str]:
    """Run ids, newest first, created before `before` (epoch ms), whose
    Strait status `want` accepts: the head tells most statuses, a running
    run's jobs tell executing from dequeued, so those are read for it."""
    if before is not None:
        flt = msgspec.structs.replace(flt, created_before=before)
    coarse: Optional[Callable[[dict], bool]] = None
    if want is not None:
        def coarse(head: dict) -> bool:
            st = view.status(head, {})
            # a running job makes a run executing or dequeued: decided below
            return want(st) or (int(head.get("n:running") or 0) > 0 and (want("executing") or want("dequeued")))
    found: list[str] = []
    cursor = None
    while len(found) < limit:
        page, cursor = await store.list_runs(flt, limit, cursor, coarse)
        ids = [r.run_id for r in page]
        if want is not None and ids:
            records = await store.run_records(ids)
            ids = [head["id"] for head, rows, _ in records if want(view.status(head, rows))]
        found.extend(ids[:limit - len(found)])
        if cursor is None:
            break
    return found


async def list_runs(request: Request) -> JSON:
    require_project(request)
    store, status = request.app.state.store, param(request, _STATUS)
    ids = await scan(store, _run_filter(request), _limit(request), (lambda st: st == status) if status else None,
                     _cursor(request))
    return JSON(await views(store, ids))


async def list_dlq(request: Request) -> JSON:
    require_project(request)
    store = request.app.state.store
    ids = await scan(store, RunFilter(), _limit(request), lambda st: st == "dead_letter", _cursor(request))
    return JSON(await views(store, ids))
