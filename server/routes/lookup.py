"""`GET /api/resolve/{ref}`: what a name given to the CLI stands for (a
run id, a workflow id, or a one-off workflow's name), in one read. The CLI
asks this instead of guessing with calls that would each be refused and
logged as a 404; the seed paths keep their own meaning."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta
from starlette.requests import Request

from ..http import JSON, param
from ..limits import MAX_NAME_CHARS
from ..models import Resolved
from ..routing import Endpoint, Param


# No id or name is longer (the declaration /openapi.json shows, and the check).
_REF = Param("ref", Annotated[str, Meta(max_length=MAX_NAME_CHARS)], "a run id, a workflow id or a one-off's name",
             where="path", error="invalid_ref")


async def resolve(request: Request) -> JSON:
    return JSON(await request.app.state.store.resolve(param(request, _REF)))


endpoints = [
    Endpoint("GET", "/api/resolve/{ref}", resolve, "read",
             "What a name stands for: a run id, else a workflow id, else the one one-off workflow of that name"
             " (with the run it means: the one named, or the workflow's latest); 409 ambiguous_name when several"
             " one-offs share it", response=Resolved, errors=(404, 409, 422), tag="workflows", params=(_REF,)),
]
