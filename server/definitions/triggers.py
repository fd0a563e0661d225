"""`on:` (or the seed's `trigger`): the events as text, and the two rota
acts on: `schedule:` (cron ticks that start runs) and `workflow_dispatch:
inputs:` (the typed inputs a run is started with). Other events and their
filters (`push: {branches: ...}`) are kept as text only, as before.
"""

from __future__ import annotations

from .. import cron, limits
from ..inputs import NAME_RE, TYPES, typed
from ..models.specs import InputSpec
from . import fields
from .problems import Problems, Where, got, key_text

_SCHEDULE_FIELDS = {"cron": "cron", "timezone": "timezone", "catch-up": "catch_up", "catch_up": "catch_up",
                    "overlap": "overlap"}
_CATCH_UP = ("none", "latest", "all")
_OVERLAP = ("allow", "skip")
_INPUT_FIELDS = {"type": "type", "description": "description", "required": "required", "default": "default",
                 "options": "options"}
_DISPATCH_FIELDS = {"inputs": "inputs"}


def _got(value: object) -> str:
    return f" (got {value!r})" if isinstance(value, str) else got(value)


def on(value: object, where: Where, problems: Problems) -> dict:
    """{"trigger": text, "schedules": [...], "inputs": {...}} (the last two
    only when given)."""
    out: dict = {}
    if isinstance(value, str):
        events = [value]
    elif isinstance(value, list) and all(isinstance(event, str) for event in value):
        events = list(value)
    elif isinstance(value, dict) and all(isinstance(event, str) for event in value):
        events = list(value)
        if "schedule" in value:
            out["schedules"] = _schedules(value["schedule"], where + ("schedule",), problems)
        if value.get("workflow_dispatch") is not None:
            out["inputs"] = _dispatch(value["workflow_dispatch"], where + ("workflow_dispatch",), problems)
    else:
        events = value if isinstance(value, (list, dict)) else [value]
        bad = next((event for event in events if not isinstance(event, str)), None)
        problems.add(where, "must be an event name, a list of them or a mapping keyed by them" + got(bad))
        return {}
    if "schedule" in events and not isinstance(value, dict):
        problems.add(where, "schedule needs its cron expressions: on: {schedule: [{cron: '*/15 * * * *'}]}")
    text = ",".join(events)
    if len(text) > limits.MAX_TRIGGER_CHARS:
        problems.add(where, fields.too_long(limits.MAX_TRIGGER_CHARS, "the trigger"))
        return {}
    out["trigger"] = text
    if out.get("schedules") and out.get("inputs"):
        for name, spec in out["inputs"].items():
            if spec is not None and spec["required"] and "default" not in spec:
                problems.add(where + ("workflow_dispatch", "inputs", name),
                             "required without a default, but the workflow has a schedule: a scheduled run has"
                             " nobody to give it; give it a default")
    return out


def _schedules(value: object, where: Where, problems: Problems) -> list[dict]:
    if not isinstance(value, list) or not value:
        problems.add(where, "must be a list of {cron: '...'} entries" + got(value))
        return []
    if len(value) > limits.MAX_SCHEDULES:
        problems.add(where, f"more than {limits.MAX_SCHEDULES} schedules (limit for one workflow)")
        return []
    return [entry for entry in (_schedule(item, where + (i,), problems) for i, item in enumerate(value)) if entry]


def _schedule(value: object, where: Where, problems: Problems) -> dict | None:
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping: {cron: '*/15 * * * *', timezone: 'Europe/Berlin'}" + got(value))
        return None
    entries = fields.gather(value, _SCHEDULE_FIELDS, where, problems)
    entry: dict = {}
    if "cron" not in entries:
        problems.add(where + ("cron",), "required: a cron expression, e.g. '*/15 * * * *'")
    else:
        expr, at = entries["cron"]
        why = cron.check(expr) if isinstance(expr, str) else "must be a string" + got(expr)
        if why:
            problems.add(at, f"invalid cron expression {expr!r}: {why}" if isinstance(expr, str) else why)
        else:
            entry["cron"] = " ".join(expr.split())
    if "timezone" in entries:
        tz, at = entries["timezone"]
        if not isinstance(tz, str) or cron.zone(tz) is None:
            problems.add(at, "must be an IANA time zone name, e.g. UTC or Europe/Berlin" + got(tz))
        else:
            entry["timezone"] = tz
    for field, choices in (("catch_up", _CATCH_UP), ("overlap", _OVERLAP)):
        if field in entries:
            choice, at = entries[field]
            if choice not in choices:
                problems.add(at, f"must be one of {', '.join(choices)}" + _got(choice))
            else:
                entry[field] = choice
    return entry if "cron" in entry else None


