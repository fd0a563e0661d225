"""The worker's hot calls (claim, heartbeat, complete, fail and the batch
forms) straight to their handlers, past the layers that do no work for
them: Starlette's middleware stack (the 500 catcher, the dashboard's
headers, the exception mapper, each wrapping every message of the answer),
its router (a regex per route until one matches) and the per-route
request/response wrapper.

What does work for them runs here just the same: the request guard (Host,
a cross-origin write's Origin, body size and arrival time; a request that
carries an Origin takes the full path, where CORS applies), the route's
scope and content-type checks and its handler (routing.checked), and the
app's own exception handlers, so an answer, error or not, is the one the
full path gives. Measured under `make bench`'s claim->complete load, the
layers skipped cost about 30 us of CPU a request.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .guards import RequestGuard, guarded_headers
from .routing import Endpoint, Handler, checked

_LEASE_PREFIX = "/api/jobs/"
# (method, path) of the hot calls with no path parameter, and the suffixes
# of /api/jobs/{lease_id}/... that are.
HOT_PATHS = ("/api/jobs/claim", "/api/jobs/claims", "/api/jobs/results", "/api/jobs/heartbeats")
HOT_LEASE_CALLS = ("heartbeat", "complete", "fail")


class HotPath:
    def __init__(self, endpoints: list[Endpoint], guard: RequestGuard,
                 handlers: dict[Any, Callable[[Request, Exception], Any]]):
        by_key = {(e.method, e.path): e for e in endpoints}
        self._exact = {path: checked(by_key[("POST", path)]) for path in HOT_PATHS}
        self._lease = {suffix: checked(by_key[("POST", f"{_LEASE_PREFIX}{{lease_id}}/{suffix}")])
                       for suffix in HOT_LEASE_CALLS}
        self._guard = guard
        self._handlers = handlers

    def route(self, scope: Scope) -> Optional[tuple[Handler, dict[str, str]]]:
        """The handler and path parameters of a hot call, else None."""
        if scope["method"] != "POST":
            return None
        path = scope["path"]
        handler = self._exact.get(path)
        if handler is not None:
            return handler, {}
        if path.startswith(_LEASE_PREFIX):
            lease_id, _, suffix = path[len(_LEASE_PREFIX):].partition("/")
            handler = self._lease.get(suffix)
            if handler is not None and lease_id:
                return handler, {"lease_id": lease_id}
        return None

    async def serve(self, app: Any, scope: Scope, receive: Receive, send: Send,
                    hot: tuple[Handler, dict[str, str]]) -> bool:
        """Answers a hot call; False (nothing sent) for one the full path
        must take."""
        host, origin, length = guarded_headers(scope["headers"])
        if origin is not None:
            return False  # a browser's: CORS and the same-origin rule are the full path's
        scope["app"] = app
        refusal = self._guard.refusal(scope["method"], host, None, length)
        if refusal is not None:
            await refusal(scope, receive, send)
            return True
        handler, scope["path_params"] = hot
        request = Request(scope, self._guard.limited(receive), send)
        try:
            response: Response = await handler(request)
        except Exception as exc:  # noqa: BLE001 - rendered by the app's own handler, as the full path does
            caught, render = self._handler_for(exc)
            await (await render(request, exc))(scope, receive, send)
            if caught is Exception:
                # Starlette answers a bug with the 500 and then raises it on
                # to the server (which logs it too): so does this.
                raise
            return True
        await response(scope, receive, send)
        return True

    def _handler_for(self, exc: Exception) -> tuple[type, Callable[[Request, Exception], Any]]:
        for cls in type(exc).__mro__:
            handler = self._handlers.get(cls)
            if handler is not None:
                return cls, handler
        raise exc
