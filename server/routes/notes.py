"""A run's Markdown notes, rendered to sanitised HTML for the dashboard
(server/markdown.py says how). A separate read, so the run's own view,
which CLIs poll, pays nothing for rendering."""

from __future__ import annotations

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..http import JSON
from ..markdown import render
from ..models import NoteHtml
from ..routing import Endpoint


def _rendered(notes: list) -> list[NoteHtml]:
    return [NoteHtml(html=render(n.markdown), **msgspec.structs.asdict(n)) for n in notes]


async def run_notes(request: Request) -> JSON:
    store = request.app.state.store
    head = await store.run_head(request.path_params["run_id"])  # 404 for an unknown run
    notes = await store.run_notes(head)
    # Up to 100 notes of 64 KiB: rendering is real CPU, kept off the event loop.
    return JSON(await run_in_threadpool(_rendered, notes) if notes else [])


endpoints = [
    Endpoint("GET", "/api/runs/{run_id}/notes", run_notes, "read",
             "The run's Markdown notes, each also rendered as sanitised HTML (`html`)", response=list[NoteHtml],
             errors=(404,), tag="runs"),
]
