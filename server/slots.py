"""Who may hold one of a process's MAX_CONNECTIONS connection slots.

A connection is *anonymous* from its accept until one of its requests has
passed a route's token check (with auth off: has reached a route at all).
Anonymous sockets cost an attacker nothing and need no token, so:

- together they may hold at most MAX_CONNECTIONS minus a reserve (a quarter),
  which is left for connections past auth: long-polls and streams;
- from one address (an IPv6 /64 counts as one) at most
  MAX_CONNECTIONS_PER_ADDRESS of them.

When a new connection would break a bound, the oldest anonymous connection
(of the same address first) is closed to make room, not the new one: a
client that sends its request promptly always gets its turn, and idle
sockets only ever push out each other. Connections past auth are never
pushed out; only when they hold every slot is a new connection refused.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from typing import Any, Callable, Optional

ANONYMOUS, TRUSTED, GONE = "anonymous", "trusted", "gone"
# Part of MAX_CONNECTIONS that anonymous connections can never take.
RESERVE_FRACTION = 4


def address_group(client: Optional[tuple[str, int]]) -> str:
    """Whose share a connection counts against: its IPv4 address, or its
    IPv6 /64 (one host is routinely given a whole /64)."""
    if not client:
        return ""  # a Unix socket: one local peer
    host = client[0]
    if ":" not in host:
        return host
    try:
        ip = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


class Slots:
    """The book of open connections of one server. A connection is any
    hashable object; its state lives here, keyed by it."""

    def __init__(self, max_connections: int, per_address: int):
        self.max_connections = max_connections
        self.anonymous_cap = max_connections - max_connections // RESERVE_FRACTION
        self.per_address = per_address
        self.open = 0
        self._state: dict[Any, str] = {}
        # Oldest first, for pushing out; OrderedDict pops its first entry in O(1).
        self._anonymous: OrderedDict[Any, str] = OrderedDict()  # connection -> its address group
        self._groups: dict[str, OrderedDict[Any, None]] = {}

    @property
    def anonymous(self) -> int:
        return len(self._anonymous)

    def admit(self, conn: Any, group: str) -> list[Any]:
        """Counts a just-accepted connection in. Returns the connections to
        close to make room, oldest first; `conn` itself among them when no
        other can go (every other slot is held past auth)."""
        self.open += 1
        self._state[conn] = ANONYMOUS
        self._anonymous[conn] = group
        members = self._groups.setdefault(group, OrderedDict())
        members[conn] = None
        out = []
        if len(members) > self.per_address:
            out.append(self._drop(next(iter(members))))
        while self._anonymous and (len(self._anonymous) > self.anonymous_cap or self.open > self.max_connections):
            out.append(self._drop(next(iter(self._anonymous))))
        return out

    def trust(self, conn: Any) -> None:
        """`conn` carried a request past auth: it is no longer anyone's to push out."""
        if self._state.get(conn) == ANONYMOUS:
            self._forget_anonymous(conn)
            self._state[conn] = TRUSTED

    def release(self, conn: Any) -> None:
        """`conn` is closed (or closing): its slot is free."""
        if self._state.pop(conn, GONE) != GONE:
            self._forget_anonymous(conn)
            self.open -= 1

    def _drop(self, conn: Any) -> Any:
        self.release(conn)
        return conn

    def _forget_anonymous(self, conn: Any) -> None:
        group = self._anonymous.pop(conn, None)
        if group is not None:
            members = self._groups[group]
            members.pop(conn, None)
            if not members:
                del self._groups[group]


def trust_callback(slots: Slots, conn_ref: Callable[[], Any]) -> Callable[[], None]:
    """What a request's scope carries (as `rota.trust`) to mark its
    connection past auth, without a reference from the scope back to the
    connection (which would keep each one alive until the cyclic GC runs)."""

    def trust() -> None:
        conn = conn_ref()
        if conn is not None:
            slots.trust(conn)

    return trust


def trust(scope: dict) -> None:
    """Marks the connection a request came on as past auth (a no-op for
    requests not from a socket, such as in-process test clients)."""
    mark = scope.get("rota.trust")
    if mark is not None:
        mark()
