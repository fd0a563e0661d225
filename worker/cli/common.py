"""What every `rota` client command shares: where the token comes from, how a
failure becomes one line and an exit code, and how answers are printed
(tables for people, `--json` for scripts)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from typing import Any, Awaitable, Callable, Mapping, Optional
from urllib.parse import urlsplit

import msgspec

from worker.client.api import ApiError, Client, RotaError

EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


# ---- the API token ------------------------------------------------------------------

_TOKEN_CHARS = re.compile(r"[!-~]+")  # printable ASCII, no spaces: what fits a header


class Reported(RotaError):
    """A failure already worded in full (e.g. one line per problem): printed as it is."""


class TokenSourceError(RotaError):
    """The token named by the flags or environment cannot be used."""


def resolve_token(flag: Optional[str], environ: Mapping[str, str]) -> tuple[Optional[str], Optional[str]]:
    """The API token and where it came from (for messages), or (None, None).

    --token wins over ROTA_TOKEN, which wins over ROTA_TOKEN_FILE; an empty
    value counts as unset. The file is read only when it is the one used.
    """
    if flag:
        token, source = flag.strip(), "--token"
    elif environ.get("ROTA_TOKEN"):
        token, source = environ["ROTA_TOKEN"].strip(), "ROTA_TOKEN"
    elif environ.get("ROTA_TOKEN_FILE"):
        path = environ["ROTA_TOKEN_FILE"]
        source = f"ROTA_TOKEN_FILE {path}"
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise TokenSourceError(f"{source}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise TokenSourceError(f"{source}: not UTF-8 text") from None
        if not token:
            raise TokenSourceError(f"{source} is empty")
    else:
        return None, None
    if not _TOKEN_CHARS.fullmatch(token):
        # Never echo the value: it is a secret, however malformed.
        raise TokenSourceError(f"the token from {source} has spaces or characters a token cannot have")
    return token, source


# ---- the server URL -------------------------------------------------------------------


def normalize_server(url: str) -> str:
    """`host:3000` means `http://host:3000`, as curl and browsers read it."""
    url = url.strip()
    return url if "://" in url else f"http://{url}"


def ends_in_api(server: str) -> bool:
    return urlsplit(server).path.rstrip("/").endswith("/api")


# ---- errors ---------------------------------------------------------------------------


def describe_error(exc: RotaError, token_source: Optional[str], server: Optional[str] = None,
                   subject: Optional[str] = None) -> str:
    """One line for a failed command; a refused token also says what to check.

    `server` and `subject` (the workflow or run the command named) let the
    line say what to do next where the server's words alone would not.
    """
    if isinstance(exc, ApiError) and exc.status == 401:
        hint = f"the token from {token_source}" if token_source else "set ROTA_TOKEN, ROTA_TOKEN_FILE or --token"
        return f"{exc} ({hint})"
    if isinstance(exc, ApiError) and exc.status == 403:
        scope = exc.details.get("required_scope") if isinstance(exc.details, dict) else None
        if scope:
            return f"{exc} (use a token with the {scope} scope)"
    if isinstance(exc, ApiError) and exc.status == 404 and exc.code == "not_found" and server and ends_in_api(server):
        # The routes themselves were not found: the URL is one /api too deep.
        base = server.rstrip("/")[: -len("/api")]
        return f"{exc} (the server URL {server} ends in /api: give the base URL, e.g. {base}; rota adds /api itself)"
    if isinstance(exc, ApiError) and exc.code == "workflow_active" and "rota cancel" not in exc.message:
        name = subject or "WORKFLOW"
        return f"{exc} (stop it with `rota cancel {name}`, or wait for it with `rota status {name}` / `--wait`)"
    return str(exc)


async def run_command(client: Client, run: Callable[[Client, argparse.Namespace], Awaitable[int]],
                      args: argparse.Namespace) -> int:
    """`run`'s exit code; a RotaError becomes one line (or its own lines) on stderr and exit 2."""
    try:
        return await run(client, args)
    except Reported as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    except RotaError as exc:
        subject = getattr(args, "target", None) or getattr(args, "workflow_id", None)
        print(f"rota: {describe_error(exc, args.token_source, args.server, subject)}", file=sys.stderr)
        return EXIT_ERROR


def client_command(run: Callable[[Client, argparse.Namespace], Awaitable[int]]) -> Callable[[argparse.Namespace], int]:
    """A handler that runs `run` with a Client connected to --server."""

    def command(args: argparse.Namespace) -> int:
        # cli.Client, looked up at call time: the one place tests put a fake transport.
        from worker.cli import main as cli

        async def main() -> int:
            async with cli.Client(args.server, token=args.token) as client:
                return await run_command(client, run, args)

        try:
            return asyncio.run(main())
        except KeyboardInterrupt:  # Ctrl-C out of --wait or logs -f: no traceback
            return EXIT_INTERRUPTED

    command.run = run  # type: ignore[attr-defined]  # tests drive it on an in-process app
    return command


# ---- output ---------------------------------------------------------------------------


def one_line(text: str, width: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [headers, *rows]
    )


def print_json(value: Any) -> None:
    """`--json`: the API's own objects, one document on stdout."""
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")
    sys.stdout.flush()


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the answer as JSON on stdout")


_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT_SECS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """`30d`, `12h`, `90m`, `3600s` or plain seconds, as seconds (at least 1)."""
    match = _DURATION.fullmatch(text.strip().lower())
    secs = int(match.group(1)) * _UNIT_SECS[match.group(2)] if match else 0
    if secs < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30d, 12h, 90m, 3600s or 3600")
    return secs


def elapsed(secs: float) -> str:
    """`4s`, `2m05s`, `1h02m`: a span as people read it."""
    secs = int(max(secs, 0))
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60:02d}s"
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m"


def key_values(flag: str) -> Callable[[str], tuple[str, str]]:
    """An argparse type for `k=v` (repeatable flags build a dict from these)."""

    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{text!r} is not {flag} KEY=VALUE")
        return key, value

    return parse
