"""The two document shapes -> the fields of a WorkflowSpec.

`jobs` being a list (the seed's shape, full Job objects with `id`, `command`,
`depends_on`) or a mapping (the GitHub-Actions-like shape, job id -> `run` or
`steps`, `needs`) tells them apart; both normalise to the same fields.
"""

from __future__ import annotations

import re

from .. import models
from ..limits import MAX_ENV_ENTRIES, MAX_ENV_TOTAL_CHARS, MAX_JOBS
from . import concurrency, fields, github, language_fields, triggers
from .expressions import WORKFLOW_CONTEXTS, Language, Scope
from .job_language import check_expressions
from .graph import Job, check_graph
from .problems import Problems, Where, got, key_text

_ID_RE = re.compile(models.ID_PATTERN)

# Each shape's spelling of a field -> the field it means. Aliases of one field
# may not both be given.
_WORKFLOW_FIELDS = {"name": "name", "on": "trigger", "trigger": "trigger", "jobs": "jobs", "env": "env",
                    "defaults": "defaults", "run-name": "run_name", "concurrency": "concurrency"}
# The workflow language's job keys, spelt as GitHub spells them in both shapes.
_LANGUAGE_JOB_FIELDS = {"if": "if", "strategy": "strategy", "continue-on-error": "continue-on-error",
                        "outputs": "outputs", "defaults": "defaults"}
_DOCUMENT_JOB_FIELDS = {
    "name": "name",
    "run": "run",
    "steps": "steps",
    "needs": "needs",
    "labels": "labels",
    "runs-on": "labels",
    "retries": "retries",
    "max_retries": "retries",
    "backoff": "backoff",
    "env": "env",
    "timeout-minutes": "timeout",
    "timeout_secs": "timeout",
    "priority": "priority",
    "wait": "wait",
    "spawn": "spawn",
    "input_mapping": "input_mapping",
    "concurrency": "concurrency",
} | _LANGUAGE_JOB_FIELDS
_SEED_JOB_FIELDS = {
    "id": "id",
    "name": "name",
    "command": "run",
    "steps": "steps",
    "depends_on": "needs",
    "required_labels": "labels",
    "max_retries": "retries",
    "backoff": "backoff",
    "env": "env",
    "timeout_secs": "timeout",
    "priority": "priority",
    "wait": "wait",
    "spawn": "spawn",
    "input_mapping": "input_mapping",
    "concurrency": "concurrency",
} | {key: field for key, field in _LANGUAGE_JOB_FIELDS.items() if key != "outputs"}
# (a seed client echoes a job's `outputs` back as state: the seed shape declares none)
# field -> (JobSpec field, converter)
_CONVERTERS = fields.JOB_CONVERTERS | {"concurrency": ("concurrency", concurrency.concurrency)}
# Job state a seed client (or a client echoing our status output) sends along.
_SEED_JOB_STATE = frozenset(
    {"status", "duration_secs", "started_at", "output", "attempt", "metadata", "ports", "children", "collapsed"}
    | {"outputs", "error", "progress", "worker_id", "finished_at"}
    | {"matrix", "matrix_of", "combinations", "continue_on_error"}
)


def workflow(data: object, default_name: str, problems: Problems) -> dict | None:
    if not isinstance(data, dict):
        problems.add((), "must be a mapping with a jobs entry")
        return None
    entries = fields.gather(data, _WORKFLOW_FIELDS, (), problems, unsupported=github.WORKFLOW)
    name = fields.name(*entries["name"], problems) if "name" in entries else default_name
    found = triggers.on(*entries["trigger"], problems) if "trigger" in entries else {}
    language = Language(problems)
    spec: dict = {"name": name, "trigger": "", **found}
    env = fields.JOB_CONVERTERS["env"][1](*entries["env"], problems) if "env" in entries else None
    if "run_name" in entries:
        run_name = fields.name(*entries["run_name"], problems)
        if run_name is not None:
            language.template(run_name, entries["run_name"][1], Scope("run-name", WORKFLOW_CONTEXTS))
            spec["run_name"] = run_name
    dynamic_env: dict[str, str] = {}
    for key, value in (env or {}).items():
        if language.template(value, entries["env"][1] + (key,), Scope("env", WORKFLOW_CONTEXTS)) is not None:
            dynamic_env = env or {}
    defaults = language_fields.defaults(*entries["defaults"], problems) if "defaults" in entries else None
    group = concurrency.concurrency(*entries["concurrency"], problems) if "concurrency" in entries else None
    spec["jobs"] = jobs = _jobs(entries.get("jobs"), problems, language)
    _same_group(group, jobs, problems)
    if group is not None:
        spec["concurrency"] = group
    if dynamic_env:
        spec["env"] = dynamic_env
    elif env:
        _merge_env(jobs, env, entries["env"][1], problems)
    if defaults:
        for job in jobs:
            job["defaults"] = defaults | job.get("defaults", {})
    return spec


def _same_group(group: dict | None, jobs: list[dict], problems: Problems) -> None:
    """A job in its own run's group would wait for its run, which waits for
    it, for ever: refused where both are written out."""
    key = concurrency.literal_key(group)
    if key is None:
        return
    for job in jobs:
        if concurrency.literal_key(job.get("concurrency")) == key:
            problems.add(("jobs", job["id"], "concurrency", "group"),
                         f"the workflow's own group {group['group']!r}: the job would wait for its own run"
                         " to finish, for ever; give the job another group")


