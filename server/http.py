"""Request decoding and response encoding shared by the route modules."""

from __future__ import annotations

import asyncio
import functools
import re
from typing import Annotated, Any, Type, TypeVar

import msgspec
import msgspec.inspect
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response

from . import integral
from .errors import BadRequest, Unprocessable
from .models import ErrorBody, ErrorDetail, encoder
from .models.core import PATTERN_WORDS
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
        try:
            return msgspec.json.decode(body, type=type_)
        except msgspec.ValidationError as exc:
            # 30.0 where an int is declared is an integer to JSON Schema too.
            return integral.decode(body, type_, exc)
    except msgspec.ValidationError as exc:
        if too_deep(body):
            raise too_deep_error() from None
        raise Unprocessable("invalid_body", _in_words(str(exc)), {"field": _field_of(str(exc))}) from None
    except msgspec.DecodeError as exc:
        # (a typed decode may refuse `[` as no object before it sees the end)
        raise BadRequest("malformed_json", f"body is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise BadRequest("malformed_json", f"body is not UTF-8 (bad byte at offset {exc.start})") from None
    except RecursionError:
        # msgspec recurses per nesting level, even to skip an unknown field
        raise too_deep_error() from None


_REGEX_SAID = re.compile(r"Expected `str` matching regex (?P<shown>'.*') - at ")


def _in_words(message: str) -> str:
    """msgspec's refusal, a registered pattern said in words (PATTERN_WORDS)."""
    said = _REGEX_SAID.match(message)
    if said is None:
        return message
    shown = said["shown"]
    head, cut, tail = shown.partition("...")
    for pattern, words in PATTERN_WORDS.items():
        full = repr(pattern)
        if full == shown or (cut and full.startswith(head) and full.endswith(tail)):
            return f"must be {words}" + message[said.end() - len(" - at "):]
    return message


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
    missing = re.search(r"missing required field `([^`]+)`|^give `([^`]+)`", message)
    return f"{path}.{missing.group(1) or missing.group(2)}" if missing else path


_PARAM_ERRORS = {"query": "invalid_query", "header": "invalid_header", "path": "invalid_path"}


def param(request: Request, p: Param, default: Any = None) -> Any:
    """The value of parameter `p`, checked against its declared type (the
    one /openapi.json shows: the same bounds, enum and pattern); `default`
    when it is absent. An empty value is checked like any other (`?limit=`
    is no number), so what the description refuses is refused."""
    if p.where == "query" and _repeated(p.type):
        raw = request.query_params.getlist(p.name)
        if not raw:
            return default
    elif p.where == "query":
        raw = request.query_params.get(p.name)
    elif p.where == "header":
        raw = request.headers.get(p.name)
    else:
        raw = request.path_params.get(p.name)
    if raw is None:
        return default
    if p.json:
        return _json_param(p, raw)
    try:
        # Lax: the text of a number or a boolean is what a query holds.
        return msgspec.convert(raw, p.type, strict=False)
    except msgspec.ValidationError as exc:
        raise Unprocessable(p.error or _PARAM_ERRORS[p.where],
                            f"{p.name}: {_in_words(str(exc)).split(' - at ')[0]}, got {str(raw)[:100]!r}",
                            {"field": p.name}) \
            from None


def _json_param(p: Param, raw: str) -> Any:
    """A parameter whose value is JSON text of its type."""
    try:
        return msgspec.json.decode(raw, type=p.type)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        why = "nested too deep" if isinstance(exc, RecursionError) else str(exc).split(" - at ")[0]
        raise Unprocessable(p.error or _PARAM_ERRORS[p.where], f"{p.name} must be JSON: {why}, got {raw[:100]!r}",
                            {"field": p.name}) from None


@functools.lru_cache(maxsize=None)
def _repeated(type_: Any) -> bool:
    """A list parameter: given once for each item (?tag=a&tag=b)."""
    info = msgspec.inspect.type_info(type_)
    return isinstance(info.type if isinstance(info, msgspec.inspect.Metadata) else info, msgspec.inspect.ListType)


# Offsets and page sizes above this are refused, not clamped: larger ones
# are typos (Redis ranges take at most 64-bit numbers anyway).
MAX_QUERY_INT = 2**31 - 1
Limit = Annotated[int, Meta(ge=1, le=MAX_QUERY_INT)]
Offset = Annotated[int, Meta(ge=0, le=MAX_QUERY_INT)]


async def _gone(request: Request) -> None:
    # Once the body is read, the next message is the client hanging up.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def wait_unless_gone(request: Request, event: asyncio.Event, timeout: float) -> bool:
    """Waits for `event`, at most `timeout` seconds; False as soon as the
    client has gone away (a long-poll must not outlive its client).

    Once the server has begun to shut down it does not wait at all: the
    notifier's wake-all reached only the long-polls parked at that moment,
    and one that parks later (its body arrived after the signal, or it was
    between a wake-up and its next wait) would wait out its timeout, until
    uvicorn cut it off with a 500. Nothing awaits between this check and
    the wait, so the wake-all either came before it or finds `event`."""
    if request.app.state.notifier.draining:
        return True
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

    limit = Param("limit", Limit, f"at most this many items (default 100; above {MAX_PAGE} means {MAX_PAGE})")
    offset = Param("offset", Offset, "skip this many items first (default 0)")
    params = (limit, offset)

    def __call__(self, request: Request) -> tuple[int, int]:
        return min(param(request, self.limit, 100), MAX_PAGE), param(request, self.offset, 0)


page_params = _Paging()


# A Redis stream entry id (as sent in SSE `id:` lines), e.g. 1710000000000-0:
# 19 digits a part at most, so each is below 2^64 as Redis requires.
StreamId = Annotated[str, Meta(pattern=r"^[0-9]{1,19}-[0-9]{1,19}\Z")]


RESUME = (Param("after", StreamId, "resume after this event id"),
          Param("Last-Event-ID", StreamId, "resume after this event id (what EventSource sends)", where="header"))
IDEMPOTENCY_KEY = Param("Idempotency-Key", Annotated[str, Meta(max_length=200)],
                        "a retried request with the same key and body answers as the first did"
                        " (kept 24 h, per token)", where="header")


def stream_id(value: str, name: str, code: str = "invalid_after") -> str:
    try:
        return msgspec.convert(value, StreamId)
    except msgspec.ValidationError:
        raise BadRequest(code, f"{name} must be a stream id like 1710000000000-0, got {value[:100]!r}",
                         {"field": name}) from None
