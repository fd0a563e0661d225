"""`${{ }}` expressions, checked at submit as the worker will read them.

The worker resolves `${{ needs.<job>.outputs.<key> }}` in `env:` values and
nothing else (worker/daemon/outputs.py; it and this module read the same
patterns, server/expressions/needs_outputs.py, so the two cannot drift).
Without these checks a typo, an unknown context or an expression in a script
would surface only when the job ran: an expression in `env:` fails the job,
one in a script reaches bash as a bad substitution.

  - in an env: value, every expression must be a needs output of one of the
    job's *direct* needs: those are the only outputs the worker is handed;
  - in a script (`run`, `steps[].run`, the seed's `command`) there are none.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator

from ..expressions.needs_outputs import EXPRESSION, NEEDS_OUTPUT
from .graph import Job
from .problems import Problems, Where, suggest

FORM = "${{ needs.<job>.outputs.<key> }}"
SUPPORTED = f"only {FORM} is supported"
ENV_ONLY = "expressions are expanded only in env: values; put it in env: and use $VAR"
_OPEN = "${{"
_CLOSE = "}}"
_SHOWN = 80  # characters of an expression quoted in a message
_SHOWN_NEEDS = 10  # needs listed in a message

# `github.sha` -> ("github", "sha"); `format(...)` and `'text'` have no context
_CONTEXT = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_-]*)\s*(?:\.\s*([A-Za-z0-9_-]*))?")

# GitHub's contexts, each with where rota keeps the like ({name}: what follows the dot)
_CONTEXT_HINTS = {
    "env": "use ${name} in run:",
    "secrets": "give the worker the secret in its environment, which jobs inherit, and use ${name}",
    "vars": "give the worker the variable in its environment, which jobs inherit, and use ${name}",
    "inputs": "a run's inputs reach its jobs as $ROTA_INPUT_{upper}",
    "github": "rota has no github context: a job sees $ROTA_WORKFLOW_ID and $ROTA_JOB_ID,"
              " and a commit or ref can be a run input ($ROTA_INPUT_<NAME>)",
    "matrix": "rota has no matrix: write one job per combination",
    "strategy": "rota has no matrix: write one job per combination",
    "steps": "outputs belong to jobs: a dependent job reads them as " + FORM,
    "job": "a job sees $ROTA_JOB_ID and $ROTA_ATTEMPT in its environment",
    "jobs": "a dependent job reads outputs as " + FORM,
    "runner": "a job runs in the worker's environment: use its variables in run:",
}


def check_expressions(jobs: list[Job], problems: Problems, known: Collection[str] = ()) -> None:
    """`known`: ids of jobs already in the run (a spawn), besides `jobs`."""
    ids = {job.id for job in jobs if job.id is not None} | set(known)
    for job in jobs:
        needs = frozenset(job.needs)
        for name, value in job.spec.get("env", {}).items():
            _env_value(value, job, needs, ids, job.wheres["env"] + (name,), problems)
        for where, script in _scripts(job):
            message = _script(script)
            if message is not None:
                problems.add(where, message)


def _scripts(job: Job) -> Iterator[tuple[Where, str]]:
    if "steps" in job.spec:
        for index, step in enumerate(job.spec["steps"]):
            if step is not None:  # a step with its own problem
                yield job.wheres["steps"] + (index, "run"), step["run"]
    elif "run" in job.wheres and "command" in job.spec:  # a gate (wait:) has no script
        yield job.wheres["run"], job.spec["command"]


def _env_value(
    value: str, job: Job, needs: frozenset[str], ids: set[str], where: Where, problems: Problems
) -> None:
    """What is wrong with one env: value, each distinct problem once.

    Once the problem list is full only the count goes on, so a value of
    thousands of bad expressions costs a regex scan, not a message each."""
    if _OPEN not in value:
        return
    said: set[str] = set()
    # Every opening before the last `}}` has a close after it, so the lazy
    # pattern ends each match at the next `}}` and the scan stays linear;
    # any opening after that last close is unclosed (the worker would leave
    # it as text).
    closed = value.rfind(_CLOSE) + len(_CLOSE) if _CLOSE in value else 0
    for match in EXPRESSION.finditer(value, 0, closed):
        ref = NEEDS_OUTPUT.match(match.group(1))
        if ref is None:
            key = match.group(0)
        elif job.needs_valid and ref["job"] not in needs:
            key = "needs." + ref["job"]  # no expression is just that, so no clash with the above
        else:
            continue
        if key in said:
            continue
        said.add(key)
        if problems.full:
            problems.add(where, "")
        elif ref is None:
            problems.add(where, _unsupported(match.group(0), match.group(1)))
        else:
            problems.add(where, _not_a_need(ref["job"], job, ids))
    if _OPEN in value[closed:]:
        problems.add(where, f"unclosed {_OPEN!r} (no {_CLOSE!r} after it): write {FORM}")


def _unsupported(text: str, inner: str) -> str:
    shown = _shown(text)
    if not inner.strip():
        return f"empty expression {shown}: write {FORM}"
    context = _CONTEXT.match(inner)
    name = context[1].lower() if context else ""
    if name == "needs":
        return f"malformed expression {shown}: write exactly {FORM}"
    if context is None or (context[2] is None and name not in _CONTEXT_HINTS):
        return f"unsupported expression {shown}: {SUPPORTED} (no functions, literals or operators)"
    message = f"unknown context {context[1]!r} in {shown}: {SUPPORTED}"
    hint = _CONTEXT_HINTS.get(name)
    if hint is not None:
        field = context[2] or "NAME"
        message += "; " + hint.replace("{name}", field).replace("{upper}", field.upper())  # as the worker names inputs
    return message


def _not_a_need(need: str, job: Job, ids: set[str]) -> str:
    """`ids`: every job there is. A close match is looked for among the job's
    needs only: a typo is of a need, and difflib over a thousand ids per
    problem would cost more than the whole rest of the check."""
    who = f"job {job.id!r}" if job.id is not None else "this job"
    listed = job.needs[:_SHOWN_NEEDS]
    if len(job.needs) > len(listed):
        listed = listed + [f"and {len(job.needs) - len(listed)} more"]
    needs = f"needs [{', '.join(listed)}]" if job.needs else "needs no job"
    message = f"{who} {needs}; needs.{need} is not one of them"
    if need == job.id:
        return message + " (a job cannot read its own outputs)"
    if need in ids:
        where_to = "needs:" if job.needs_key == "needs" else job.needs_key
        return message + f" (add {need} to {where_to} to read its outputs)"
    return message + suggest(need, job.needs)


def _script(script: str) -> str | None:
    start = script.find(_OPEN)
    if start < 0:
        return None
    end = script.find(_CLOSE, start)
    text = script[start:] if end < 0 else script[start:end + len(_CLOSE)]
    message = f"{_shown(text)} is not expanded in a script: {ENV_ONLY}"
    ref = NEEDS_OUTPUT.match(text[len(_OPEN):-len(_CLOSE)]) if end >= 0 else None
    if ref is not None:
        variable = re.sub(r"\W", "_", ref["key"]).upper()
        if variable[0].isdigit():
            variable = "_" + variable
        expression = f"${{{{ needs.{ref['job']}.outputs.{ref['key']} }}}}"
        message += f" (env: {{{variable}: '{expression}'}}, then \"${variable}\" in the script)"
    return message


def _shown(text: str) -> str:
    """The expression quoted on one line, whitespace runs as one space, cut to _SHOWN characters."""
    text = " ".join(text[: _SHOWN * 4].split())
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")
