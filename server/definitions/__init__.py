"""Workflow documents (YAML or JSON) -> a validated `WorkflowSpec`.

Two shapes come in. The seed's `{"name", "trigger", "jobs": [{"id",
"command", "depends_on", ...}]}` (seed clients post their full Job objects,
state fields and all) and the GitHub-Actions-like document `{name, on, jobs:
{id: {run | steps, needs, labels, ...}}}`. `jobs` being a list or a mapping
tells them apart; both normalise to the same spec.

Every problem is collected before anything is raised, so a submitter fixes a
document in one round trip. Problems name their field as a dotted path
(`jobs.build.needs`, `jobs[0].command`) and, for YAML, the line and column.
Sizes are bounded (server/limits.py) before anything is encoded or stored.

  problems.py   DefinitionError and the problem list
  source.py     text -> data with positions; the YAML size pre-pass
  workflow.py   the two shapes -> WorkflowSpec fields
  fields.py     one converter per job field, with its limits
  github.py     GitHub Actions keys rota does not run, and what to write instead
  graph.py      needs: unknown, self, duplicate ids, cycles
  expressions.py  `${{ }}` as the worker reads it: only in env:, only a direct need's outputs
"""

from __future__ import annotations

import pathlib

import msgspec

from .. import models
from ..limits import MAX_JOBS, MAX_YAML_DEPTH, MAX_YAML_VALUES
from .problems import MAX_PROBLEMS, DefinitionError, Problems, problem
from .source import FILE_MEDIA_TYPES, YAML_MEDIA_TYPES, decode, load_json, load_yaml, media_type
from .workflow import workflow

__all__ = [
    "MAX_JOBS",
    "MAX_PROBLEMS",
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
    "YAML_MEDIA_TYPES",
    "DefinitionError",
    "load_workflow_file",
    "parse_workflow",
]


def parse_workflow(
    body: bytes, content_type: str | None, *, default_name: str = "workflow"
) -> models.WorkflowSpec:
    """Read a submitted document: YAML for the YAML media types, JSON otherwise."""
    problems = Problems()
    text = decode(body)
    if media_type(content_type) in YAML_MEDIA_TYPES:
        data, positions = load_yaml(text, problems)
    else:
        data, positions = load_json(text, problems), {}
    spec_fields = workflow(data, default_name, problems)
    if problems:
        raise problems.error(positions)
    try:
        spec = msgspec.convert(spec_fields, models.WorkflowSpec)
        # JSON "\ud800" escapes (and YAML's) decode to lone surrogates, which
        # no UTF-8 store can hold: find them here, not when the store encodes.
        msgspec.json.encode(spec)
    except msgspec.ValidationError as err:
        # models.py has the last word: a constraint added there and not yet
        # checked here must still come back as a bad document, not a crash.
        raise DefinitionError([{"field": "document", "message": str(err)}]) from err
    except UnicodeEncodeError as err:
        raise DefinitionError([problem("document", "text must be valid Unicode: "
                                       "a \\ud800-\\udfff escape is not a character on its own")]) from err
    return spec


def load_workflow_file(path: pathlib.Path) -> models.WorkflowSpec:
    """Read a WORKFLOWS_DIR file; an unnamed workflow is named after the file."""
    file_media_type = FILE_MEDIA_TYPES.get(path.suffix.lower())
    if file_media_type is None:
        message = f"unsupported file type {path.suffix!r}: use .yml, .yaml or .json"
        raise DefinitionError([problem("document", message)])
    return parse_workflow(path.read_bytes(), file_media_type, default_name=path.stem)
