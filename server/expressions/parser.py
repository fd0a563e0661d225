"""Tokens to nodes: a recursive-descent parser over GitHub's precedence, from
loosest to tightest:

    ||    &&    == !=    < <= > >=    !    a.b a[b] a.* f(...)    (...) literals

Depth is counted as GitHub counts it (each nested expression, `&&`/`||`
chain, `!` and property access is a level), so the same expressions reach
MAX_DEPTH here as there."""

from __future__ import annotations

from .errors import ExpressionError
from .functions import SIGNATURES
from .lexer import EOF, IDENT, LITERAL, Token, tokenize
from .limits import MAX_DEPTH
from .nodes import Call, Compare, Context, Expr, Index, Literal, Logical, Not, Star

_BY_LOWER = {name.lower(): name for name in SIGNATURES}
_EQUALITY = ("==", "!=")
_RELATIONAL = ("<", "<=", ">", ">=")


def parse(text: str, start: int = 0, end: int | None = None) -> Expr:
    """The expression in text[start:end] (default: all of it). Offsets in
    nodes and errors count from the start of `text`. Raises ExpressionError."""
    if not isinstance(text, str):
        raise TypeError("an expression is text")
    return _Parser(tokenize(text, start, end)).parse()


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def parse(self) -> Expr:
        if self.peek().kind == EOF:
            raise ExpressionError("empty expression", self.peek().offset)
        expr = self.expression()
        if self.peek().kind != EOF:
            raise self.unexpected()
        return expr

    # ---- token helpers ----

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != EOF:
            self.pos += 1
        return token

    def accept(self, *kinds: str) -> Token | None:
        return self.next() if self.peek().kind in kinds else None

    def expect(self, kind: str) -> Token:
        token = self.accept(kind)
        if token is None:
            raise self.unexpected()
        return token

    def unexpected(self) -> ExpressionError:
        token = self.peek()
        if token.kind == EOF:
            last = self.tokens[self.pos - 1] if self.pos else token
            return ExpressionError(f"unexpected end of expression after {last.text!r}", last.offset)
        return ExpressionError(f"unexpected symbol {token.text!r}", token.offset)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels", self.peek().offset)

    # ---- grammar, loosest first ----

    def expression(self) -> Expr:
        self.enter()
        try:
            return self.logical("||", self.logical_and)
        finally:
            self.depth -= 1

    def logical_and(self) -> Expr:
        return self.logical("&&", self.equality)

    def logical(self, op: str, operand) -> Expr:
        first = operand()
        if self.peek().kind != op:
            return first
        offset = self.peek().offset
        self.enter()
        operands = [first]
        while self.accept(op):
            operands.append(operand())
        self.depth -= 1
        return Logical(op, tuple(operands), offset)

    def equality(self) -> Expr:
        return self.chain(_EQUALITY, self.relational)

    def relational(self) -> Expr:
        return self.chain(_RELATIONAL, self.unary)

    def chain(self, ops: tuple[str, ...], operand) -> Expr:
        first = operand()
        rest = []
        offset = self.peek().offset
        while (op := self.accept(*ops)) is not None:
            rest.append((op.kind, operand()))
        return Compare(first, tuple(rest), offset) if rest else first

    def unary(self) -> Expr:
        bang = self.accept("!")
        if bang is None:
            return self.postfix()
        self.enter()
        operand = self.unary()
        self.depth -= 1
        return Not(operand, bang.offset)

    def postfix(self) -> Expr:
        token = self.peek()
        if token.kind == LITERAL:
            # GitHub allows no property access on a literal ('a'.b)
            self.next()
            return Literal(token.value, token.offset)
        if token.kind == IDENT:
            expr = self.call_or_context()
        elif token.kind == "(":
            expr = self.group()
        else:
            raise self.unexpected()
        levels = 0
        while True:
            if (bracket := self.accept("[")) is not None:
                key = Star(self.next().offset) if self.peek().kind == "*" else self.expression()
                self.expect("]")
                offset = bracket.offset
            elif (dot := self.accept(".")) is not None:
                word = self.peek()
                if word.kind == IDENT:
                    key = Literal(word.text, word.offset)
                elif word.kind == "*":
                    key = Star(word.offset)
                else:
                    raise self.unexpected()
                self.next()
                offset = dot.offset
            else:
                break
            self.enter()
            levels += 1
            expr = Index(expr, key, offset)
        self.depth -= levels
        return expr

    def group(self) -> Expr:
        paren = self.next()
        expr = self.expression()
        if self.peek().kind == EOF:
            raise ExpressionError("unclosed '(': no matching ')'", paren.offset)
        self.expect(")")
        return expr

    def call_or_context(self) -> Expr:
        word = self.next()
        paren = self.accept("(")
        if paren is None:
            return Context(word.text.lower(), word.offset)
        args: list[Expr] = []
        while self.accept(")") is None:
            if self.peek().kind != EOF:
                args.append(self.expression())
            if self.peek().kind == EOF:
                raise ExpressionError(f"unclosed '(' of {word.text}(: no matching ')'", paren.offset)
            if self.peek().kind != ")":
                self.expect(",")
        return Call(_function(word, len(args)), tuple(args), word.offset)


def _function(word: Token, count: int) -> str:
    name = _BY_LOWER.get(word.text.lower())
    if name is None:
        known = ", ".join(f"{n}()" for n in SIGNATURES)
        raise ExpressionError(f"unknown function {word.text}(); the functions are {known}", word.offset)
    low, high = SIGNATURES[name]
    if not low <= count <= high:
        if low == high:
            wanted = "no arguments" if low == 0 else f"{low} argument{'s' * (low > 1)}"
        elif high - low == 1:
            wanted = f"{low} or {high} arguments"
        else:
            wanted = f"{low} to {high} arguments"
        raise ExpressionError(f"{name}() takes {wanted} (got {count})", word.offset)
    if name == "case" and count % 2 == 0:
        raise ExpressionError(f"case() takes an odd number of arguments: predicate, value pairs and a default"
                              f" (got {count})", word.offset)
    return name
