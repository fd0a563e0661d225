"""Seed 002's paths name a workflow and mean its latest run; rota's own
name the run. One adapter maps the first onto the handlers of the second,
so every seed path is served by the very handler of its native path."""

from __future__ import annotations

from functools import wraps

from starlette.requests import Request

from ..errors import NotFound
from ..routing import Handler


def for_latest_run(handler: Handler) -> Handler:
    @wraps(handler)
    async def on_latest_run(request: Request):
        wf = request.path_params["wf"]
        run = await request.app.state.store.latest_run(wf)
        if run is None:
            raise NotFound("run_not_found", f"workflow {wf!r} has not run yet (rota run {wf})")
        request.path_params["run_id"] = run
        return await handler(request)

    return on_latest_run
