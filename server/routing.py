"""The route table: every endpoint declared once, with its scope, body and
answers, so routing, authorisation, content-type checks and /openapi.json
all come from the same declaration and cannot drift apart.

An `Endpoint` without a scope cannot be built; `routes()` turns the table
into Starlette routes, one per path, answering 405 with an `Allow` header
that lists every method the path has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import ROUTE_SCOPES, TICKET_PARAM
from .errors import StoreUnavailable, Unprocessable, UnsupportedMediaType
from .slots import trust

Handler = Callable[[Request], Awaitable[Response]]

JSON_MEDIA = ("application/json",)
YAML_MEDIA = ("application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml")


@dataclass(frozen=True)
class Param:
    """A query, header or path parameter. `type` (a msgspec type, with its
    constraints) is both what /openapi.json shows and what `http.param`
    checks a value against: one declaration for both."""

    name: str
    type: Any
    description: str
    required: bool = False
    where: str = "query"  # or "header", "path"
    error: str = ""  # the code of a refusal (default: invalid_query, invalid_header, invalid_path)
    # The value is JSON text of `type` (OpenAPI's `content`, application/json,
    # rather than `schema`): a query holding an object.
    json: bool = False

    @property
    def free_form(self) -> bool:
        """Any query parameters at all (a dashboard page's own state, which
        its script reads): an object of them, as OpenAPI's form style says."""
        return self.where == "query" and self.type == dict[str, str] and not self.json


@dataclass(frozen=True)
class OneOf:
    """A body that is one of these types, which the handler tells apart
    (each type's schema must rule out the others'): a `oneOf`."""

    types: tuple[Any, ...]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    scope: str  # one of auth.ROUTE_SCOPES
    summary: str
    body: Any = None  # the msgspec type (or OneOf) of a JSON body; None: the route reads none
    body_required: bool = False
    media: tuple[str, ...] = JSON_MEDIA  # what a body may be sent as
    yaml: Any = None  # the type of a YAML body once parsed, if not `body`
    status: int = 200
    response: Any = None  # the msgspec type answered with `status`; None: no schema
    created: bool = False  # may also answer 201 (with `response`): a PUT that created it
    stream: bool = False  # answers text/event-stream
    # What a non-JSON answer is sent as (the dashboard's pages and files);
    # empty: application/json.
    content: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    params: tuple[Param, ...] = ()
    tag: str = ""

    def __post_init__(self) -> None:
        if not all(part in ROUTE_SCOPES for part in self.scope.split("|")):
            raise ValueError(f"{self.method} {self.path}: scope must be one of {ROUTE_SCOPES}, not {self.scope!r}")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def takes_ticket(endpoint: Endpoint) -> bool:
    """A stream ticket (server/auth.py) opens the event streams a read
    token may: the one query parameter that is a credential."""
    return endpoint.stream and endpoint.scope == "read"


def checked(endpoint: Endpoint) -> Handler:
    """The endpoint's handler behind its scope check and its content-type
    check, both before the handler reads or changes anything."""
    handler, scope, media, stream = endpoint.handler, endpoint.scope, endpoint.media, endpoint.stream
    accepted = ", ".join(media)
    known = {p.name for p in endpoint.params if p.where == "query"}
    if takes_ticket(endpoint):
        known.add(TICKET_PARAM)
    any_query = any(p.free_form for p in endpoint.params)
    route = f"{endpoint.method} {endpoint.path}"

    async def guarded(request: Request) -> Response:
        # the route's template, never its path, labels its request times (server/app.py)
        request.scope["rota.route"] = route
        # Until Redis has answered once (tokens, the run-token key, the
        # workflow files) nothing can be checked or done: a prompt 503 the
        # client retries, not a 401 for a token not yet loaded, nor a lease
        # taken whose answer then fails.
        if scope != "public" and not request.app.state.ready.is_set():
            raise StoreUnavailable("the server is starting: it is waiting for Redis")
        auth = request.app.state.auth
        request.scope["rota.principal"] = await auth.authorize(request, scope, stream)
        if scope != "public" or not auth.enabled:
            trust(request.scope)  # this connection is past auth: see server/slots.py
        # A browser may POST text/plain across origins without asking first
        # (a CORS "simple request"): only the declared types are read.
        if _has_body(request) and _media_type(request) not in media:
            raise UnsupportedMediaType(
                "unsupported_media_type",
                f"send the body as {accepted} (got {_media_type(request) or 'no Content-Type'})",
                {"accepted": list(media)},
            )
        # A misspelt filter (?stauts=failed) would otherwise list everything.
        unknown = [] if any_query else sorted(set(request.query_params) - known)
        if unknown:
            raise Unprocessable("unknown_parameter",
                                f"unknown query parameter {unknown[0]!r}; this call takes "
                                + (", ".join(sorted(known)) if known else "none"),
                                {"field": unknown[0], "accepted": sorted(known)})
        return await handler(request)

    return guarded


