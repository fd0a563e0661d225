"""Request decoding and response encoding shared by the route modules."""

from __future__ import annotations

import asyncio
import re
from typing import Any, Type, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .errors import BadRequest, Unprocessable
from .models import ErrorBody, ErrorDetail, encoder
from .auth import principal
from .routing import Param

MAX_PAGE = 1000
# Nesting allowed in a JSON body: wire types are a few levels deep, and
# msgspec recurses once per level, so a limit keeps far from Python's.
MAX_JSON_DEPTH = 64

T = TypeVar("T")


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encoder.encode(content)


def error_response(status: int, code: str, message: str, details: object = None,
                   headers: dict[str, str] | None = None) -> JSON:
    return JSON(ErrorBody(ErrorDetail(code, message, details)), status_code=status, headers=headers)


async def decode_body(request: Request, type_: Type[T], *, empty_ok: bool = False) -> T:
    """Strictly decodes a JSON body into a wire type. An empty body is the
    type's defaults when `empty_ok` (the seed worker sends heartbeats bare)."""
    body = await request.body()
    # A token revoked while the body was on its way does not act.
    await request.app.state.auth.check_alive(principal(request))
    if not body.strip():
        if empty_ok:
            return type_()
        raise BadRequest("empty_body", "a JSON body is required")
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        if too_deep(body):
            raise too_deep_error() from None
        raise Unprocessable("invalid_body", str(exc), {"field": _field_of(str(exc))}) from None
    except msgspec.DecodeError as exc:
        raise BadRequest("malformed_json", f"body is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise BadRequest("malformed_json", f"body is not UTF-8 (bad byte at offset {exc.start})") from None
    except RecursionError:
        # msgspec recurses per nesting level, even to skip an unknown field
        raise too_deep_error() from None


def too_deep_error() -> BadRequest:
    return BadRequest("malformed_json", f"body is nested more than {MAX_JSON_DEPTH} levels deep",
                      {"limit": MAX_JSON_DEPTH})


def too_deep(body: bytes) -> bool:
    """Whether a JSON text nests deeper than MAX_JSON_DEPTH. Only asked on
    the way to refusing a body anyway, so a deep one is named as such
    whatever part of the schema it broke first."""
    try:
        top = msgspec.json.decode(body)
    except RecursionError:
        return True
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False
    level: list[object] = [top]
    for _ in range(MAX_JSON_DEPTH):
        level = [child for node in level if isinstance(node, (list, dict))
                 for child in (node.values() if isinstance(node, dict) else node)]
        if not any(isinstance(node, (list, dict)) for node in level):
            return False
    return True


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


async def _gone(request: Request) -> None:
    # Once the body is read, the next message is the client hanging up.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def wait_unless_gone(request: Request, event: asyncio.Event, timeout: float) -> bool:
    """Waits for `event`, at most `timeout` seconds; False as soon as the
    client has gone away (a long-poll must not outlive its client)."""
    waiting = asyncio.ensure_future(event.wait())
    gone = asyncio.ensure_future(_gone(request))
    try:
        await asyncio.wait({waiting, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        gone.cancel()
    return not (gone.done() and not gone.cancelled() and gone.exception() is None)


class _Paging:
    """`limit` and `offset` of a listing, bounded."""

    params = (
        Param("limit", int, f"at most this many items (default 100; above {MAX_PAGE} means {MAX_PAGE})"),
        Param("offset", int, "skip this many items first (default 0)"),
    )

    def __call__(self, request: Request) -> tuple[int, int]:
        limit = min(query_int(request, "limit", 100, minimum=1), MAX_PAGE)
        return limit, query_int(request, "offset", 0)


page_params = _Paging()


STREAM_ID = re.compile(r"^(\d{1,20})-(\d{1,20})\Z")


def stream_id(value: str, name: str, code: str = "invalid_after") -> str:
    """A Redis stream entry id (as sent in SSE `id:` lines), e.g. 1710000000000-0."""
    match = STREAM_ID.match(value)
    if not match or any(int(part) >= 2**64 for part in match.groups()):
        raise BadRequest(code, f"{name} must be a stream id like 1710000000000-0, got {value!r}",
                         {"field": name})
    return value


def query_flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise Unprocessable("invalid_query", f"{name} must be true or false, got {raw!r}", {"field": name})
