"""What every `rota` command shares: where the token and the server URL
come from, how a command gets its client (the factory main() is handed),
and how a failure becomes one line and an exit code."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import Awaitable, Callable, Mapping, Optional, Protocol, Sequence
from urllib.parse import urlsplit

from server.terminal import safe
from worker.client.api import Client
from worker.client.errors import ApiError, RotaError

EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


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
    # An error's words may quote what a job or a worker sent: shown, not acted on.
    except Reported as exc:
        print(safe(str(exc)), file=sys.stderr)
        return EXIT_ERROR
    except RotaError as exc:
        subject = getattr(args, "target", None) or getattr(args, "workflow_id", None)
        print(f"rota: {safe(describe_error(exc, args.token_source, args.server, subject))}", file=sys.stderr)
        return EXIT_ERROR


class ClientFactory(Protocol):
    """Makes the client a command talks to the server through: `Client`
    itself, or (in tests) one on an in-process app or a fake transport."""

    def __call__(self, server: str, token: Optional[str] = None) -> Client: ...


# A parsed command line's handler: its exit code.
Handler = Callable[[argparse.Namespace, ClientFactory], int]


def client_command(run: Callable[[Client, argparse.Namespace], Awaitable[int]]) -> Handler:
    """A handler that runs `run` with a client of --server."""

    def command(args: argparse.Namespace, connect: ClientFactory) -> int:
        async def main() -> int:
            async with connect(args.server, token=args.token) as client:
                return await run_command(client, run, args)

        try:
            return asyncio.run(main())
        except KeyboardInterrupt:  # Ctrl-C out of --wait or logs -f: no traceback
            return EXIT_INTERRUPTED

    command.run = run  # type: ignore[attr-defined]  # tests drive it on an in-process app
    return command


def add_client_command(commands: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser], name: str,
                       run: Callable[[Client, argparse.Namespace], Awaitable[int]], help: str,
                       target: Optional[str] = None) -> argparse.ArgumentParser:
    """Adds `rota NAME`, which runs `run` with a client; `parents` carry
    --server and --token; `target` names its RUN|WORKFLOW argument."""
    sub = commands.add_parser(name, parents=list(parents), help=help, description=help)
    sub.set_defaults(handler=client_command(run))
    if target:
        sub.add_argument("target", metavar=target, help="a run id, or a workflow id (its latest run)")
    return sub
