"""API tokens."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from msgspec import Meta, Struct


# ---- API tokens -------------------------------------------------------------

Scope = Literal["read", "submit", "worker", "admin"]
SCOPES: tuple[str, ...] = Scope.__args__  # type: ignore[attr-defined]


class TokenCreate(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    scopes: Annotated[list[Scope], Meta(min_length=1, max_length=len(SCOPES))]
    # Unset: the token never expires. At most ten years.
    expires_in_secs: Optional[Annotated[int, Meta(ge=1, le=10 * 365 * 86_400)]] = None


class TokenOut(Struct, kw_only=True):
    id: str
    name: str
    scopes: list[Scope]
    created_at_ms: int
    last_used_at_ms: Optional[int] = None
    expires_at_ms: Optional[int] = None


class TokenCreated(TokenOut, kw_only=True):
    # The secret, shown this once: the server keeps only its hash.
    token: str


# ---- the dashboard's session ----------------------------------------------------


class Whoami(Struct, kw_only=True):
    """`GET /api/whoami`: the calling token, and what it may do."""

    auth: bool  # false: the server checks no token (anyone may do anything)
    token_id: Optional[str] = None  # 'admin' for the bootstrap token
    name: Optional[str] = None
    # What the token may do (submit includes read; admin everything).
    scopes: list[Scope]
    expires_at_ms: Optional[int] = None


# A stream's path, as in the route table, with its ids filled in: the
# event-stream routes' templates (tests/test_openapi.py checks that each
# such route matches it; the ticket route checks the route table itself).
StreamPath = Annotated[str, Meta(
    max_length=1024,
    pattern=r"^(?:/api/(?:runs/[^/?#]+/(?:events|jobs/[^/?#]+/logs)|workflows/[^/?#]+/jobs/[^/?#]+/logs)/stream"
            r"|/v1/runs/[^/?#]+/stream(?:/chunks)?)\Z")]


class TicketRequest(Struct, forbid_unknown_fields=True):
    path: StreamPath


class StreamTicket(Struct, kw_only=True):
    # Pass as ?ticket= to the stream at `path` (and nothing else).
    ticket: str
    path: str
    expires_at_ms: int
    ttl_secs: int