class _ByMethod:
    """One path's endpoints, chosen by method; HEAD is answered like GET."""

    def __init__(self, apps: dict[str, ASGIApp]):
        if "GET" in apps:
            apps.setdefault("HEAD", apps["GET"])
        self._apps = apps
        self._allow = ", ".join(sorted(apps))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._apps.get(scope["method"])
        if app is None:
            raise HTTPException(405, headers={"Allow": self._allow})
        await app(scope, receive, send)


def routes(endpoints: list[Endpoint]) -> list[Route]:
    by_path: dict[str, dict[str, ASGIApp]] = {}
    for endpoint in endpoints:
        apps = by_path.setdefault(endpoint.path, {})
        if endpoint.method in apps:
            raise ValueError(f"{endpoint.method} {endpoint.path} is declared twice")
        apps[endpoint.method] = request_response(checked(endpoint))
    return [Route(path, _ByMethod(by_path[path]), name=path) for path in _ordered(list(by_path))]


def _ordered(paths: list[str]) -> list[str]:
    """`paths` in the order given (hot ones first: Starlette tries routes in
    turn, a regex each), except that of two paths that can match the same
    URL the more literal goes first: /api/runs/cancel before
    /api/runs/{run_id}, /api/jobs/{lease_id}/state/{key} before
    /api/jobs/{wf}/{job}/cancelled (each route answers any method, so the
    first whose path matches wins)."""
    def segments(path: str) -> list[str]:
        return path.split("/")

    def specificity(path: str) -> tuple:
        return path.count("{"), tuple(segment.startswith("{") for segment in segments(path))

    def overlap(a: str, b: str) -> bool:
        sa, sb = segments(a), segments(b)
        return len(sa) == len(sb) and all(x == y or "{" in x or "{" in y for x, y in zip(sa, sb))

    before = {p: {q for q in paths if q != p and overlap(p, q) and specificity(q) < specificity(p)} for p in paths}
    out: list[str] = []
    placed: set[str] = set()
    while len(out) < len(paths):
        nxt = next(p for p in paths if p not in placed and before[p] <= placed)
        out.append(nxt)
        placed.add(nxt)
    return out


def lease_calls(prefix: str, tag: str, calls: dict[tuple[str, str], dict],
                wrap: Optional[Callable[[str, str, Handler, dict], tuple[Handler, dict]]] = None) -> list[Endpoint]:
    """The calls of a lease (`calls`: (method, path suffix) -> the rest of
    each Endpoint) under a path prefix holding `{lease_id}`, each in scope
    `lease`. `wrap` adapts a handler and its declaration to another
    protocol's answers (the seeds' executor paths), so every protocol runs
    the same handlers."""
    out = []
    for (method, suffix), declared in calls.items():
        spec = dict(declared)
        handler = spec.pop("handler")
        if wrap is not None:
            handler, spec = wrap(method, suffix, handler, spec)
        out.append(Endpoint(method, prefix + suffix, handler, "lease", spec.pop("summary"), tag=tag, **spec))
    return out


def find(endpoints: list[Endpoint], method: str, path: str) -> Optional[Endpoint]:
    return next((e for e in endpoints if e.method == method and e.path == path), None)
