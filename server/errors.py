"""API errors: each carries its HTTP status and a stable machine code.

Raised by the store and the routes; app.py renders every one as
`{"error": {"code", "message", "details"}}`.
"""

from __future__ import annotations


class ApiError(Exception):
    status = 400
    headers: dict[str, str] | None = None

    def __init__(self, code: str, message: str, details: object = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class BadRequest(ApiError):
    status = 400


class Unauthenticated(ApiError):
    status = 401
    headers = {"WWW-Authenticate": 'Bearer realm="rota"'}

    def __init__(self, message: str):
        super().__init__("unauthenticated", message)


class Forbidden(ApiError):
    status = 403

    def __init__(self, message: str, details: object = None):
        super().__init__("forbidden", message, details)


class NotAllowed(ApiError):
    """The caller may make this call, but not ask this of it (a job spawning
    beyond what its definition allows)."""

    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class RequestTimeout(ApiError):
    status = 408


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class Unprocessable(ApiError):
    status = 422


class LeaseLost(Conflict):
    def __init__(self, lease_id: str):
        super().__init__(
            "lease_lost",
            "lease is unknown, expired or superseded; the job is no longer yours",
            {"lease_id": lease_id},
        )


class LimitExceeded(ApiError):
    """A per-token cap (a setting) is reached; nothing was done. Slots free
    as what holds them goes (keys expire, workflows and workers are
    forgotten), so a client may retry later."""

    status = 429

    def __init__(self, setting: str, limit: int, message: str):
        super().__init__("limit_exceeded", f"{message} ({setting}={limit}); nothing was done",
                         {"limit": limit, "limit_name": setting})


class Overloaded(ApiError):
    """This process is at one of its limits: the client should retry soon."""

    status = 503
    headers = {"Retry-After": "1"}

    def __init__(self, message: str):
        super().__init__("overloaded", message)


class StoreUnavailable(ApiError):
    status = 503
    headers = {"Retry-After": "1"}

    def __init__(self, message: str):
        super().__init__("store_unavailable", message)
