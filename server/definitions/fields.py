"""Field converters: each reports its own problems and returns the normalised
value, or None when nothing usable is left. Nothing is built unless no problem
was found, so the length limits here hold before anything is encoded or stored.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Callable, Mapping, Set

import msgspec

from .. import models
from ..limits import (
    MAX_ENV_ENTRIES,
    MAX_ENV_NAME_CHARS,
    MAX_ENV_TOTAL_CHARS,
    MAX_ENV_VALUE_CHARS,
    MAX_LABELS,
    MAX_NAME_CHARS,
    MAX_SCRIPT_CHARS,
    MAX_SPAWN_WORKFLOWS,
    MAX_STEPS_CHARS,
)
from . import github, language_fields
from .problems import Problems, Where, got, key_text


def _meta(annotated: object) -> msgspec.Meta:
    """The constraint on a models.py type, so every limit is stated once, there."""
    return typing.get_args(annotated)[1]


_LABEL_RE = re.compile(models.LABEL_PATTERN)
_ID_RE = re.compile(models.ID_PATTERN)
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RETRIES = _meta(models.Retries)
_PRIORITY = _meta(models.Priority)
_MAX_SECONDS = _meta(models.Seconds).le

Converter = Callable[[object, Where, Problems], object]
Entries = dict[str, tuple[object, Where]]  # field -> (value, where)


def gather(
    mapping: dict,
    fields: dict[str, str],
    where: Where,
    problems: Problems,
    ignored: Set[str] = frozenset(),
    unsupported: Mapping[str, str] | None = None,
) -> Entries:
    """The mapping's entries by the field they mean. A null value counts as absent.

    `unsupported`: keys (GitHub's, see github.py) refused with their own message."""
    found: Entries = {}
    for key, value in mapping.items():
        child = where + (key_text(key),)
        field = fields.get(key)
        if field is None:
            if key in ignored:
                continue
            if unsupported and key in unsupported:
                problems.add(child, unsupported[key])
            else:
                problems.add(child, "unknown field" + problems.hint(key, fields))
        elif field in found:
            problems.add(child, f"give {found[field][1][-1]} or {key}, not both")
        elif value is not None:
            found[field] = (value, child)
    return found


def too_long(limit: int, what: str) -> str:
    return f"longer than {limit} characters (limit for {what})"


def _text(value: object, where: Where, problems: Problems) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    problems.add(where, "must be a non-empty string" + got(value))
    return None


def _bounded_text(limit: int, what: str) -> Converter:
    def convert(value: object, where: Where, problems: Problems) -> str | None:
        text = _text(value, where, problems)
        if text is not None and len(text) > limit:
            problems.add(where, too_long(limit, what))
            return None
        return text

    return convert


name = _bounded_text(MAX_NAME_CHARS, "a name")
script = _bounded_text(MAX_SCRIPT_CHARS, "one script")


def _strings(value: object, where: Where, problems: Problems) -> list[tuple[Where, str]] | None:
    """Each string with where it sits; one string stands for a list of one (`needs: test`)."""
    if isinstance(value, str):
        return [(where, value)]
    if not isinstance(value, list):
        problems.add(where, "must be a string or a list of strings" + got(value))
        return None
    bad = [index for index, item in enumerate(value) if not isinstance(item, str)]
    for index in bad:
        problems.add(where + (index,), "must be a string" + got(value[index]))
    return None if bad else [(where + (index,), item) for index, item in enumerate(value)]


def _needs(value: object, where: Where, problems: Problems) -> list[str] | None:
    items = _strings(value, where, problems)
    # the store counts a job's unmet needs: a repeated need would never be met twice
    return None if items is None else list(dict.fromkeys(item for _, item in items))


def _labels(value: object, where: Where, problems: Problems) -> list[str] | None:
    items = _strings(value, where, problems)
    if items is None:
        return None
    for item_where, label in items:
        if not _LABEL_RE.fullmatch(label):
            problems.add(
                item_where,
                f"invalid label {label!r}: use letters, digits and _.:/=+- (no spaces or commas), "
                "at most 64 characters",
            )
    labels = sorted({label for _, label in items})
    if len(labels) > MAX_LABELS:
        problems.add(where, f"more than {MAX_LABELS} labels (limit for one job)")
        return None
    return labels


def _job_labels(value: object, where: Where, problems: Problems) -> list[str] | None:
    """A job's labels: each a label, or text with `${{ }}` (runs-on:
    ${{ matrix.os }}), kept as written for the job's decision to render."""
    items = _strings(value, where, problems)
    if items is None:
        return None
    if not any(language_fields.OPEN in label for _, label in items):
        return _labels(value, where, problems)
    if len(items) > MAX_LABELS:
        problems.add(where, f"more than {MAX_LABELS} labels (limit for one job)")
        return None
    for item_where, label in items:
        if language_fields.OPEN in label:
            language_fields.bounded(label, item_where, problems)
        elif not _LABEL_RE.fullmatch(label):
            problems.add(item_where, f"invalid label {label!r}: use letters, digits and _.:/=+- (no spaces or"
                         " commas), at most 64 characters")
    return [label for _, label in items]


def _bounded_int(value: object, where: Where, problems: Problems, low: int, high: int) -> int | None:
    whole = language_fields.whole(value)
    if whole is not None and low <= whole <= high:
        return whole
    problems.add(where, f"must be an integer from {low} to {high}")
    return None


def _retries(value: object, where: Where, problems: Problems) -> int | None:
    return _bounded_int(value, where, problems, _RETRIES.ge, _RETRIES.le)


def _priority(value: object, where: Where, problems: Problems) -> int | None:
    return _bounded_int(value, where, problems, _PRIORITY.ge, _PRIORITY.le)


def _timeout(value: object, where: Where, problems: Problems) -> int | None:
    """`timeout-minutes` (GitHub's, fractions allowed) or `timeout_secs`, as whole seconds."""
    if where[-1] == "timeout-minutes":
        if isinstance(value, str) and language_fields.OPEN in value:
            # an expression: rendered when the job is decided
            return value if language_fields.bounded(value, where, problems) else None
        # the bound comes before the multiplication: inf * 60 cannot be rounded; NaN fails it
        if type(value) in (int, float) and 0 < value <= _MAX_SECONDS / 60:
            return math.ceil(value * 60)
        problems.add(where, f"must be a number of minutes above 0, at most {_MAX_SECONDS // 60},"
                     " or one ${{ }} expression")
        return None
    whole = language_fields.whole(value)
    if whole is not None and 0 < whole <= _MAX_SECONDS:
        return whole
    problems.add(where, f"must be a whole number of seconds above 0, at most {_MAX_SECONDS}")
    return None


_EVENT_KEY_RE = re.compile(models.EVENT_KEY_PATTERN)
_GATE_MAX_MINUTES = _meta(models.GateSeconds).le // 60


def wait(value: object, where: Where, problems: Problems) -> dict | None:
    """`wait: {event: KEY, timeout-minutes: N}`: a gate's event and how long
    it waits, as the spec's wait_event and wait_timeout_secs."""
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping: {event: KEY, timeout-minutes: N}")
        return None
    gate: dict = {}
    for key, item in value.items():
        child = where + (key_text(key),)
        if key == "event":
            if isinstance(item, str) and _EVENT_KEY_RE.fullmatch(item):
                gate["wait_event"] = item
            else:
                problems.add(child, "must be 1 to 200 letters, digits and _ . : -" + got(item))
        elif key == "timeout-minutes":
            if type(item) in (int, float) and 0 < item <= _GATE_MAX_MINUTES:
                gate["wait_timeout_secs"] = math.ceil(item * 60)
            else:
                problems.add(child, f"must be a number of minutes above 0, at most {_GATE_MAX_MINUTES} (30 days)")
        else:
            problems.add(child, "unknown field: a wait: takes event and timeout-minutes"
                         + problems.hint(key, ("event", "timeout-minutes")))
    if "event" not in value:
        problems.add(where + ("event",), "required: the event key that releases the gate")
    return gate if "wait_event" in gate else None


def _env(value: object, where: Where, problems: Problems) -> dict[str, str] | None:
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping of NAME: value")
        return None
    if len(value) > MAX_ENV_ENTRIES:
        # a problem per entry would only bury this one
        problems.add(where, f"more than {MAX_ENV_ENTRIES} environment variables (limit for one job)")
        return None
    env = {}
    for env_name, raw in value.items():
        name_where = where + (key_text(env_name),)
        if not (isinstance(env_name, str) and _ENV_NAME_RE.fullmatch(env_name)):
            problems.add(
                name_where,
                "invalid environment variable name: use letters, digits and '_', not starting with a digit",
            )
        elif len(env_name) > MAX_ENV_NAME_CHARS:
            problems.add(name_where, too_long(MAX_ENV_NAME_CHARS, "an environment variable name"))
        text = _env_text(raw)
        if text is None:
            problems.add(name_where, "must be a string, number or boolean")
        elif len(text) > MAX_ENV_VALUE_CHARS:
            problems.add(name_where, too_long(MAX_ENV_VALUE_CHARS, "one environment value"))
        else:
            env[key_text(env_name)] = text
    total = sum(len(name) + len(text) + 2 for name, text in env.items())
    if total > MAX_ENV_TOTAL_CHARS:
        problems.add(where, too_long(MAX_ENV_TOTAL_CHARS, "a job's whole env: (names and values)"))
        return None
    return env


def _env_text(value: object) -> str | None:
    """A scalar as GitHub Actions puts it in the environment; None for anything else."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


_STEP_FIELDS = {"name": "name", "run": "run", "env": "env"} | {key: key for key in language_fields.STEP_CONVERTERS}


def _steps(value: object, where: Where, problems: Problems) -> list[dict] | None:
    if not isinstance(value, list) or not value:
        problems.add(where, "must be a non-empty list of steps, each {name, run}")
        return None
    steps = [_step(item, where + (index,), problems) for index, item in enumerate(value)]
    if None in steps:
        # Kept, holes and all (the problems stop anything being built), so
        # the later checks (expressions in each run) still see the good ones.
        return steps  # type: ignore[return-value]
    # the job's command is the runs joined by newlines (see workflow.job)
    joined = sum(len(step["run"]) for step in steps) + len(steps) - 1
    if joined > MAX_STEPS_CHARS:
        problems.add(where, "the runs joined are " + too_long(MAX_STEPS_CHARS, "one job's steps"))
        return None
    return steps


def _step(value: object, where: Where, problems: Problems) -> dict | None:
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping with run:")
        return None
    entries = gather(value, _STEP_FIELDS, where, problems, unsupported=github.STEP)
    if "run" not in entries:
        if "uses" not in value:  # its refusal already says to give run:
            problems.add(where + ("run",), "required")
        return None
    run = script(*entries["run"], problems)
    if run is None:
        return None
    if "name" in entries:
        step_name = name(*entries["name"], problems)
    else:
        # a name the submitter did not write must not be what gets the step refused
        step_name = next(line.strip() for line in run.splitlines() if line.strip())[:MAX_NAME_CHARS]
    step: dict = {"name": step_name, "run": run}
    for key, (item, item_where) in entries.items():
        if key == "env":
            converted = _env(item, item_where, problems)
            if converted is not None:
                step["env"] = converted
        elif key in language_fields.STEP_CONVERTERS:
            spec_key, convert = language_fields.STEP_CONVERTERS[key]
            converted = convert(item, item_where, problems)
            if converted is not None:
                step[spec_key] = converted
    return step


# wire tag and parameters of each backoff kind, by its lowercase (YAML) name
_BACKOFF_KINDS = {"fixed": ("Fixed", ("delay_secs",)), "exponential": ("Exponential", ("base_secs", "max_secs"))}


def _backoff(value: object, where: Where, problems: Problems) -> str | dict | None:
    """The YAML form (`none`, `{fixed: ...}`) or the wire form (`"None"`, `{"Fixed": ...}`)."""
    if isinstance(value, str) and value.lower() == "none":
        return "None"
    kind = next(iter(value)) if isinstance(value, dict) and len(value) == 1 else None
    known = _BACKOFF_KINDS.get(kind.lower()) if isinstance(kind, str) else None
    if known is None:
        problems.add(
            where,
            "must be none, {fixed: {delay_secs: N}} or {exponential: {base_secs: N, max_secs: M}}",
        )
        return None
    tag, names = known
    kind_where = where + (kind,)
    params = value[kind]
    if not isinstance(params, dict):
        problems.add(kind_where, f"must be a mapping with {' and '.join(names)}")
        return None
    entries = gather(params, {param: param for param in names}, kind_where, problems)
    seconds = {}
    for param in names:
        if param in entries:
            seconds[param] = _bounded_int(*entries[param], problems, 0, _MAX_SECONDS)
        else:
            problems.add(kind_where + (param,), "required")
    if len(seconds) < len(names) or None in seconds.values():
        return None
    if tag == "Exponential" and seconds["max_secs"] < seconds["base_secs"]:
        problems.add(kind_where + ("max_secs",), "must be at least base_secs")
        return None
    return {tag: seconds}


def _workflow_ids(value: object, where: Where, problems: Problems) -> list[str] | None:
    items = _strings(value, where, problems)
    if items is None:
        return None
    for item_where, wf in items:
        if not _ID_RE.fullmatch(wf):
            problems.add(item_where, f"invalid workflow id {wf!r}: use letters, digits, '_', '.' and '-', "
                                     "starting with a letter or digit, at most 128 characters")
    ids = list(dict.fromkeys(wf for _, wf in items))
    if len(ids) > MAX_SPAWN_WORKFLOWS:
        problems.add(where, f"more than {MAX_SPAWN_WORKFLOWS} workflows (limit for one job's spawn:)")
        return None
    return ids


_SPAWN_FIELDS = {"labels": "labels", "workflows": "workflows"}


def _spawn(value: object, where: Where, problems: Problems) -> dict | None:
    """`spawn: {labels: [...], workflows: [...]}`: what the job may spawn
    beyond its own labels (the spawn script enforces it)."""
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping: {labels: [...], workflows: [...]}" + got(value))
        return None
    entries = gather(value, _SPAWN_FIELDS, where, problems)
    allow: dict = {}
    if "labels" in entries:
        allow["labels"] = _labels(*entries["labels"], problems)
    if "workflows" in entries:
        allow["workflows"] = _workflow_ids(*entries["workflows"], problems)
    return None if None in allow.values() else allow


_INPUT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
# Restep's sources: job.input_params.F, STEP.artifacts.F, STEP.result_data.F
# (F may go deeper: a.b)
_SOURCE_RE = re.compile(r"^(?:job\.input_params|(?P<job>.+?)\.(?:artifacts|result_data))\.[^.]+(?:\.[^.]+)*\Z")
MAX_INPUT_MAPPING = 100


def mapping_source_job(source: str) -> str | None:
    """The job an `input_mapping` source reads from (None: the run's inputs)."""
    match = _SOURCE_RE.match(source)
    return match.group("job") if match else None


def _input_mapping(value: object, where: Where, problems: Problems) -> dict | None:
    """`input_mapping: {NAME: SOURCE}` (Restep's): inputs the job gets,
    each from the run's inputs (`job.input_params.F`) or a need's
    (`NEED.artifacts.F`, `NEED.result_data.F`)."""
    if not isinstance(value, dict) or len(value) > MAX_INPUT_MAPPING:
        problems.add(where, f"must be a mapping of at most {MAX_INPUT_MAPPING} input names to sources" + got(value))
        return None
    out: dict[str, str] = {}
    for key, source in value.items():
        child = where + (key_text(key),)
        if not isinstance(key, str) or not _INPUT_NAME_RE.match(key):
            problems.add(child, "an input name is a letter or '_' then letters, digits and '_', at most 64")
        elif not isinstance(source, str) or len(source) > 1024 or not _SOURCE_RE.match(source):
            problems.add(child, "must be job.input_params.FIELD, JOB.artifacts.FIELD or JOB.result_data.FIELD"
                         + got(source))
        else:
            out[key] = source
    return out if len(out) == len(value) else None


# field -> (JobSpec field, converter)
JOB_CONVERTERS: dict[str, tuple[str, Converter]] = {
    "name": ("name", name),
    "run": ("command", script),
    "steps": ("steps", _steps),
    "needs": ("needs", _needs),
    "labels": ("labels", _job_labels),
    "retries": ("max_retries", _retries),
    "backoff": ("backoff", _backoff),
    "env": ("env", _env),
    "timeout": ("timeout_secs", _timeout),
    "priority": ("priority", _priority),
    "spawn": ("spawn", _spawn),
    "input_mapping": ("input_mapping", _input_mapping),
    "if": ("if", language_fields.condition),
    "continue-on-error": ("continue_on_error", language_fields.flag),
    "strategy": ("strategy", language_fields.strategy),
    "outputs": ("outputs", language_fields.outputs),
    "defaults": ("defaults", language_fields.defaults),
}
