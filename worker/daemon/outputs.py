"""Job outputs: reading the `$ROTA_OUTPUT` file and resolving `${{ needs.* }}`.

The file format is GitHub's `$GITHUB_OUTPUT`, so job scripts written for
Actions work unchanged: `key=value` lines, or a multiline value as

    key<<DELIMITER
    line one
    line two
    DELIMITER
"""

from __future__ import annotations

import re

# The grammar resolved here is the one a submit checks (server/definitions/
# expressions.py): both read these patterns, so what a submit accepts is
# what the worker resolves.
from server.expressions.needs_outputs import EXPRESSION, NEEDS_OUTPUT

# Linux refuses to start a process with an environment string ("NAME=value"
# and its NUL) longer than this (MAX_ARG_STRLEN): the spawn fails with
# errno 7, "Argument list too long".
MAX_ENV_STRING_BYTES = 128 * 1024


class OutputFileError(ValueError):
    """The job wrote something to `$ROTA_OUTPUT` that is not valid output syntax."""


class ExpressionError(ValueError):
    """An `${{ ... }}` expression in `env:` that the worker cannot evaluate."""


class EnvTooLarge(ExpressionError):
    """An `env:` value, once resolved, too long for one environment variable."""


def parse_output_file(text: str) -> dict[str, str]:
    outputs: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        equals, heredoc = line.find("="), line.find("<<")
        # Whichever marker comes first decides the form, as GitHub's runner does.
        if equals > 0 and (heredoc < 0 or equals < heredoc):
            outputs[line[:equals]] = line[equals + 1 :]
        elif heredoc > 0:
            key, delimiter = line[:heredoc], line[heredoc + 2 :]
            if not delimiter:
                raise OutputFileError(f"line {i}: empty heredoc delimiter for output {key!r}")
            body: list[str] = []
            while i < len(lines) and lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise OutputFileError(f"output {key!r}: delimiter {delimiter!r} never closes")
            i += 1
            outputs[key] = "\n".join(body)
        else:
            raise OutputFileError(f"line {i}: expected key=value or key<<DELIMITER, got {line[:80]!r}")
    return outputs


def resolve_env(env: dict[str, str], upstream_outputs: dict[str, dict[str, str]]) -> dict[str, str]:
    """Each `${{ needs.<job>.outputs.<key> }}` becomes that output's value.

    Values land in environment variables only, never in shell text, so an
    output cannot inject commands. A missing output is the empty string, as
    in GitHub Actions (a job may set an output only on some paths). A value
    too long for one environment variable is an EnvTooLarge, raised here
    rather than as errno 7 when the job starts.
    """

    def substitute(name: str, match: re.Match[str]) -> str:
        ref = NEEDS_OUTPUT.match(match.group(1))
        if ref is None:
            raise ExpressionError(
                f"env {name}: unsupported expression {match.group(0)!r}"
                " (only ${{ needs.<job>.outputs.<key> }} is available)"
            )
        return upstream_outputs.get(ref["job"], {}).get(ref["key"], "")

    resolved = {name: EXPRESSION.sub(lambda m, name=name: substitute(name, m), value) for name, value in env.items()}
    for name, value in resolved.items():
        check_env_size(name, value)
    return resolved


def check_env_size(name: str, value: str) -> None:
    size = len(name.encode()) + len(value.encode()) + 2  # "=" and the NUL
    if size > MAX_ENV_STRING_BYTES:
        raise EnvTooLarge(
            f"env {name}: the value is {len(value.encode())} bytes, too large for an environment variable"
            f" ({MAX_ENV_STRING_BYTES} bytes at most, name included); read large outputs from the JSON file"
            " that $ROTA_UPSTREAM_OUTPUTS names instead"
        )
