"""How guessable a hand-set secret is: a rough upper bound on its entropy,
for refusing the bootstrap admin token when it is a placeholder
(`changeme-changeme-...`, `aaaa...`, `0123456789abcdef...`).

Each character costs what a random pick from its character classes would
(lowercase 26, uppercase 26, digits 10, punctuation 33; hex-only strings 16),
except that a repeat of something earlier costs only where and how long it
is (log2 of each), and a character next to the one before it (`a` after `b`
or `a`, `5` after `4`) costs one bit. A random token keeps nearly all of its
bits; a phrase, a run or a repeated pattern loses most of them. It is a
filter for obvious placeholders, not a proof of strength.
"""

from __future__ import annotations

import math
import string

_CLASSES = ((string.ascii_lowercase, 26), (string.ascii_uppercase, 26), (string.digits, 10))
_HEX = frozenset(string.hexdigits)
_MIN_REPEAT = 3


def _alphabet(token: str) -> int:
    if set(token) <= _HEX and (token.islower() or token.isupper() or token.isdigit()):
        return 16
    size = sum(n for chars, n in _CLASSES if any(c in chars for c in token))
    if any(not c.isascii() for c in token):
        size += 128
    elif any(not c.isalnum() for c in token):
        size += 33
    return max(size, 2)


def _longest_repeat(token: str, i: int) -> int:
    """The longest stretch at `i` that also starts somewhere before `i`."""
    best = 0
    for j in range(i):
        k = 0
        while i + k < len(token) and token[j + k] == token[i + k]:
            k += 1
        best = max(best, k)
    return best


def estimated_bits(token: str) -> float:
    """Quadratic in the length: callers bound it first."""
    per_char = math.log2(_alphabet(token))
    bits, i = 0.0, 0
    while i < len(token):
        repeat = _longest_repeat(token, i)
        if repeat >= _MIN_REPEAT:
            bits += math.log2(i) + math.log2(repeat)
            i += repeat
            continue
        if i and abs(ord(token[i]) - ord(token[i - 1])) <= 1:
            bits += 1
        else:
            bits += per_char
        i += 1
    return bits
