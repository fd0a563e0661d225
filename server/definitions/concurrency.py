"""`concurrency:` at the workflow and job level: GitHub's `group` and
`cancel-in-progress` (and its `queue: single | max`), and Buildkite's
`limit`. The group's `${{ }}` expressions are checked here as the run's
start will render them (server/groups.py): they read `inputs` and `run`.
"""

from __future__ import annotations

import re

from ..expressions import ExpressionError, Template, parse_template
from ..groups import CONTEXTS, RUN_PROPERTIES
from ..limits import MAX_GROUP_LIMIT, MAX_GROUP_PENDING, MAX_GROUP_TEMPLATE_CHARS, MAX_RATE_WINDOW_SECS
from ..models.specs import RATE_PATTERN
from . import fields
from .problems import Problems, Where, got, suggest

OPEN = "${{"
# (the document schema's pattern: /openapi.json says what is read here)
_RATE = re.compile(RATE_PATTERN)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_FIELDS = {"group": "group", "cancel-in-progress": "cancel_in_progress", "queue": "queue", "limit": "limit"}
_QUEUES = ("single", "max")
_LATER = {
    "needs": "needs outputs",
    "matrix": "matrix values",
    "strategy": "strategy values",
    "jobs": "other jobs' results",
    "steps": "step outputs",
}
_HINTS = {
    "github": "rota has no github context: give the ref or commit as a run input and read inputs.<name>",
    "env": "a group is decided before any job runs: use inputs or run",
    "vars": "give the value as a run input and read inputs.<name>",
    "secrets": "a group name is shown to everyone: never build it from a secret",
}


def concurrency(value: object, where: Where, problems: Problems) -> dict | None:
    """The group alone (`concurrency: deploy`) or `{group, cancel-in-progress,
    queue, limit}`."""
    if isinstance(value, str):
        value = {"group": value}
    if not isinstance(value, dict):
        problems.add(where, "must be a group name, or a mapping: {group: ..., cancel-in-progress: false,"
                            " queue: single, limit: 1}" + got(value))
        return None
    entries = fields.gather(value, _FIELDS, where, problems)
    spec: dict = {}
    ok = True
    if "group" not in entries:
        problems.add(where + ("group",), "required: the group's name (text, may hold ${{ }} expressions)")
        ok = False
    else:
        group, group_where = entries["group"]
        if isinstance(group, str) and group.strip() and len(group) <= MAX_GROUP_TEMPLATE_CHARS \
                and _template(group, group_where, problems):
            spec["group"] = group
        else:
            if not (isinstance(group, str) and group.strip()):
                problems.add(group_where, "must be a non-empty string" + got(group))
            elif len(group) > MAX_GROUP_TEMPLATE_CHARS:
                problems.add(group_where, fields.too_long(MAX_GROUP_TEMPLATE_CHARS, "a concurrency group"))
            ok = False
    if "cancel_in_progress" in entries:
        cancel, cancel_where = entries["cancel_in_progress"]
        if isinstance(cancel, bool):
            spec["cancel_in_progress"] = cancel
        elif isinstance(cancel, str) and cancel.strip().lower() in ("true", "false"):
            spec["cancel_in_progress"] = cancel.strip().lower() == "true"
        elif isinstance(cancel, str) and OPEN in cancel and len(cancel) <= MAX_GROUP_TEMPLATE_CHARS \
                and _template(cancel, cancel_where, problems):
            spec["cancel_in_progress"] = cancel
        else:
            if not (isinstance(cancel, str) and OPEN in cancel):
                problems.add(cancel_where, "must be true, false or one ${{ }} expression" + got(cancel))
            ok = False
    if "queue" in entries:
        queue, queue_where = entries["queue"]
        if queue in _QUEUES:
            spec["queue"] = queue
        else:
            problems.add(queue_where, f"must be single (one waits; a newer one replaces it) or max (up to"
                                      f" {MAX_GROUP_PENDING} wait, in order)" + problems.hint(queue, _QUEUES))
            ok = False
    if "limit" in entries:
        limit, limit_where = entries["limit"]
        rate = _RATE.search(limit) if isinstance(limit, str) else None
        count = int(rate[1]) if rate else limit
        window = int(rate[2]) * _UNITS[rate[3]] if rate else None
        if type(count) is int and 1 <= count <= MAX_GROUP_LIMIT and (
                window is None or 1 <= window <= MAX_RATE_WINDOW_SECS):
            spec["limit"] = count
            if window is not None:
                spec["per_secs"] = window
        else:
            problems.add(limit_where, f"must be a whole number from 1 to {MAX_GROUP_LIMIT} (how many members of"
                                      " the group run at once), or a rate, N per D (let in within any window D"
                                      " long, D from 1s to 1d): limit: 10 per 1m")
            ok = False
    if spec.get("queue") == "max" and spec.get("cancel_in_progress", False) is not False:
        problems.add(where + ("queue",), "queue: max waits in order, cancel-in-progress cancels what runs:"
                                         " give one or the other (GitHub refuses both too)")
        ok = False
    return spec if ok else None


def _template(text: str, where: Where, problems: Problems) -> bool:
    """Whether `text` parses and reads only what a run's start knows."""
    try:
        template: Template = parse_template(text)
    except ExpressionError as exc:
        problems.add(where, f"{exc.message} (at character {exc.offset + 1})")
        return False
    if template.calls_status_function():
        problems.add(where, "success(), failure(), always() and cancelled() mean nothing before the run starts")
        return False
    good = True
    for context, prop in sorted(template.contexts(), key=lambda c: (c[0], c[1] or "")):
        message = _context_problem(context, prop)
        if message:
            problems.add(where, message)
            good = False
    return good


def _context_problem(context: str, prop: str | None) -> str | None:
    if context == "inputs":
        return None
    if context == "run":
        if prop is None or prop in RUN_PROPERTIES:
            return None
        if prop in ("number", "attempt"):
            return (f"run.{prop} is given when the run is created, after its concurrency group is decided;"
                    " use run.id for a group of its own")
        return f"the run context has {', '.join(RUN_PROPERTIES)}; not {prop!r}" + suggest(prop, RUN_PROPERTIES)
    if context in _LATER:
        return (f"a concurrency group is decided when the run starts, from {' and '.join(CONTEXTS)}: it cannot"
                f" read {_LATER[context]} (groups decided when a job becomes ready come with job-level"
                " decisions)")
    hint = _HINTS.get(context)
    message = f"unknown context {context!r}: a concurrency group reads {' and '.join(CONTEXTS)}"
    return message + (f"; {hint}" if hint else suggest(context, CONTEXTS))


def literal_key(spec: dict | None) -> str | None:
    """A group written without expressions, as its key (case folded)."""
    if not spec or "group" not in spec or OPEN in spec["group"]:
        return None
    return spec["group"].strip().casefold()
