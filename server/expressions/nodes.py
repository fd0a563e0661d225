"""The parsed form of an expression: small frozen nodes, each with the offset
of the text it came from. Chains of one operator stay flat (`a || b || c`
is one Logical with three operands, `a < b < c` one Compare), so a long
chain costs no depth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

STATUS_FUNCTIONS = frozenset({"success", "failure", "always", "cancelled"})


class Reference(NamedTuple):
    """A context the expression reads: `needs.build.outputs.v` is
    ("needs", "build"); the property is None where the expression reads the
    whole context or chooses the property at run time (`needs[x]`,
    `needs.*`). Context names are lowercased (they are case-insensitive);
    properties are as written."""
    context: str
    property: str | None
    offset: int


class Expr:
    __slots__ = ()
    offset: int

    def children(self) -> tuple[Expr, ...]:
        return ()

    def walk(self):
        """This node and every node below it."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children()))

    def references(self) -> list[Reference]:
        found: list[Reference] = []
        _references(self, found)
        return found

    def contexts(self) -> set[tuple[str, str | None]]:
        """{(context, first property or None)}, e.g. {("needs", "build"), ("matrix", None)}."""
        return {(ref.context, ref.property) for ref in self.references()}

    def calls_status_function(self) -> bool:
        """Whether success(), failure(), always() or cancelled() appears anywhere."""
        return any(isinstance(node, Call) and node.name in STATUS_FUNCTIONS for node in self.walk())


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    value: Any  # None, bool, int, float or str
    offset: int


@dataclass(frozen=True, slots=True)
class Context(Expr):
    name: str  # lowercased
    offset: int


@dataclass(frozen=True, slots=True)
class Star(Expr):
    """`*` in `a.*` or `a[*]`: every element, as a filtered array."""
    offset: int


@dataclass(frozen=True, slots=True)
class Index(Expr):
    """`target.key` (key a string Literal), `target[key]` or `target.*`."""
    target: Expr
    key: Expr
    offset: int

    def children(self) -> tuple[Expr, ...]:
        return (self.target, self.key)


@dataclass(frozen=True, slots=True)
class Not(Expr):
    operand: Expr
    offset: int

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class Compare(Expr):
    """`first op1 x1 op2 x2 ...`, evaluated left to right: `3 < 2 < 1` is
    `(3 < 2) < 1`. Each chain holds operators of one precedence level."""
    first: Expr
    rest: tuple[tuple[str, Expr], ...]
    offset: int

    def children(self) -> tuple[Expr, ...]:
        return (self.first, *(operand for _, operand in self.rest))


@dataclass(frozen=True, slots=True)
class Logical(Expr):
    """`&&` or `||` over two or more operands; the value is an operand."""
    op: str
    operands: tuple[Expr, ...]
    offset: int

    def children(self) -> tuple[Expr, ...]:
        return self.operands


@dataclass(frozen=True, slots=True)
class Call(Expr):
    name: str  # as documented: startsWith, toJSON, ...
    args: tuple[Expr, ...]
    offset: int

    def children(self) -> tuple[Expr, ...]:
        return self.args


def _references(node: Expr, found: list[Reference]) -> None:
    if isinstance(node, Index) and isinstance(node.target, Context):
        key = node.key
        prop = key.value if isinstance(key, Literal) and isinstance(key.value, str) else None
        found.append(Reference(node.target.name, prop, node.target.offset))
        _references(key, found)
    elif isinstance(node, Context):
        found.append(Reference(node.name, None, node.offset))
    else:
        for child in node.children():
            _references(child, found)
