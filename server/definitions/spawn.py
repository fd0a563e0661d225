"""A spawn document: jobs a running job adds to its own run (Buildkite's
`pipeline upload`). The same checks as a submission's jobs, except that
needs may name jobs already in the run.

    jobs:             # job id -> job, as in a workflow document
      test-linux: {run: make test, needs: [build]}
    wait: true        # the spawning job's dependents wait for these too

Its jobs take the same fields, `spawn:` included. What they may carry (labels,
an allow-list of their own) is the spawning job's to allow: the spawn script
checks that against the stored definition, not here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

import msgspec

from .. import models
from ..limits import MAX_JOBS
from .job_language import check_expressions
from .graph import check_graph
from .problems import DefinitionError, Problems, key_text, problem
from .source import YAML_MEDIA_TYPES, decode, load_json, load_yaml, media_type
from .workflow import _document_job

_FIELDS = ("jobs", "wait")


@dataclasses.dataclass(frozen=True)
class Spawn:
    jobs: list[models.JobSpec]
    wait: bool


def parse_spawn(body: bytes, content_type: str | None, existing: Collection[str]) -> Spawn:
    problems = Problems()
    text = decode(body)
    if media_type(content_type) in YAML_MEDIA_TYPES:
        data, positions = load_yaml(text, problems)
    else:
        data, positions = load_json(text, problems), {}
    specs: list[dict] = []
    wait = True
    if not problems and not isinstance(data, dict):
        problems.add((), "must be a mapping with a jobs entry (job id -> job)")
    elif isinstance(data, dict):
        for key in data:
            if key not in _FIELDS:
                problems.add((key_text(key),), f"unknown field {key_text(key)!r}: a spawn has jobs and wait")
        wait_value = data.get("wait", True)
        if not isinstance(wait_value, bool):
            problems.add(("wait",), "must be true or false")
        else:
            wait = wait_value
        specs = _jobs(data.get("jobs"), existing, problems)
    if problems:
        raise problems.error(positions)
    try:
        return Spawn([msgspec.convert(spec, models.JobSpec) for spec in specs], wait)
    except msgspec.ValidationError as err:
        raise DefinitionError([problem("jobs", str(err))]) from err


def _jobs(value: object, existing: Collection[str], problems: Problems) -> list[dict]:
    if not isinstance(value, dict) or not value:
        problems.add(("jobs",), "required: a mapping of job id to job, at least one")
        return []
    if len(value) + len(existing) > MAX_JOBS:
        problems.add(("jobs",), f"a run holds at most {MAX_JOBS} jobs: it has {len(existing)},"
                                f" and this adds {len(value)}")
        return []
    jobs = [_document_job(("jobs", key_text(key)), key, job, problems) for key, job in value.items()]
    for job in jobs:
        if "concurrency" in job.wheres:
            # a group is its workflow's to choose: a job could otherwise crowd out any group's members
            problems.add(job.wheres["concurrency"], "a spawned job joins no concurrency group: give the group to"
                         " the job that spawns it, or spawn a child run of a workflow that has one")
    check_graph(jobs, problems, known=existing)
    check_expressions(jobs, problems, known=existing)
    return [job.spec for job in jobs]
