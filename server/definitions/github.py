"""GitHub Actions keys rota does not run, each refused with what to write instead.

A workflow ported from GitHub brings keys rota has no equivalent for; a bare
"unknown field" would leave its author guessing whether rota spells it
differently. Keys at a level GitHub does not allow them (`shell` on a job)
are refused with the advice for where they belong. Anything else unknown
keeps the "did you mean" suggestion (fields.gather).
"""

from __future__ import annotations

_SERVICES = "run them from the script or use labels for a machine that has them"
_PERMISSIONS = "rota hands jobs no GitHub token to scope; remove it"


def _refusals(advice: dict[str, str]) -> dict[str, str]:
    return {key: f"rota does not support {key}: {text}" for key, text in advice.items()}


WORKFLOW = _refusals({
    "permissions": _PERMISSIONS,
})

JOB = _refusals({
    "uses": "rota runs no actions or reusable workflows; give run: or steps: with the commands",
    "with": "it goes with uses:, which rota does not run; give run: or steps:",
    "secrets": "it goes with uses:, which rota does not run; jobs inherit the worker's environment",
    "services": _SERVICES,
    "container": _SERVICES,
    "environment": "rota has no environments; use labels for a machine that holds what the job needs",
    "permissions": _PERMISSIONS,
}) | {
    "shell": "shell goes on a step, or in defaults: {run: {shell: ...}} for every step of the job",
    "working-directory": "working-directory goes on a step, or in defaults: {run: {working-directory: ...}}",
}

STEP = _refusals({
    "uses": "rota runs no actions; give run: with the commands the action would run",
    "with": "it goes with uses:, which rota does not run; give run:",
})
