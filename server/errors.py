"""API errors: each carries its HTTP status and a stable machine code.

Raised by the store and the routes; app.py renders every one as
`{"error": {"code", "message", "details"}}`.
"""

from __future__ import annotations


class ApiError(Exception):
    status = 400

    def __init__(self, code: str, message: str, details: object = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class BadRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class Unprocessable(ApiError):
    status = 422


class LeaseLost(Conflict):
    def __init__(self, lease_id: str):
        super().__init__(
            "lease_lost",
            "lease is unknown, expired or superseded; the job is no longer yours",
            {"lease_id": lease_id},
        )
