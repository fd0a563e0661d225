"""`GET /api/resolve/{ref}`: what a name given to the CLI stands for (a
run id, a workflow id, or a one-off workflow's name), in one read. The CLI
asks this instead of guessing with calls that would each be refused and
logged as a 404; the seed paths keep their own meaning."""

from __future__ import annotations

from starlette.requests import Request

from ..errors import Unprocessable
from ..http import JSON
from ..limits import MAX_NAME_CHARS
from ..models import Resolved
from ..routing import Endpoint


async def resolve(request: Request) -> JSON:
    ref = request.path_params["ref"]
    if len(ref) > MAX_NAME_CHARS:  # no id or name is longer
        raise Unprocessable("invalid_ref", f"ref is longer than {MAX_NAME_CHARS} characters", {"field": "ref"})
    return JSON(await request.app.state.store.resolve(ref))


endpoints = [
    Endpoint("GET", "/api/resolve/{ref}", resolve, "read",
             "What a name stands for: a run id, else a workflow id, else the one one-off workflow of that name"
             " (with the run it means: the one named, or the workflow's latest); 409 ambiguous_name when several"
             " one-offs share it", response=Resolved, errors=(404, 409, 422), tag="workflows"),
]
