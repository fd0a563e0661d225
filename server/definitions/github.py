"""GitHub Actions keys rota does not run, each refused with what to write instead.

A workflow ported from GitHub brings keys rota has no equivalent for; a bare
"unknown field" would leave its author guessing whether rota spells it
differently. Keys at a level GitHub does not allow them (`shell` on a job)
are refused with the same advice: the fix is the same. Anything else unknown
keeps the "did you mean" suggestion (fields.gather).
"""

from __future__ import annotations

_NO_CONDITIONS = "rota has no conditions; split the workflow or check in the script"
_BASH = "rota runs bash -e -o pipefail; to use another shell, call it from run:"
_CD = "cd in run:"
_SERVICES = "run them from the script or use labels for a machine that has them"
_CONCURRENCY = (
    "runs and jobs go ahead as workers take them; to run jobs one at a time, give them a label"
    " that only one worker, started with --concurrency 1, offers"
)
_PERMISSIONS = "rota hands jobs no GitHub token to scope; remove it"
_DEFAULTS = "rota runs each script with bash -e -o pipefail in a fresh directory per job; cd in run: for another"


def _refusals(advice: dict[str, str]) -> dict[str, str]:
    return {key: f"rota does not support {key}: {text}" for key, text in advice.items()}


WORKFLOW = {
    "env": "rota does not support env: at the workflow level; set env: on each job (a YAML anchor saves"
           " repeating it: env: &env {...} on the first, env: *env on the others)",
} | _refusals({
    "defaults": _DEFAULTS,
    "concurrency": _CONCURRENCY,
    "permissions": _PERMISSIONS,
    "run-name": "a run is known by its number; give it tags when you start it (POST /api/workflows/{id}/runs)",
})

JOB = _refusals({
    "if": _NO_CONDITIONS,
    "strategy": "rota has no matrix; write one job per combination (a YAML anchor saves repeating the rest)",
    "uses": "rota runs no actions or reusable workflows; give run: or steps: with the commands",
    "with": "it goes with uses:, which rota does not run; give run: or steps:",
    "secrets": "it goes with uses:, which rota does not run; jobs inherit the worker's environment",
    "services": _SERVICES,
    "container": _SERVICES,
    "concurrency": _CONCURRENCY,
    "defaults": _DEFAULTS,
    "continue-on-error": "end the script with `|| true`",
    "environment": "rota has no environments; use labels for a machine that holds what the job needs",
    "permissions": _PERMISSIONS,
    "outputs": "every key a job writes to $ROTA_OUTPUT is an output: drop outputs: and read them in a dependent"
               " as ${{ needs.<job>.outputs.<key> }}",
    "shell": _BASH,
    "working-directory": _CD,
})

STEP = _refusals({
    "if": _NO_CONDITIONS,
    "uses": "rota runs no actions; give run: with the commands the action would run",
    "with": "it goes with uses:, which rota does not run; give run:",
    "id": "steps have no ids; a job's outputs are what it writes to $ROTA_OUTPUT",
    "env": "set env: on the job",
    "shell": _BASH,
    "working-directory": _CD,
    "continue-on-error": "end the step's run with `|| true`",
    "timeout-minutes": "set timeout-minutes: on the job",
})
