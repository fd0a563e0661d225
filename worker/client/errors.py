"""What a failed call to the rota server raises: `Unreachable` (no answer:
connection refused, reset, timed out) or `ApiError` (the server answered
with an error status and body), both `RotaError`s whose messages are fit
to print as they are; and which of them are worth trying again."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from server.models import ErrorBody


class RotaError(Exception):
    """Any failure talking to the server; str() is a one-line message for users."""


class Unreachable(RotaError):
    def __init__(self, server: str, cause: Exception):
        detail = str(cause) or type(cause).__name__
        super().__init__(f"cannot reach rota server at {server}: {detail}")


class ApiError(RotaError):
    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(f"error {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            err = msgspec.json.decode(response.content, type=ErrorBody).error
            return cls(response.status_code, err.code, err.message, err.details)
        except msgspec.MsgspecError:
            text = response.text.strip()[:200] or response.reason_phrase
            return cls(response.status_code, f"http_{response.status_code}", text)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the server did not answer, failed on its side, or
    refused for now (429: a per-token cap, which frees as old workers are
    forgotten)."""
    return isinstance(exc, Unreachable) or (isinstance(exc, ApiError) and (exc.status >= 500 or exc.status == 429))


# The answers of a server restarting, of a proxy in front of one that is
# down, and of a server whose Redis is down (503 store_unavailable).
OUTAGE_STATUSES = frozenset({502, 503, 504})


def is_outage(exc: BaseException) -> bool:
    """The server is out for now (not failing on a request of ours): a
    waiting command tries again (worker/reconnect.py)."""
    return isinstance(exc, Unreachable) or (isinstance(exc, ApiError) and exc.status in OUTAGE_STATUSES)
