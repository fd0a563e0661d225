"""The Lua scripts in server/lua/, each with the shared pieces it includes.

A script names what it needs with `--- @include "name"` lines (BullMQ's
convention); those files (`_name.lua`, never run on their own) are inlined
once each, dependencies first, so a script carries only the helpers it
uses. Redis caches each script by its SHA; redis-py's Script object sends
EVALSHA and falls back to EVAL once after a Redis restart.

A script may also run other scripts whole, in its own call: `--- @use
"claim"` makes claim.lua's body a function `claim_script(argv)` (its
includes come along), so the batch forms (claim several, a result and the
next claim, many heartbeats) run the very code of the single forms, in one
atomic call, instead of copies that would drift from them.

The hot path's scripts (FUNCTIONS) run as Redis Functions on a real Redis:
an EVALSHA runs its whole script on every call, which defines every helper
it includes anew (about 8 us of Redis's time for a claim, 20 for a
complete, 26 for a batch of results, before their first command); a
function library defines them once, when it loads. The same source either
way: library() wraps it, and sets the state a call keeps for itself (the
`-- per call` locals, see _base.lua) afresh before each call. A library is
named by a hash of its source, so servers of two versions on one Redis each
call their own; it is loaded on first use and again when Redis has lost it
(a restart without persistence, FUNCTION FLUSH). The embedded store
(fakeredis), and a Redis without Functions or that refuses FUNCTION LOAD,
keep EVALSHA.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from functools import cache
from importlib import resources
from typing import Any, Optional

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .metrics.tally import Tally
from .redis_lean import LeanRedis

_INCLUDE = re.compile(r'^--- @include "(\w+)"[ \t]*$', re.MULTILINE)
_USE = re.compile(r'^--- @use "(\w+)"[ \t]*$', re.MULTILINE)
# A reply carrying NOTES or DECIDE: [NOTES_MARK, [line, ...], [run, job, ...],
# the script's own reply].
NOTES_MARK = "__rota_notes"
_UNPACK_LINE = "local unpack = unpack or table.unpack"
_PER_CALL = re.compile(r"^local (\w+)(?: = (.+?))? -- per call$", re.MULTILINE)
# The scripts of the worker's hot path, run as Redis Functions where Redis has them.
FUNCTIONS = frozenset({"claim", "claim_many", "complete", "fail", "results", "heartbeat", "heartbeat_many"})
events_log = logging.getLogger("rota.events")


def _text(name: str) -> str:
    return (resources.files("server") / "lua" / f"{name}.lua").read_text()


@cache
def source(name: str) -> str:
    """The script `name` with its includes inlined, each once, in dependency
    order, and the scripts it uses as functions ahead of its body."""
    helpers, functions, body, notes = _parts(name)
    if not notes:  # no NOTES to hand back
        return "\n".join([*helpers, *functions, body])
    # The body runs as a function so its reply can be handed back with the
    # NOTES and DECIDE it left (see _base.lua), only when there are some.
    return "\n".join([*helpers, *functions, "local function main()", body, "end", *_ending("main()")])


def _ending(call: str) -> list[str]:
    """How a call ends, run by EVALSHA or as a function alike: its body
    (`call`), what it left to its end (AT_END, see _base.lua), then its
    reply, with the NOTES and DECIDE it left when there are some."""
    return [f"local reply = {call}",
            "for i = 1, #AT_END do AT_END[i]() end",
            "if #NOTES == 0 and #DECIDE == 0 then return reply end",
            f"return {{'{NOTES_MARK}', NOTES, DECIDE, reply}}"]


@cache
def library(name: str) -> tuple[str, str]:
    """(function name, library source): the script `name` as a Redis
    Functions library of one function, its helpers defined at load."""
    helpers, functions, body, notes = _parts(name)
    if not notes:
        raise ValueError(f"{name}: only a script that includes _base.lua runs as a function")
    resets = ["P = keys[1]"]
    for part in helpers:
        resets += [f"{var} = {init or 'nil'}" for var, init in _PER_CALL.findall(part)]
    # no global unpack in a library (see _unpack.lua)
    helpers = [part.replace(_UNPACK_LINE, _body("_unpack")) for part in helpers]
    if not any("local function unpack(" in part for part in helpers):
        raise ValueError(f"{name}: _base.lua's unpack line not found")
    code = "\n".join(["local KEYS = {} -- a function is given its keys; P is set per call", *helpers, *functions,
                      "local function main(ARGV)", body, "end",
                      "redis.register_function('%FN%', function(keys, args)",
                      *resets,
                      *(f"  {line}" for line in _ending("main(args)")),
                      "end)"])
    # named by all of its text, wrapper included: a library of the same name is the same code
    fn = f"rota_{name}_{hashlib.sha1(code.encode()).hexdigest()[:16]}"
    return fn, f"#!lua name={fn}\n" + code.replace("'%FN%'", f"'{fn}'")


def _parts(name: str) -> tuple[list[str], list[str], str, bool]:
    """The helpers `name` includes, the scripts it uses (as functions), its
    body, and whether it keeps NOTES (includes _base.lua)."""
    used: list[str] = []

    def use(script: str, chain: tuple[str, ...]) -> None:
        if script in used:
            return
        if script in chain:
            raise ValueError(f"Lua use cycle: {' -> '.join(chain + (script,))}")
        for other in _USE.findall(_text(script)):
            use(other, chain + (script,))
        used.append(script)

    use(name, ())
    done: list[str] = []

    def visit(part: str, chain: tuple[str, ...]) -> None:
        if part in done:
            return
        if part in chain:
            raise ValueError(f"Lua include cycle: {' -> '.join(chain + (part,))}")
        for include in _INCLUDE.findall(_text(part)):
            visit(f"_{include}", chain + (part,))
        done.append(part)

    for script in used:
        for include in _INCLUDE.findall(_text(script)):
            visit(f"_{include}", (script,))
    helpers = [_body(part) for part in done]
    # Each used script's ARGV is its function's argument: its body reads
    # ARGV as it does when run alone, and its `return` is the function's.
    functions = [f"local function {script}_script(ARGV)\n{_body(script)}\nend" for script in used[:-1]]
    return helpers, functions, _body(name), "_base" in done


def _body(part: str) -> str:
    return _USE.sub("", _INCLUDE.sub("", _text(part)))


def names() -> list[str]:
    """Every runnable script (the files not starting with '_')."""
    lua = resources.files("server") / "lua"
    return sorted(p.name[:-4] for p in lua.iterdir() if p.name.endswith(".lua") and not p.name.startswith("_"))


class Scripts:
    """Every script registered on one client; `call` runs one against a key
    prefix, through `lean` when given (server/redis_lean.py: the scripts'
    own pipelined connection), else through `redis`. Each call's time goes
    to `tally` (rota_redis_script_duration_seconds)."""

    def __init__(self, redis: Redis, prefix: str, lean: Optional[LeanRedis] = None, tally: Optional[Tally] = None):
        self._prefix = prefix
        self._keys = [prefix]
        self._redis = redis
        self._lean = lean
        self.tally = tally if tally is not None else Tally()
        self._scripts = {name: redis.register_script(source(name)) for name in names()}
        # None: not tried yet; False: EVALSHA for good (the embedded store,
        # or a Redis without Functions or refusing FUNCTION LOAD).
        self.functions: Optional[bool] = False if type(redis).__module__.startswith("fakeredis") else None

    async def call(self, name: str, *args: Any) -> Any:
        """The script's reply. Jobs it left to decide are dropped: for
        scripts that leave none (the store calls call_deciding)."""
        return (await self.call_deciding(name, *args))[0]

    async def call_deciding(self, name: str, *args: Any) -> tuple[Any, list[tuple[str, str]]]:
        """(the script's reply, the (run, job) pairs it left to decide)."""
        began = time.perf_counter()
        if name in FUNCTIONS and self.functions is not False:
            reply = await self._function(name, args)
        else:
            reply = await self.call_raw(name, args)
        self.tally.script_call(time.perf_counter() - began, name)
        if type(reply) is list and reply and reply[0] == NOTES_MARK:
            for line in reply[1]:
                events_log.info("%s", _one_line(line))
            pending = reply[2] or []
            pairs = [(pending[i], pending[i + 1]) for i in range(0, len(pending) - 1, 2)]
            return (reply[3] if len(reply) > 3 else None), pairs
        return reply, []

    async def _command(self, *args: Any) -> Any:
        if self._lean is not None:
            return await self._lean.execute(*args)
        return await self._redis.execute_command(*args)

    async def _function(self, name: str, args: tuple) -> Any:
        fn, lib = library(name)
        try:
            reply = await self._command("FCALL", fn, 1, self._prefix, *args)
            self.functions = True  # (another process may have loaded it)
            return reply
        except ResponseError as exc:
            said = str(exc).lower()
            if "function not found" not in said:
                if "unknown command" in said:
                    self.functions = False  # a Redis before 7.0
                elif "noperm" in said or "no permissions" in said:
                    events_log.warning("Redis refused FCALL (%s): the scripts run with EVALSHA", exc)
                    self.functions = False  # an ACL user without FCALL
                else:
                    raise
                return await self.call_raw(name, args)
        try:
            await self._command("FUNCTION", "LOAD", lib)
        except ResponseError as exc:
            if "already exists" not in str(exc):  # another process loaded it first
                events_log.warning("Redis refused FUNCTION LOAD (%s): the scripts run with EVALSHA", exc)
                self.functions = False
                return await self.call_raw(name, args)
        self.functions = True
        return await self._command("FCALL", fn, 1, self._prefix, *args)

    async def call_raw(self, name: str, args: tuple) -> Any:
        """The script's whole reply, by EVALSHA."""
        script = self._scripts[name]
        if self._lean is not None:
            return await self._lean.evalsha(script.sha, script.script, self._keys, args)
        return await script(keys=[self._prefix], args=list(args))


def _one_line(text: str, width: int = 300) -> str:
    """Errors quote a job's stderr: one line in the log, bounded."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"
