"""What a client (the dashboard) asks about its own session: which token
it holds and what that may do, and stream tickets, which let a browser's
EventSource (it cannot send a header) open one event stream."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.routing import compile_path

from .. import limits
from ..auth import principal
from ..errors import Unprocessable
from ..http import JSON, decode_body
from ..models import StreamTicket, TicketRequest, Whoami
from ..routing import Endpoint


async def whoami(request: Request) -> JSON:
    caller, auth = principal(request), request.app.state.auth
    record = auth.record(caller.token_id) if caller.token_id else None
    return JSON(Whoami(
        auth=auth.enabled, token_id=caller.token_id or None, name=record.name if record else None,
        scopes=sorted(caller.grants), expires_at_ms=record.expires_ms if record else None))


def _stream_paths(request: Request) -> list[re.Pattern]:
    app = request.app
    if not hasattr(app.state, "stream_paths"):
        app.state.stream_paths = [compile_path(e.path)[0] for e in app.state.endpoints
                                  if e.stream and e.method == "GET"]
    return app.state.stream_paths


async def stream_ticket(request: Request) -> JSON:
    req = await decode_body(request, TicketRequest)
    if not any(p.match(req.path) for p in _stream_paths(request)):
        raise Unprocessable("invalid_body", "path must be an event stream's path, e.g."
                            " /api/runs/<run_id>/events/stream (no query)", {"field": "$.path"})
    ticket, expires = request.app.state.auth.stream_ticket(req.path, principal(request))
    return JSON(StreamTicket(ticket=ticket, path=req.path, expires_at_ms=expires,
                             ttl_secs=limits.STREAM_TICKET_SECS), status_code=201)


endpoints = [
    Endpoint("GET", "/api/whoami", whoami, "read", "The calling token: its id, name and what it may do",
             response=Whoami, tag="dashboard"),
    Endpoint("POST", "/api/stream-tickets", stream_ticket, "read",
             f"A ticket that opens one event stream (?ticket=) without a header, read-only, for"
             f" {limits.STREAM_TICKET_SECS} s and while the token stays valid", body=TicketRequest,
             body_required=True, status=201, response=StreamTicket, errors=(422,), tag="dashboard"),
]
