"""`rota token create | list | revoke`: API tokens (the server wants the admin scope).

`create` prints the secret alone on stdout, so `TOKEN=$(rota token create ...)`
captures exactly the secret; everything else about the token goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from typing import Optional

from server.models import SCOPES, TokenOut
from worker.cli.command import add_client_command
from worker.cli.flags import add_json_flag, parse_duration
from worker.cli.output import one_line, print_json, table
from worker.client.api import Client


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _time(ms: Optional[int], none: str = "never") -> str:
    if ms is None:
        return none
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def _expiry(token: TokenOut, now_ms: int) -> str:
    text = _time(token.expires_at_ms)
    return f"{text} (expired)" if token.expires_at_ms is not None and token.expires_at_ms <= now_ms else text


async def _create(client: Client, args: argparse.Namespace) -> int:
    scopes = list(dict.fromkeys(args.scopes))  # repeated --scope: once each, in order
    created = await client.create_token(args.name, scopes, args.expires_in)
    print(created.token, flush=True)
    expiry = "never expires" if created.expires_at_ms is None else f"expires {_time(created.expires_at_ms)}"
    print(f"created token {created.id} ({created.name}): scopes {','.join(created.scopes)}, {expiry}",
          file=sys.stderr)
    print("the secret (on stdout) is shown only once: store it now, e.g. in a file named by ROTA_TOKEN_FILE",
          file=sys.stderr)
    return 0


async def _list(client: Client, args: argparse.Namespace) -> int:
    tokens = await client.list_tokens()
    if args.json:
        print_json(tokens)
        return 0
    now_ms = _now_ms()
    rows = [
        [t.id, one_line(t.name, 40), ",".join(t.scopes), _time(t.created_at_ms), _time(t.last_used_at_ms),
         _expiry(t, now_ms)]
        for t in tokens
    ]
    print(table(["ID", "NAME", "SCOPES", "CREATED", "LAST USED", "EXPIRES"], rows))
    return 0


async def _revoke(client: Client, args: argparse.Namespace) -> int:
    revoked = await client.revoke_token(args.token_id)
    print(f"revoked token {revoked.id} ({revoked.name})")
    return 0


def add_commands(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Adds `rota token ...`; `parents` carry --server and --token."""
    about = "create, list and revoke API tokens (needs a token with the admin scope)"
    token = commands.add_parser("token", help=about, description=about)
    subcommands = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")

    def subcommand(name: str, run, help: str) -> argparse.ArgumentParser:
        return add_client_command(subcommands, parents, name, run, help)

    create = subcommand(
        "create", _create, "create a token; prints its secret alone on stdout (shown only this once)"
    )
    create.add_argument("--name", required=True, help="what the token is for, e.g. the machine using it")
    create.add_argument(
        "--scope", dest="scopes", action="append", required=True, choices=SCOPES,
        help="a scope the token gets; repeat for several (read, submit: read and submit, worker, admin: all)",
    )
    create.add_argument(
        "--expires-in", type=parse_duration, metavar="DURATION",
        help="lifetime: 30d, 12h, 90m, 3600s or seconds (default: never expires)",
    )
    add_json_flag(subcommand("list", _list, "list tokens (never their secrets)"))
    revoke = subcommand("revoke", _revoke, "revoke a token at once")
    revoke.add_argument("token_id", metavar="ID")
