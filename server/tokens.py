"""API tokens in Redis: create, list, load, revoke, and last-use times.

A token is `rota_<id>_<secret>`: the id (16 hex digits) finds the record,
the secret (256 random bits, URL-safe base64) proves it. Redis keeps only
the SHA-256 of the secret, so a leaked dump holds no usable credential.
Checking a presented token happens in server/auth.py, against a copy
cached in each process.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Optional

from redis.asyncio import Redis

from .errors import NotFound
from .models import TokenOut
from .scripts import Scripts
from .settings import Settings

PREFIX = "rota_"


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> Optional[tuple[str, str]]:
    """(id, secret) of a well-formed API token, else None."""
    if not token.startswith(PREFIX):
        return None
    token_id, sep, secret = token[len(PREFIX):].partition("_")
    if not sep or len(token_id) != 16 or not secret:
        return None
    return token_id, secret


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    scopes: frozenset[str]
    hash: str
    created_ms: int
    expires_ms: Optional[int]
    last_used_ms: Optional[int] = None

    def out(self) -> TokenOut:
        return TokenOut(id=self.id, name=self.name, scopes=sorted(self.scopes),  # type: ignore[arg-type]
                        created_at_ms=self.created_ms, last_used_at_ms=self.last_used_ms,
                        expires_at_ms=self.expires_ms)


def _int(value: Optional[str]) -> Optional[int]:
    return int(value) if value else None


def _record(token_id: str, row: dict) -> TokenRecord:
    return TokenRecord(
        id=token_id,
        name=row["name"],
        scopes=frozenset(s for s in row["scopes"].split(",") if s),
        hash=row["hash"],
        created_ms=int(row["created"]),
        expires_ms=_int(row.get("expires")),
        last_used_ms=_int(row.get("last_used")),
    )


class TokenStore:
    def __init__(self, redis: Redis, prefix: str, scripts: Scripts):
        self.redis = redis
        self.prefix = prefix
        self._scripts = scripts

    @property
    def channel(self) -> str:
        """Revocations are published here, the token id as the message."""
        return self.prefix + "tokens"

    async def create(self, name: str, scopes: list[str], expires_in_secs: Optional[int]) -> tuple[TokenRecord, str]:
        """The new record and the token to show once."""
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        digest = secret_hash(secret)
        scope_text = ",".join(sorted(set(scopes)))
        ttl = "" if expires_in_secs is None else expires_in_secs
        created, expires = await self._scripts.call("token_create", token_id, name, scope_text, digest, ttl)
        record = TokenRecord(token_id, name, frozenset(scopes), digest, int(created), _int(expires))
        return record, f"{PREFIX}{token_id}_{secret}"

    async def load(self, token_id: str) -> Optional[TokenRecord]:
        row = await self.redis.hgetall(f"{self.prefix}token:{token_id}")
        return _record(token_id, row) if row else None

    async def exists(self, token_ids: list[str]) -> list[bool]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for token_id in token_ids:
                pipe.exists(f"{self.prefix}token:{token_id}")
            return [bool(n) for n in await pipe.execute()]

    async def list(self, limit: int, offset: int) -> list[TokenRecord]:
        ids = await self.redis.zrevrange(f"{self.prefix}tokens", offset, offset + limit - 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for token_id in ids:
                pipe.hgetall(f"{self.prefix}token:{token_id}")
            rows = await pipe.execute()
        return [_record(token_id, row) for token_id, row in zip(ids, rows) if row]

    async def revoke(self, token_id: str) -> TokenRecord:
        flat = await self._scripts.call("token_revoke", token_id)
        if not flat:
            raise NotFound("token_not_found", f"no token {token_id!r}")
        return _record(token_id, dict(zip(flat[::2], flat[1::2])))

    async def touch(self, last_used: dict[str, int]) -> None:
        args: list = []
        for token_id, at in last_used.items():
            args += [token_id, at]
        if args:
            await self._scripts.call("token_touch", *args)

    async def count(self) -> int:
        """How many API tokens the store holds (a revoked one is gone)."""
        return await self.redis.zcard(f"{self.prefix}tokens")

    async def run_key(self) -> bytes:
        """The key every replica signs run tokens with (made by the first to ask)."""
        return bytes.fromhex(await self._scripts.call("run_key", secrets.token_hex(32)))


async def auth_off_refusal(settings: Settings, tokens: TokenStore) -> Optional[str]:
    """Why this server must not serve with auth off, or None. API tokens in
    the store mean the servers beside it run with auth on: one started
    without ROTA_ADMIN_TOKEN by mistake would take anonymous writes. Auth
    off stays possible, said in so many words (ROTA_AUTH=off)."""
    if settings.auth or settings.auth_off_explicit:
        return None
    count = await tokens.count()
    if not count:
        return None
    return (f"refusing to start with auth off: this Redis holds {count} API token{'s' if count != 1 else ''},"
            " so the servers beside this one run with auth on; set ROTA_ADMIN_TOKEN (or ROTA_ADMIN_TOKEN_FILE)"
            " as they do, or ROTA_AUTH=off to serve this store without auth deliberately")
