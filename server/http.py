"""Request decoding and response encoding shared by the route modules."""

from __future__ import annotations

import re
from typing import Any, Type, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .errors import BadRequest, Unprocessable
from .models import ErrorBody, ErrorDetail, encoder

T = TypeVar("T")


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encoder.encode(content)


def error_response(status: int, code: str, message: str, details: object = None) -> JSON:
    return JSON(ErrorBody(ErrorDetail(code, message, details)), status_code=status)


async def decode_body(request: Request, type_: Type[T], *, empty_ok: bool = False) -> T:
    """Strictly decodes a JSON body into a wire type. An empty body is the
    type's defaults when `empty_ok` (the seed worker sends heartbeats bare)."""
    body = await request.body()
    if not body.strip():
        if empty_ok:
            return type_()
        raise BadRequest("empty_body", "a JSON body is required")
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        raise Unprocessable("invalid_body", str(exc), {"field": _field_of(str(exc))}) from None
    except msgspec.DecodeError as exc:
        raise BadRequest("malformed_json", f"body is not valid JSON: {exc}") from None


def _field_of(message: str) -> str:
    """The JSON path msgspec names: "... - at `$.jobs[0].id`", and for a
    missing field "Object missing required field `x` - at `$.lease`"."""
    path = "$"
    if " - at `" in message:
        message, path = message.rsplit(" - at `", 1)
        path = path.rstrip("`")
    missing = re.search(r"missing required field `([^`]+)`", message)
    return f"{path}.{missing.group(1)}" if missing else path


def query_int(request: Request, name: str, default: int, minimum: int = 0, maximum: int = 2**31 - 1) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Unprocessable("invalid_query", f"{name} must be an integer, got {raw!r}",
                            {"field": name}) from None
    if not minimum <= value <= maximum:
        raise Unprocessable("invalid_query", f"{name} must be between {minimum} and {maximum}",
                            {"field": name})
    return value


STREAM_ID = re.compile(r"^(\d{1,20})-(\d{1,20})\Z")


def stream_id(value: str, name: str) -> str:
    """A Redis stream entry id (as sent in SSE `id:` lines), e.g. 1710000000000-0."""
    match = STREAM_ID.match(value)
    if not match or any(int(part) >= 2**64 for part in match.groups()):
        raise BadRequest("invalid_after", f"{name} must be a stream id like 1710000000000-0, got {value!r}",
                         {"field": name})
    return value


def query_flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise Unprocessable("invalid_query", f"{name} must be true or false, got {raw!r}", {"field": name})
