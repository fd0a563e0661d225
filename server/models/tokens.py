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