def _dispatch(value: object, where: Where, problems: Problems) -> dict:
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping with inputs: (or nothing)" + got(value))
        return {}
    entries = fields.gather(value, _DISPATCH_FIELDS, where, problems)
    if "inputs" not in entries:
        return {}
    inputs, at = entries["inputs"]
    if not isinstance(inputs, dict):
        problems.add(at, "must be a mapping of input name to {type, description, required, default, options}")
        return {}
    if len(inputs) > limits.MAX_INPUTS:
        problems.add(at, f"more than {limits.MAX_INPUTS} inputs (limit for one workflow)")
        return {}
    out: dict = {}
    seen: dict[str, str] = {}
    for name, spec in inputs.items():
        child = at + (key_text(name),)
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            problems.add(child, "an input name is letters, digits and '_', not starting with a digit, at most 64"
                         " characters: a job sees it as $ROTA_INPUT_<NAME>")
            continue
        if name.lower() in seen:
            problems.add(child, f"the same input as {seen[name.lower()]} ($ROTA_INPUT_{name.upper()} either way)")
            continue
        seen[name.lower()] = name
        out[name] = _input(spec, child, problems)
    return out


def _input(value: object, where: Where, problems: Problems) -> dict | None:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping: {type, description, required, default, options}" + got(value))
        return None
    entries = fields.gather(value, _INPUT_FIELDS, where, problems)
    spec: dict = {}
    kind = "string"
    if "type" in entries:
        kind, at = entries["type"]
        if kind not in TYPES:
            problems.add(at, f"must be one of {', '.join(TYPES)}" + _got(kind))
            return None
        spec["type"] = kind
    if "description" in entries:
        text, at = entries["description"]
        if not isinstance(text, str):
            problems.add(at, "must be a string" + got(text))
        elif len(text) > limits.MAX_INPUT_DESCRIPTION_CHARS:
            problems.add(at, fields.too_long(limits.MAX_INPUT_DESCRIPTION_CHARS, "an input's description"))
        else:
            spec["description"] = text
    if "required" in entries:
        required, at = entries["required"]
        if not isinstance(required, bool):
            problems.add(at, "must be true or false" + got(required))
        else:
            spec["required"] = required
    spec.setdefault("required", False)
    if "options" in entries:
        options, at = entries["options"]
        if kind != "choice":
            problems.add(at, "only a choice input has options")
        elif not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
            problems.add(at, "must be a non-empty list of strings")
        elif len(options) > limits.MAX_INPUT_OPTIONS or any(len(o) > limits.MAX_NAME_CHARS for o in options):
            problems.add(at, f"at most {limits.MAX_INPUT_OPTIONS} options of at most {limits.MAX_NAME_CHARS}"
                         " characters each")
        else:
            spec["options"] = list(dict.fromkeys(options))
    elif kind == "choice":
        problems.add(where + ("options",), "required for a choice input: the values it may take")
    if "default" in entries:
        default, at = entries["default"]
        try:
            spec["default"] = typed(InputSpec(type=kind, options=spec.get("options", [])), default)
        except ValueError as exc:
            problems.add(at, f"the default of a {kind} input {exc}")
        else:
            if isinstance(spec["default"], str) and len(spec["default"]) > limits.MAX_INPUT_CHARS:
                problems.add(at, fields.too_long(limits.MAX_INPUT_CHARS, "one input"))
                del spec["default"]
    return spec
