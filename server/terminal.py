"""Job-written text made safe for an operator's terminal.

A job's output, errors, step names, annotations, notes and whatever a
worker reports reach people through `rota` and through the server's and
the worker's log lines; a terminal acts on control characters and escape
sequences in them (a window title, a clipboard write, a cleared screen, a
line overwritten by CR, text reordered by bidi overrides). Every place the
CLI prints such text, and every text-format log line, passes through here
(the CLI imports it from the server package, as it does the wire types).

Printable text, tabs and line ends stay as they are. Every other C0
control and DEL is shown in caret notation, as `cat -v` and `less` show
them (ESC `^[`, CR `^M`, NUL `^@`, BEL `^G`, DEL `^?`), so an escape
sequence shows as its text (`^[]0;title^G`); C1 controls, the bidi
embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) and lone
surrogates as `<U+202E>`. A CR right before a line end is dropped (CRLF
output is line ends, not overwrites). In log text alone (`rota logs`,
`--follow`) SGR colour sequences (`ESC [ 1;31 m`) are kept, as `less -R`
and CI log views keep them, and a line that sets one ends with a reset, so
no colour or concealment outlives the job's own line.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# Select Graphic Rendition only: colours and weights, nothing that moves,
# clears, titles or copies.
_SGR = re.compile(r"\x1b\[[0-9;:]{0,32}m")
RESET = "\x1b[0m"


def _shown(match: re.Match) -> str:
    code = ord(match.group())
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    return f"<U+{code:04X}>"


def safe(text: str) -> str:
    """`text` with every control character and escape sequence shown, not acted on."""
    return _UNSAFE.sub(_shown, text.replace("\r\n", "\n"))


def safe_coloured(text: str) -> str:
    """`safe`, but SGR colour sequences kept, each line that has one ending
    with a reset (also a last line without its line end yet)."""
    if "\x1b[" not in text:
        return safe(text)
    lines = text.replace("\r\n", "\n").split("\n")
    for i, line in enumerate(lines):
        pieces = _SGR.split(line)
        if len(pieces) == 1:
            lines[i] = safe(line)
            continue
        kept = _SGR.findall(line)
        lines[i] = "".join(safe(piece) + (kept[j] if j < len(kept) else "") for j, piece in enumerate(pieces)) + RESET
    return "\n".join(lines)
