"""The ready queues, for operators: what waits, for how long, and who can
take it (see server/store/queues.py for what is read, and its bounds)."""

from __future__ import annotations

from starlette.requests import Request

from .. import limits
from ..http import JSON
from ..models import QueuesPage
from ..routing import Endpoint


async def list_queues(request: Request) -> JSON:
    return JSON(await request.app.state.store.list_queues())


endpoints = [
    Endpoint("GET", "/api/queues", list_queues, "read",
             f"Ready jobs per label set (the fullest first, at most {limits.MAX_QUEUES_LISTED:,}), the longest"
             " wait, and the live workers that can serve each", response=QueuesPage, tag="queues"),
]
