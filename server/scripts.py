"""The Lua scripts in server/lua/, each with the shared pieces it includes.

A script names what it needs with `--- @include "name"` lines (BullMQ's
convention); those files (`_name.lua`, never run on their own) are inlined
once each, dependencies first, so a script carries only the helpers it
uses. Redis caches each script by its SHA; redis-py's Script object sends
EVALSHA and falls back to EVAL once after a Redis restart.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis

_INCLUDE = re.compile(r'^--- @include "(\w+)"[ \t]*$', re.MULTILINE)


def _text(name: str) -> str:
    return (resources.files("server") / "lua" / f"{name}.lua").read_text()


@cache
def source(name: str) -> str:
    """The script `name` with its includes inlined, each once, in dependency order."""
    done: list[str] = []

    def visit(part: str, chain: tuple[str, ...]) -> None:
        if part in done:
            return
        if part in chain:
            raise ValueError(f"Lua include cycle: {' -> '.join(chain + (part,))}")
        for include in _INCLUDE.findall(_text(part)):
            visit(f"_{include}", chain + (part,))
        done.append(part)

    visit(name, ())
    return "\n".join(_INCLUDE.sub("", _text(part)) for part in done)


def names() -> list[str]:
    """Every runnable script (the files not starting with '_')."""
    lua = resources.files("server") / "lua"
    return sorted(p.name[:-4] for p in lua.iterdir() if p.name.endswith(".lua") and not p.name.startswith("_"))


class Scripts:
    """Every script registered on one client; `call` runs one against a key prefix."""

    def __init__(self, redis: Redis, prefix: str):
        self._prefix = prefix
        self._scripts = {name: redis.register_script(source(name)) for name in names()}

    async def call(self, name: str, *args: Any) -> Any:
        return await self._scripts[name](keys=[self._prefix], args=list(args))
