"""Which Redis keys and channels each Lua script touches, and which server
modules read them directly, found in the source (server/lua, server/**.py)
so the design page's key table cannot drift from the code.

A key is named by its family: the literal after the namespace prefix, up to
and including its first ':' (`rj:` for `rj:<run>:<job>`, `dead` for
`dead`). In Lua every key is built as `P .. 'family...'`, directly or in a
helper such as `jkey(run, job)`; a script touches what its own code builds
and what the helpers it calls (from its `--- @include`d files, transitively)
build. A family used as the target of a PUBLISH is a channel, not a key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "server" / "lua"

_LITERAL = re.compile(r"P \.\. '([a-z_]+:?)")
# A top-level function: on one line (`local function jkey(run, job) return ... end`),
# or up to the first `end` at the start of a line; `function name(` without
# `local` defines a function declared earlier (_control.lua's hooks).
_FUNCTION = re.compile(r"^(?:local )?function (\w+)\((?:[^\n]*\bend$|.*?\n^end\b)", re.MULTILINE | re.DOTALL)
_CALL = re.compile(r"\b(\w+)\(")
# (publish_once, _base.lua's, publishes too)
_PUBLISH = re.compile(r"(?:redis\.call\('PUBLISH',|publish_once\()\s*(?:P \.\. '([a-z_]+:?)'|(\w+)\()")
# The server's own reads: Store.key("rj", run, job), f"{self.prefix}token:{id}", prefix + "tokens".
_PY_KEY = re.compile(r"""\.key\(\s*"([a-z_]+)"(\s*,)?|\{self\.prefix\}([a-z_]+:?)|prefix \+ "([a-z_]+:?)\"""")


@dataclass
class _Unit:
    """A function body, or a script's own code."""
    keys: set[str] = field(default_factory=set)
    channels: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    publish_calls: set[str] = field(default_factory=set)


def _unit(text: str) -> _Unit:
    unit = _Unit()
    for literal, helper in _PUBLISH.findall(text):
        if literal:
            unit.channels.add(literal)
        else:
            unit.publish_calls.add(helper)
    rest = _PUBLISH.sub("", text)
    unit.keys = set(_LITERAL.findall(rest))
    unit.calls = set(_CALL.findall(rest))
    return unit


@dataclass(frozen=True)
class Model:
    keys: dict[str, list[str]]  # family -> the scripts that touch it
    channels: dict[str, list[str]]  # family -> the scripts that publish on it
    readers: dict[str, list[str]]  # key family -> server modules reading it outside scripts


@cache
def model() -> Model:
    functions: dict[str, _Unit] = {}
    scripts: dict[str, str] = {}
    for path in sorted(LUA.glob("*.lua")):
        text = path.read_text()
        for m in _FUNCTION.finditer(text):
            functions[m.group(1)] = _unit(m.group(0))
        if not path.name.startswith("_"):
            scripts[path.stem] = text

    keys: dict[str, set[str]] = {}
    channels: dict[str, set[str]] = {}
    for name, text in scripts.items():
        start = _unit(text)
        seen: set[str] = set()
        todo = [start]
        while todo:
            unit = todo.pop()
            for family in unit.keys:
                keys.setdefault(family, set()).add(name)
            published = set(unit.channels)
            for helper in unit.publish_calls:  # jobchan(run, job): the family its body builds
                published |= functions[helper].keys if helper in functions else set()
            for family in published:
                channels.setdefault(family, set()).add(name)
            for call in unit.calls - seen:
                if call in functions:
                    seen.add(call)
                    todo.append(functions[call])

    readers: dict[str, set[str]] = {}
    for path in sorted((ROOT / "server").rglob("*.py")):
        for key, more, fstring, plus in _PY_KEY.findall(path.read_text()):
            family = key + (":" if more else "") if key else fstring or plus
            readers.setdefault(family, set()).add(str(path.relative_to(ROOT / "server")))
    for family in set(channels) - set(keys):  # the server subscribing, not reading a key
        readers.pop(family, None)

    def sort(d: dict[str, set[str]]) -> dict[str, list[str]]:
        return {k: sorted(v) for k, v in sorted(d.items())}

    return Model(sort(keys), sort(channels), sort(readers))


def family(pattern: str) -> str:
    """`rj:<run>:<job>` -> `rj:`; `dead` -> `dead`."""
    head = pattern.split("<", 1)[0]
    return head[: head.index(":") + 1] if ":" in head else head
