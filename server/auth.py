"""Who is calling, and may they: bearer tokens, scopes and run tokens.

Three kinds of credential:
- the bootstrap admin token (ROTA_ADMIN_TOKEN), compared with the setting;
- API tokens (`rota_<id>_<secret>`, server/tokens.py) with scopes;
- run tokens (`rotr_<lease_id>_<mac>`), one per lease, an HMAC of the lease
  id under a key shared by every replica through Redis. A run token needs
  no lookup: it proves which lease it is for, and the lease scripts already
  refuse a lease that has ended, so it dies with its lease.

And one stand-in for a token: a stream ticket (`rots_<expiry>.<token id>.<mac>`),
for a browser's EventSource, which cannot send a header. It opens one event
stream path, read-only, for STREAM_TICKET_SECS, and only while the token it
was issued to is still valid. It is stateless, an HMAC over path, expiry and
token id under a key derived from the run-token key: any replica checks it
without a Redis round trip, and nothing is stored per ticket. Stateless
means a ticket may be used again within its minute, which EventSource needs:
it reconnects with the very same URL.

Checking a token must not cost a Redis round trip on the claim, heartbeat
and complete path: each process caches the API tokens it has seen. A
revocation is published to every replica, which drops its copy at once; a
reconnect of the pub/sub connection (messages may have been missed) drops
them all, and a periodic pass re-checks the survivors anyway.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Optional

from redis.exceptions import RedisError
from starlette.requests import Request

from . import limits
from .errors import Forbidden, Unauthenticated
from .tokens import TokenRecord, TokenStore, secret_hash, split_token

log = logging.getLogger("rota.auth")

RUN_PREFIX = "rotr_"
TICKET_PREFIX = "rots_"
TICKET_PARAM = "ticket"  # the query parameter a stream ticket rides in
_MAC_CHARS = 43  # a SHA-256 HMAC in unpadded base64url
ADMIN_TOKEN_ID = "admin"  # the bootstrap token's id; the Lua scripts know it too
# What each scope lets a token do: submit includes read, admin everything.
GRANTS: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "submit": frozenset({"read", "submit"}),
    "worker": frozenset({"worker"}),
    "admin": frozenset({"read", "submit", "worker", "admin"}),
}
# A route's scope is one of these, or two joined by '|' (either will do):
# `public` needs no token; `lease` is a lease's own call (its run token, or
# the worker token holding it, which the lease scripts check on the lease);
# `metrics` is METRICS_TOKEN's, which no other token holds.
ROUTE_SCOPES = ("public", "read", "submit", "worker", "admin", "lease", "metrics")
_MISSING_CACHE = 10_000
FLUSH_SECS = 10.0
REVALIDATE_SECS = 60.0


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str  # '' with auth off, and for a run token
    grants: frozenset[str]
    run_lease: Optional[str] = None  # the lease a run token speaks for

    @property
    def lease_caller(self) -> str:
        """Who a lease script checks the lease against: '*' is already
        authorised (auth off, or the lease's own run token)."""
        return self.token_id or "*"


ANONYMOUS = Principal("", GRANTS["admin"])
ADMIN = Principal(ADMIN_TOKEN_ID, GRANTS["admin"])
# METRICS_TOKEN: a scraper's, good only for GET /metrics.
METRICS_TOKEN_ID = "metrics"
METRICS = Principal(METRICS_TOKEN_ID, frozenset({"metrics"}))


def principal(request: Request) -> Principal:
    """The caller of a request that passed its route's guard."""
    return request.scope.get("rota.principal", ANONYMOUS)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Auth:
    def __init__(self, enabled: bool, admin_token: Optional[str] = None, metrics_token: Optional[str] = None):
        self.enabled = enabled
        self._admin = admin_token.encode() if admin_token else None
        self._metrics = metrics_token.encode() if metrics_token else None
        self._store: Optional[TokenStore] = None
        self._run_key = b""
        self._ticket_key = b""
        self._cache: dict[str, tuple[TokenRecord, Principal]] = {}
        self._missing: dict[str, None] = {}  # ids known not to exist (insertion-ordered, bounded)
        # Bumped whenever cached tokens may have become stale; a lookup that
        # straddles a bump does not cache what it read.
        self._generation = 0
        self._last_used: dict[str, int] = {}

    async def start(self, store: TokenStore) -> None:
        self._store = store
        self._run_key = await store.run_key()
        # Its own key, so no ticket can ever pass as a run token's MAC or back.
        self._ticket_key = hmac.new(self._run_key, b"rota stream tickets", hashlib.sha256).digest()

    # ---- run tokens ---------------------------------------------------------------

    def run_token(self, lease_id: str) -> str:
        mac = hmac.new(self._run_key, lease_id.encode(), hashlib.sha256).digest()
        return f"{RUN_PREFIX}{lease_id}_{_b64(mac)}"

    def _run_lease(self, token: str) -> str:
        # The MAC is base64url, which has '_' too: it is cut by its length.
        lease_id, sep = token[len(RUN_PREFIX):-_MAC_CHARS - 1], token[-_MAC_CHARS - 1:-_MAC_CHARS]
        # bytes: compare_digest refuses str with non-ASCII characters
        if sep != "_" or not lease_id or not hmac.compare_digest(token.encode(), self.run_token(lease_id).encode()):
            raise Unauthenticated("invalid run token")
        return lease_id

    # ---- stream tickets -------------------------------------------------------------

    def _ticket_mac(self, path: str, expires_ms: int, token_id: str) -> str:
        message = f"{path}\n{expires_ms}\n{token_id}".encode()
        return _b64(hmac.new(self._ticket_key, message, hashlib.sha256).digest())

    def stream_ticket(self, path: str, caller: Principal) -> tuple[str, int]:
        """(a ticket for the stream at `path`, when it expires in epoch ms)."""
        expires = _now_ms() + limits.STREAM_TICKET_SECS * 1000
        token_id = caller.token_id
        return f"{TICKET_PREFIX}{expires}.{token_id}.{self._ticket_mac(path, expires, token_id)}", expires

    async def _ticket_caller(self, ticket: str, path: str) -> Principal:
        expires, _, rest = ticket[len(TICKET_PREFIX):].partition(".")
        token_id, _, mac = rest.partition(".")
        if not (ticket.startswith(TICKET_PREFIX) and expires.isdigit() and len(expires) <= 16 and mac
                and hmac.compare_digest(mac.encode(), self._ticket_mac(path, int(expires), token_id).encode())):
            raise Unauthenticated("invalid stream ticket: a ticket opens only the stream path it was issued for")
        if _now_ms() >= int(expires):
            raise Unauthenticated("stream ticket expired: ask for a new one (POST /api/stream-tickets)")
        # Only while the token that asked for it is still good.
        if token_id == ADMIN_TOKEN_ID:
            if self._admin is None:
                raise Unauthenticated("the token this stream ticket was issued to is no longer valid")
        else:
            record, _ = self._cache.get(token_id) or await self._load(token_id)
            if record.expires_ms is not None and _now_ms() >= record.expires_ms:
                raise Unauthenticated("token expired")
        return Principal(token_id, GRANTS["read"])

    # ---- checking a request -------------------------------------------------------

    async def authorize(self, request: Request, scope: str, stream: bool = False) -> Principal:
        """The caller, if it may call a route of this scope; else 401/403.
        `stream`: the route is an event stream, which a stream ticket
        (`?ticket=`) may open in place of the header."""
        if not self.enabled or scope == "public":
            return ANONYMOUS
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        token = token.strip()
        if kind.lower() != "bearer" or not token:
            ticket = request.query_params.get(TICKET_PARAM)
            if ticket is not None and stream and scope == "read":
                return await self._ticket_caller(ticket, request.url.path)
            raise Unauthenticated("this call needs a token: send Authorization: Bearer <token>"
                                  + (" (a stream ticket opens only an event stream)" if ticket is not None else ""))
        if token.startswith(RUN_PREFIX):
            lease_id = self._run_lease(token)
            if scope == "lease" and request.path_params.get("lease_id") == lease_id:
                return Principal("", frozenset(), run_lease=lease_id)
            raise Forbidden("a run token is good only for its own lease's calls",
                            {"required_scope": "worker" if scope == "lease" else scope})
        caller = await self._token(token)
        needed = [("worker" if s == "lease" else s) for s in scope.split("|")]
        if not any(n in caller.grants for n in needed):
            wanted = " or ".join(needed)
            raise Forbidden(f"this call needs a token with the {wanted} scope", {"required_scope": wanted})
        return caller

    async def _token(self, token: str) -> Principal:
        if self._admin is not None and hmac.compare_digest(token.encode(), self._admin):
            return ADMIN
        if self._metrics is not None and hmac.compare_digest(token.encode(), self._metrics):
            return METRICS
        parts = split_token(token)
        if parts is None:
            raise Unauthenticated("unknown token")
        token_id, secret = parts
        cached = self._cache.get(token_id)
        if cached is None:
            cached = await self._load(token_id)
        record, caller = cached
        if not hmac.compare_digest(secret_hash(secret), record.hash):
            raise Unauthenticated("unknown token")
        now = _now_ms()
        if record.expires_ms is not None and now >= record.expires_ms:
            raise Unauthenticated("token expired")
        self._last_used[token_id] = now
        return caller

    async def _load(self, token_id: str) -> tuple[TokenRecord, Principal]:
        if token_id in self._missing or self._store is None:
            raise Unauthenticated("unknown token")
        generation = self._generation
        record = await self._store.load(token_id)
        if record is None:
            self._remember_missing(token_id)
            raise Unauthenticated("unknown token")
        grants = frozenset().union(*(GRANTS[s] for s in record.scopes if s in GRANTS))
        entry = (record, Principal(token_id, grants))
        if generation == self._generation:
            self._cache[token_id] = entry
        return entry

    def _remember_missing(self, token_id: str) -> None:
        if len(self._missing) >= _MISSING_CACHE:
            self._missing.pop(next(iter(self._missing)))
        self._missing[token_id] = None

    async def check_alive(self, caller: Principal) -> None:
        """For a request that waits (a long-poll): 401 once its token has been
        revoked or has expired since it was let in."""
        if not self.enabled or caller.token_id in ("", ADMIN_TOKEN_ID):
            return
        entry = self._cache.get(caller.token_id)
        if entry is None:  # revoked, or the cache was reset: look again
            entry = await self._load(caller.token_id)
        expires = entry[0].expires_ms
        if expires is not None and _now_ms() >= expires:
            raise Unauthenticated("token expired")

    # ---- keeping the cache true ------------------------------------------------------

    def revoked(self, token_id: str) -> None:
        """A token was revoked (here, or on another replica via pub/sub)."""
        self._generation += 1
        self._cache.pop(token_id, None)
        self._last_used.pop(token_id, None)
        self._remember_missing(token_id)

    def record(self, token_id: str) -> Optional[TokenRecord]:
        """The cached record of a token that passed authorize()."""
        entry = self._cache.get(token_id)
        return entry[0] if entry else None

    def reset(self) -> None:
        """Revocations may have been missed (pub/sub reconnected): forget every copy."""
        self._generation += 1
        self._cache.clear()
        self._missing.clear()

    async def upkeep(self, stop: asyncio.Event) -> None:
        """Flushes last-use times every FLUSH_SECS and re-checks cached tokens
        every REVALIDATE_SECS, until `stop` is set; a final flush on the way out.
        Started before Redis has answered, it finds no token store until
        start() has run, and does nothing meanwhile."""
        next_check = time.monotonic() + REVALIDATE_SECS
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), FLUSH_SECS)
            except asyncio.TimeoutError:
                pass
            # Apart: a flush Redis refuses (maxmemory) must not stop the re-check.
            try:
                await self.flush()
            except (RedisError, OSError) as exc:
                log.warning("recording token use failed (%s); retrying", exc)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + REVALIDATE_SECS
                try:
                    await self._revalidate()
                except (RedisError, OSError) as exc:
                    log.warning("re-checking cached tokens failed (%s); retrying", exc)

    async def flush(self) -> None:
        if self._last_used and self._store is not None:
            pending, self._last_used = self._last_used, {}
            await self._store.touch(pending)

    async def _revalidate(self) -> None:
        ids = list(self._cache)
        if ids and self._store is not None:
            for token_id, alive in zip(ids, await self._store.exists(ids)):
                if not alive:
                    self.revoked(token_id)