def _merge_env(jobs: list[dict], env: dict[str, str], where: Where, problems: Problems) -> None:
    """A workflow env without expressions is each job's, under the job's own."""
    for job in jobs:
        merged = env | job.get("env", {})
        total = sum(len(name) + len(text) + 2 for name, text in merged.items())
        if len(merged) > MAX_ENV_ENTRIES or total > MAX_ENV_TOTAL_CHARS:
            problems.add(where, f"with job {job.get('id')!r}'s env this is more than {MAX_ENV_ENTRIES} variables"
                         f" or {MAX_ENV_TOTAL_CHARS} characters (the limits for one job's env)")
            return
        job["env"] = merged


def _jobs(entry: tuple[object, Where] | None, problems: Problems, language: Language | None = None) -> list[dict]:
    if entry is None:
        problems.add(("jobs",), "required: a list of jobs or a mapping of job id to job")
        return []
    value, where = entry
    if not isinstance(value, (list, dict)):
        problems.add(where, "must be a list of jobs or a mapping of job id to job")
        return []
    if not value:
        problems.add(where, "must contain at least one job")
        return []
    if len(value) > MAX_JOBS:
        problems.add(where, f"at most {MAX_JOBS} jobs per workflow (got {len(value)})")
        return []
    if isinstance(value, list):
        jobs = [_seed_job(where + (index,), job, problems) for index, job in enumerate(value)]
    else:
        jobs = [_document_job(where + (key_text(key),), key, job, problems) for key, job in value.items()]
    check_graph(jobs, problems)
    check_expressions(jobs, problems, language=language)
    return [job.spec for job in jobs]


def _document_job(where: Where, key: object, value: object, problems: Problems) -> Job:
    job_id = _job_id(key, where, problems)
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping with run: or steps:")
        return Job(where, job_id, [], where, {})
    entries = fields.gather(value, _DOCUMENT_JOB_FIELDS, where, problems, unsupported=github.JOB)
    return _job(where, job_id, entries, ("run", "needs"), "uses" in value, problems)


def _seed_job(where: Where, value: object, problems: Problems) -> Job:
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping (a job object)")
        return Job(where, None, [], where, {})
    entries = fields.gather(
        value, _SEED_JOB_FIELDS, where, problems, ignored=_SEED_JOB_STATE, unsupported=github.JOB
    )
    if "id" in entries:
        raw_id, id_where = entries.pop("id")
        job_id = _job_id(raw_id, id_where, problems)
    else:
        problems.add(where + ("id",), "required")
        job_id = None
    return _job(where, job_id, entries, ("command", "depends_on"), "uses" in value, problems)


def _job_id(value: object, where: Where, problems: Problems) -> str | None:
    """The id as given, even when invalid, so the graph checks can still refer to it."""
    if not isinstance(value, str):
        problems.add(where, "job ids must be strings" + got(value))
        return None
    if not _ID_RE.fullmatch(value):
        problems.add(
            where,
            f"invalid job id {value!r}: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit, at most 128 characters",
        )
    return value


def _job(
    where: Where,
    job_id: str | None,
    entries: fields.Entries,
    keys: tuple[str, str],
    uses: bool,
    problems: Problems,
) -> Job:
    """`keys`: what the shape calls run and needs; `uses`: a `uses:` was given (and refused)."""
    run_key, needs_key = keys
    if "wait" in entries:
        return _gate(where, job_id, entries, keys, problems)
    run = entries.get("run")
    if run is not None and run[0] == "" and "steps" in entries:
        del entries["run"]  # seed clients must send `command`; a steps job derives it
    if "run" in entries and "steps" in entries:
        problems.add(where, f"give {run_key} or steps, not both")
    elif "run" not in entries and "steps" not in entries and not uses:  # uses:'s refusal says to give run:
        problems.add(where + (run_key,), "required (or give steps)")

    spec: dict = {"id": job_id, "name": job_id}
    for field, (value, field_where) in entries.items():
        spec_key, convert = _CONVERTERS[field]
        converted = convert(value, field_where, problems)
        if converted is not None:
            spec[spec_key] = converted
    if "steps" in spec:
        spec["command"] = "\n".join(step["run"] for step in spec["steps"] if step is not None)
    for name, source in spec.get("input_mapping", {}).items():
        need = fields.mapping_source_job(source)
        if need is not None and need not in spec.get("needs", []):
            problems.add(entries["input_mapping"][1] + (name,), f"{source!r} reads job {need!r}, which is not"
                         f" in this job's {needs_key}")
    return _graph_job(where, job_id, entries, spec, needs_key)


# What a gate may say besides wait:; the rest is about running a command.
_GATE_FIELDS = ("name", "needs", "if")


def _gate(where: Where, job_id: str | None, entries: fields.Entries, keys: tuple[str, str],
          problems: Problems) -> Job:
    """A job that is only a wait (an approval gate): it never goes to a worker."""
    run_key, needs_key = keys
    spec: dict = {"id": job_id, "name": job_id, "command": ""}
    for field, (value, field_where) in entries.items():
        if field == "wait":
            spec.update(fields.wait(value, field_where, problems) or {})
        elif field in _GATE_FIELDS:
            spec_key, convert = _CONVERTERS[field]
            converted = convert(value, field_where, problems)
            if converted is not None:
                spec[spec_key] = converted
        else:
            what = run_key if field == "run" else field_where[-1]
            problems.add(field_where, f"a wait: job runs nothing on a worker, so {what} does not apply;"
                         " put the work in a job that needs this one")
    return _graph_job(where, job_id, entries, spec, needs_key)


def _graph_job(where: Where, job_id: str | None, entries: fields.Entries, spec: dict, needs_key: str) -> Job:
    needs_where = entries["needs"][1] if "needs" in entries else where
    wheres = {field: field_where for field, (_, field_where) in entries.items()}
    raws = {field: value for field, (value, _) in entries.items()}
    needs_valid = "needs" not in entries or "needs" in spec
    return Job(where, job_id, spec.get("needs", []), needs_where, spec, wheres, needs_key, needs_valid, raws)
