"""GET /metrics: Prometheus's text format (docs/metrics.md). The scope
`read|metrics`: a token that may read, or METRICS_TOKEN, good for nothing
else."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from ..metrics.fleet import read
from ..routing import Endpoint


async def metrics(request: Request) -> Response:
    state = request.app.state
    # this process's counts since its last flush first: a scrape sees them
    await state.metrics_flusher.flush()
    return Response(state.exposition.render(await read(state.store)), media_type=CONTENT_TYPE_LATEST)


endpoints = [
    Endpoint("GET", "/metrics", metrics, "read|metrics",
             "Prometheus metrics: the fleet's queues, jobs, runs, workers and counters (the same from every"
             " server process), and this process's own process_* and python_* series. A token with the read"
             " scope, or METRICS_TOKEN", content=(CONTENT_TYPE_LATEST,), errors=(401, 403, 503), tag="operations"),
]
