"""Expression text to tokens, each with its offset, as GitHub's lexer splits
it: a word or number runs to the next boundary character, so `1-2` or
`foo@bar` is one bad symbol rather than several good ones."""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

from .errors import ExpressionError
from .limits import MAX_EXPRESSION_CHARS
from .values import number_value, parse_number

IDENT = "identifier"
LITERAL = "literal"
EOF = "end"
PUNCTUATION = frozenset("()[],*")
KEYWORDS = {"true": True, "false": False, "null": None, "NaN": math.nan, "Infinity": math.inf}
# After these a '.' is a property access; anywhere else it starts a number (.5).
_BEFORE_DOT = frozenset({IDENT, "]", ")", "*"})
_BOUNDARY = frozenset("()[],.!><=&|")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_WHITESPACE = frozenset(" \t\r\n")
_SHOWN = 40  # characters of a bad symbol quoted in a message


class Token(NamedTuple):
    kind: str  # IDENT, LITERAL, EOF, or the operator or punctuation itself
    text: str
    offset: int
    value: Any = None


def tokenize(text: str, start: int = 0, end: int | None = None) -> list[Token]:
    """Tokens of text[start:end], offsets counted in the whole `text`; the
    last token is always EOF."""
    end = len(text) if end is None else end
    if end - start > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_CHARS} characters", start)
    tokens: list[Token] = []
    i = start
    while i < end:
        c = text[i]
        if c in _WHITESPACE:
            i += 1
        elif c in PUNCTUATION:
            tokens.append(Token(c, c, i))
            i += 1
        elif c == "." and tokens and tokens[-1].kind in _BEFORE_DOT:
            tokens.append(Token(".", ".", i))
            i += 1
        elif c in "!<>":
            op = c + "=" if i + 1 < end and text[i + 1] == "=" else c
            tokens.append(Token(op, op, i))
            i += len(op)
        elif c in "=&|":
            if i + 1 < end and text[i + 1] == c:
                tokens.append(Token(c * 2, c * 2, i))
                i += 2
            else:
                _bad_symbol(text, i, _until_boundary(text, i + 1, end), f"; write '{c * 2}'")
        elif c == "'":
            i = _string(text, i, end, tokens)
        elif c in "+-." or "0" <= c <= "9":
            i = _number(text, i, end, tokens)
        else:
            i = _word(text, i, end, tokens)
    tokens.append(Token(EOF, "", end))
    return tokens


def _until_boundary(text: str, i: int, end: int, dots: bool = False) -> int:
    while i < end and not (text[i] in _BOUNDARY and not (dots and text[i] == ".")) and not text[i].isspace():
        i += 1
    return i


def _bad_symbol(text: str, start: int, stop: int, hint: str = "") -> None:
    symbol = text[start:stop]
    if len(symbol) > _SHOWN:
        symbol = symbol[:_SHOWN] + "..."
    # repr: a control character or a quote inside stays readable
    raise ExpressionError(f"unexpected symbol {symbol!r}{hint}", start)


def _string(text: str, start: int, end: int, tokens: list[Token]) -> int:
    i = start + 1
    while True:
        close = text.find("'", i, end)
        if close < 0:
            raise ExpressionError("unclosed string: a string ends with ' (write '' for a quote inside it)", start)
        if close + 1 < end and text[close + 1] == "'":
            i = close + 2
            continue
        value = text[start + 1:close].replace("''", "'")
        tokens.append(Token(LITERAL, text[start:close + 1], start, value))
        return close + 1


def _number(text: str, start: int, end: int, tokens: list[Token]) -> int:
    stop = _until_boundary(text, start + 1, end, dots=True)
    lexeme = text[start:stop]
    number = parse_number(lexeme)
    if number != number:
        _bad_symbol(text, start, stop)
    tokens.append(Token(LITERAL, lexeme, start, number_value(number)))
    return stop


def _word(text: str, start: int, end: int, tokens: list[Token]) -> int:
    stop = _until_boundary(text, start + 1, end)
    word = text[start:stop]
    if not _IDENTIFIER.fullmatch(word):
        hint = ("; strings take single quotes: 'text'" if text[start] == '"'
                else "; a quote inside a string is written ''" if "'" in word else "")
        _bad_symbol(text, start, stop, hint)
    after_dot = bool(tokens) and tokens[-1].kind == "."
    if word in KEYWORDS and not after_dot:
        tokens.append(Token(LITERAL, word, start, KEYWORDS[word]))
    else:
        tokens.append(Token(IDENT, word, start))
    return stop
