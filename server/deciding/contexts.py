"""The contexts a job's expressions read, from what the store keeps: the
run's head (`run:<run>`) and each need's record (`rj:`). One definition for
the decision (server/store/deciding.py) and the claim (store/leases.py)."""

from __future__ import annotations

from typing import Any, Optional

import msgspec

from ..expressions.needs_outputs import EXPRESSION, NEEDS_OUTPUT

_strings = msgspec.json.Decoder(dict[str, str])
_values = msgspec.json.Decoder(dict[str, Any])


def strings(raw: Optional[str]) -> dict[str, str]:
    return _strings.decode(raw) if raw else {}


def values(raw: Optional[str]) -> dict[str, Any]:
    """A run's inputs: JSON values, typed as its workflow declares them."""
    return _values.decode(raw) if raw else {}


def result(status: Optional[str], continue_on_error_failed: Optional[str]) -> str:
    """`needs.<job>.result`: the job's conclusion, a continue-on-error
    failure being a success (as GitHub reports it)."""
    if status == "failure" and continue_on_error_failed == "1":
        return "success"
    return status or ""


def run_context(head: dict) -> dict[str, Any]:
    return {
        "id": head.get("id", ""),
        "number": int(head.get("num") or 0),
        "workflow": head.get("wf", ""),
        "triggered_by": head.get("by", ""),
        "tags": strings(head.get("tags")),
        "attempt": int(head.get("ratt") or 1),
    }


def job_contexts(head: dict, needs: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """needs, inputs and run; `needs`: need -> (result, outputs JSON)."""
    return {
        "needs": {need: {"result": res, "outputs": strings(out)} for need, (res, out) in needs.items()},
        "inputs": values(head.get("inputs")),
        "run": run_context(head),
    }


_SAID = {"f": "failed", "c": "was cancelled", "s": "was skipped"}


def upstream_why(up: str, cancelled: bool) -> str:
    """Why a job is skipped that has no if: (decided for another reason)."""
    for letter in "fcs":
        if letter in up:
            return f"something upstream {_SAID[letter]}"
    return "the run was cancelled" if cancelled else ""


def resolve_needs_outputs(env: dict[str, str], upstream: dict[str, dict[str, str]]) -> dict[str, str]:
    """A job's env with each `${{ needs.<job>.outputs.<key> }}` resolved, as
    the worker resolves it (a job that was not decided has no other
    expression), for the `env` context a claim carries."""
    def value(match) -> str:
        ref = NEEDS_OUTPUT.match(match.group(1))
        return upstream.get(ref["job"], {}).get(ref["key"], "") if ref else match.group(0)

    return {name: EXPRESSION.sub(value, text) if "${{" in text else text for name, text in env.items()}
