"""Workflow documents (YAML or JSON) -> a validated `WorkflowSpec`.

Two shapes come in. The seed's `{"name", "trigger", "jobs": [{"id",
"command", "depends_on", ...}]}` (seed clients post their full Job objects,
state fields and all) and the GitHub-Actions-like document `{name, on, jobs:
{id: {run | steps, needs, labels, ...}}}`. `jobs` being a list or a mapping
tells them apart; both normalise to the same spec.

Every problem is collected before anything is raised, so a submitter fixes a
document in one round trip. Problems name their field as a dotted path
(`jobs.build.needs`, `jobs[0].command`) and, for YAML, the line and column.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import pathlib
import re
import typing
from collections.abc import Callable, Iterable, Set

import msgspec
import yaml

from . import models

MAX_JOBS = 1000
# Beyond this many problems a document is broken wholesale; listing more helps nobody.
MAX_PROBLEMS = 200
# PyYAML's C composer recurses without a depth check and crashes the process on
# deeply nested input, and any YAML loader spends seconds per million values;
# real workflows are a few levels deep and well under these bounds.
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 200_000

YAML_MEDIA_TYPES = frozenset({"application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"})
_FILE_MEDIA_TYPES = {".yml": "application/yaml", ".yaml": "application/yaml", ".json": "application/json"}

Where = tuple[str | int, ...]  # ("jobs", "build", "steps", 1, "run")
Position = tuple[int, int]  # 1-based (line, column)


def _meta(annotated: object) -> msgspec.Meta:
    """The constraint on a models.py type, so every limit is stated once, there."""
    return typing.get_args(annotated)[1]


_ID_RE = re.compile(models.ID_PATTERN)
_LABEL_RE = re.compile(models.LABEL_PATTERN)
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RETRIES = _meta(models.Retries)
_PRIORITY = _meta(models.Priority)
_MAX_SECONDS = _meta(models.Seconds).le


class DefinitionError(Exception):
    """A document that cannot become a WorkflowSpec, with every reason.

    `problems` holds `{"field", "message"}` dicts, plus `line` and `column`
    (1-based) where the document is YAML.
    """

    def __init__(self, problems: list[dict]) -> None:
        super().__init__(_summary(problems))
        self.problems = problems


def parse_workflow(
    body: bytes, content_type: str | None, *, default_name: str = "workflow"
) -> models.WorkflowSpec:
    """Read a submitted document: YAML for the YAML media types, JSON otherwise."""
    problems = _Problems()
    text = _decode(body)
    if _media_type(content_type) in YAML_MEDIA_TYPES:
        data, positions = _load_yaml(text, problems)
    else:
        data, positions = _load_json(text, problems), {}
    workflow = _workflow(data, default_name, problems)
    if problems:
        raise problems.error(positions)
    try:
        spec = msgspec.convert(workflow, models.WorkflowSpec)
        # JSON "\ud800" escapes (and YAML's) decode to lone surrogates, which
        # no UTF-8 store can hold: find them here, not when the store encodes.
        msgspec.json.encode(spec)
    except msgspec.ValidationError as err:
        # models.py has the last word: a constraint added there and not yet
        # checked here must still come back as a bad document, not a crash.
        raise DefinitionError([{"field": "document", "message": str(err)}]) from err
    except UnicodeEncodeError as err:
        raise DefinitionError([{"field": "document", "message": "text must be valid Unicode: "
                                "a \\ud800-\\udfff escape is not a character on its own"}]) from err
    return spec


def load_workflow_file(path: pathlib.Path) -> models.WorkflowSpec:
    """Read a WORKFLOWS_DIR file; an unnamed workflow is named after the file."""
    media_type = _FILE_MEDIA_TYPES.get(path.suffix.lower())
    if media_type is None:
        message = f"unsupported file type {path.suffix!r}: use .yml, .yaml or .json"
        raise DefinitionError([{"field": "document", "message": message}])
    return parse_workflow(path.read_bytes(), media_type, default_name=path.stem)


# ---- problems ----------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[Where, str, Position | None]] = []
        self.count = 0

    def __bool__(self) -> bool:
        return self.count > 0

    @property
    def full(self) -> bool:
        return len(self.items) >= MAX_PROBLEMS

    def add(self, where: Where, message: str, position: Position | None = None) -> None:
        self.count += 1
        if not self.full:
            self.items.append((where, message, position))

    def error(self, positions: dict[Where, Position]) -> DefinitionError:
        problems = [
            _problem(_field(where), message, position or _position(where, positions))
            for where, message, position in self.items
        ]
        if self.count > len(self.items):
            hidden = self.count - len(self.items)
            problems.append(_problem("document", f"{hidden} more problems not shown"))
        return DefinitionError(problems)


def _position(where: Where, positions: dict[Where, Position]) -> Position | None:
    """Where the field sits, or for a missing field, where the mapping that lacks it does."""
    while where and where not in positions:
        where = where[:-1]
    return positions.get(where)


def _problem(field: str, message: str, position: Position | None = None) -> dict:
    problem: dict = {"field": field, "message": message}
    if position is not None:
        problem["line"], problem["column"] = position
    return problem


def _field(where: Where) -> str:
    text = ""
    for part in where:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "document"


def _summary(problems: list[dict], shown: int = 5) -> str:
    parts = []
    for problem in problems[:shown]:
        field = problem["field"]
        if "line" in problem:
            field += f" (line {problem['line']}, column {problem['column']})"
        parts.append(f"{field}: {problem['message']}")
    if len(problems) > shown:
        parts.append(f"and {len(problems) - shown} more")
    lead = f"{len(problems)} problems: " if len(problems) > 1 else ""
    return lead + "; ".join(parts)


def _suggest(word: object, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1) if isinstance(word, str) else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _key(key: object) -> str:
    return key if isinstance(key, str) else str(key)


# ---- reading text --------------------------------------------------------------


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        message = f"not UTF-8 text (bad byte at offset {err.start})"
        raise DefinitionError([_problem("document", message)]) from None


def _text_position(text: str, index: int) -> Position:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def _load_json(text: str, problems: _Problems) -> object:
    def unique_keys(pairs: list[tuple[str, object]]) -> dict:
        # json.loads would silently keep the last of two equal keys.
        obj: dict = {}
        for key, value in pairs:
            if key in obj:
                problems.add((), f"duplicate key {key!r}")
            obj[key] = value
        return obj

    def no_constants(name: str) -> object:
        raise ValueError(f"{name} is not a JSON value")

    try:
        return json.loads(text, object_pairs_hook=unique_keys, parse_constant=no_constants)
    except json.JSONDecodeError as err:
        problem = _problem("document", f"invalid JSON: {err.msg}", (err.lineno, err.colno))
    except ValueError as err:
        problem = _problem("document", f"invalid JSON: {err}")
    except RecursionError:
        problem = _problem("document", "invalid JSON: nested too deeply")
    raise DefinitionError([problem])


_DROPPED_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}


# libyaml's loader where PyYAML was built with it: several times faster.
class _YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader with YAML 1.2 booleans and no timestamps.

    YAML 1.1 reads `on`, `off`, `yes` and `no` as booleans, which would turn
    the `on:` key into True and `env: {CI: yes}` into "true". Timestamps
    would turn `VERSION: 2024-01-01` into a date object.
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }

    def construct_object(self, node: yaml.Node, deep: bool = False) -> object:
        # SafeConstructor lets bad scalars escape as plain exceptions
        # (`!!int abc`, `!!bool maybe`, a 5000-digit int); give them a position.
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, AttributeError):
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(None, None, f"not a valid {tag}", node.start_mark) from None


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _load_yaml(text: str, problems: _Problems) -> tuple[object, dict[Where, Position]]:
    try:
        _check_yaml_size(text)
        loader = _YamlLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, {}
            positions = _index_yaml(node, problems)
            return loader.construct_document(node), positions
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        message = ", ".join(part for part in (err.context, err.problem) if part)
        problem = _problem("document", f"invalid YAML: {message}", (mark.line + 1, mark.column + 1))
    except yaml.reader.ReaderError as err:
        problem = _problem("document", f"invalid YAML: {err.reason}", _text_position(text, err.position))
    raise DefinitionError([problem])


_VALUE_EVENTS = (yaml.CollectionStartEvent, yaml.ScalarEvent, yaml.AliasEvent)


def _check_yaml_size(text: str) -> None:
    """Refuse, from the parser's event stream (iterative, cheap), what the loader must not see."""
    depth = values = 0
    for event in yaml.parse(text, Loader=_YamlLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        values += isinstance(event, _VALUE_EVENTS)
        if depth > MAX_YAML_DEPTH:
            message = f"nested more than {MAX_YAML_DEPTH} levels deep"
        elif values > MAX_YAML_VALUES:
            message = f"more than {MAX_YAML_VALUES} values"
        else:
            continue
        mark = event.start_mark
        raise DefinitionError([_problem("document", message, (mark.line + 1, mark.column + 1))])


def _index_yaml(root: yaml.Node, problems: _Problems) -> dict[Where, Position]:
    """Where each key and item sits, to position every problem; reports duplicate keys.

    PyYAML keeps the last of two equal keys without a word, which would
    silently drop a job; only the node tree still shows both.
    """
    positions: dict[Where, Position] = {}
    duplicates: list[tuple[int, Where, str, Position]] = []
    seen: set[int] = set()
    pending: list[tuple[Where, yaml.Node]] = [((), root)]
    while pending:
        where, node = pending.pop()
        if id(node) in seen:  # an alias: indexed where its anchor is
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], Position] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                child = where + (key_node.value,)
                mark = key_node.start_mark
                position = (mark.line + 1, mark.column + 1)
                identity = (key_node.tag, key_node.value)
                if identity in first:
                    message = f"duplicate key {key_node.value!r} (first at line {first[identity][0]})"
                    duplicates.append((mark.index, child, message, position))
                else:
                    first[identity] = positions[child] = position
                pending.append((child, value_node))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                mark = item.start_mark
                positions[where + (index,)] = (mark.line + 1, mark.column + 1)
                pending.append((where + (index,), item))
    for _, where, message, position in sorted(duplicates, key=lambda d: d[0]):
        problems.add(where, message, position)
    return positions


# ---- the workflow ----------------------------------------------------------------

# Each shape's spelling of a field -> the field it means. Aliases of one field
# may not both be given.
_WORKFLOW_FIELDS = {"name": "name", "on": "trigger", "trigger": "trigger", "jobs": "jobs"}
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
}
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
}
# Job state a seed client (or a client echoing our status output) sends along.
_SEED_JOB_STATE = frozenset(
    {"status", "duration_secs", "started_at", "output", "attempt", "metadata", "ports", "children", "collapsed"}
    | {"outputs", "error", "progress", "worker_id", "finished_at"}
)
_STEP_FIELDS = {"name": "name", "run": "run"}

Entries = dict[str, tuple[object, Where]]  # field -> (value, where)


def _gather(
    mapping: dict, fields: dict[str, str], where: Where, problems: _Problems, ignored: Set[str] = frozenset()
) -> Entries:
    """The mapping's entries by the field they mean. A null value counts as absent."""
    found: Entries = {}
    for key, value in mapping.items():
        child = where + (_key(key),)
        field = fields.get(key)
        if field is None:
            if key not in ignored:
                problems.add(child, "unknown field" + _suggest(key, fields))
        elif field in found:
            problems.add(child, f"give {found[field][1][-1]} or {key}, not both")
        elif value is not None:
            found[field] = (value, child)
    return found


def _workflow(data: object, default_name: str, problems: _Problems) -> dict | None:
    if not isinstance(data, dict):
        problems.add((), "must be a mapping with a jobs entry")
        return None
    entries = _gather(data, _WORKFLOW_FIELDS, (), problems)
    name = _text(*entries["name"], problems) if "name" in entries else default_name
    trigger = _trigger(*entries["trigger"], problems) if "trigger" in entries else ""
    jobs = _jobs(entries.get("jobs"), problems)
    return {"name": name, "trigger": trigger, "jobs": jobs}


def _trigger(value: object, where: Where, problems: _Problems) -> str | None:
    """`on:` as GitHub spells it: an event, a list of events, or events mapped to their filters."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)) and all(isinstance(event, str) for event in value):
        return ",".join(value)
    problems.add(where, "must be an event name, a list of them or a mapping keyed by them")
    return None


@dataclasses.dataclass
class _Job:
    where: Where
    id: str | None  # None when the document gives no usable id
    needs: list[str]
    needs_where: Where
    spec: dict  # JobSpec fields


def _jobs(entry: tuple[object, Where] | None, problems: _Problems) -> list[dict]:
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
        jobs = [_document_job(where + (_key(key),), key, job, problems) for key, job in value.items()]
    _check_graph(jobs, problems)
    return [job.spec for job in jobs]


def _document_job(where: Where, key: object, value: object, problems: _Problems) -> _Job:
    job_id = _job_id(key, where, problems)
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping with run: or steps:")
        return _Job(where, job_id, [], where, {})
    entries = _gather(value, _DOCUMENT_JOB_FIELDS, where, problems)
    return _job(where, job_id, entries, "run", problems)


def _seed_job(where: Where, value: object, problems: _Problems) -> _Job:
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping (a job object)")
        return _Job(where, None, [], where, {})
    entries = _gather(value, _SEED_JOB_FIELDS, where, problems, ignored=_SEED_JOB_STATE)
    if "id" in entries:
        raw_id, id_where = entries.pop("id")
        job_id = _job_id(raw_id, id_where, problems)
    else:
        problems.add(where + ("id",), "required")
        job_id = None
    return _job(where, job_id, entries, "command", problems)


def _job_id(value: object, where: Where, problems: _Problems) -> str | None:
    """The id as given, even when invalid, so the graph checks can still refer to it."""
    if not isinstance(value, str):
        problems.add(where, "job ids must be strings")
        return None
    if not _ID_RE.fullmatch(value):
        problems.add(
            where,
            f"invalid job id {value!r}: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit, at most 128 characters",
        )
    return value


def _job(where: Where, job_id: str | None, entries: Entries, run_key: str, problems: _Problems) -> _Job:
    run = entries.get("run")
    if run is not None and run[0] == "" and "steps" in entries:
        del entries["run"]  # seed clients must send `command`; a steps job derives it
    if "run" in entries and "steps" in entries:
        problems.add(where, f"give {run_key} or steps, not both")
    elif "run" not in entries and "steps" not in entries:
        problems.add(where + (run_key,), "required (or give steps)")

    spec: dict = {"id": job_id, "name": job_id}
    for field, (value, field_where) in entries.items():
        spec_key, convert = _JOB_CONVERTERS[field]
        converted = convert(value, field_where, problems)
        if converted is not None:
            spec[spec_key] = converted
    if "steps" in spec:
        spec["command"] = "\n".join(step["run"] for step in spec["steps"])
    needs_where = entries["needs"][1] if "needs" in entries else where
    return _Job(where, job_id, spec.get("needs", []), needs_where, spec)


# ---- job fields: each converter reports its own problems and returns the normalised
# value, or None when nothing usable is left. Nothing is built unless no problem was found.


def _text(value: object, where: Where, problems: _Problems) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    problems.add(where, "must be a non-empty string")
    return None


def _strings(value: object, where: Where, problems: _Problems) -> list[tuple[Where, str]] | None:
    """Each string with where it sits; one string stands for a list of one (`needs: test`)."""
    if isinstance(value, str):
        return [(where, value)]
    if not isinstance(value, list):
        problems.add(where, "must be a string or a list of strings")
        return None
    bad = [index for index, item in enumerate(value) if not isinstance(item, str)]
    for index in bad:
        problems.add(where + (index,), "must be a string")
    return None if bad else [(where + (index,), item) for index, item in enumerate(value)]


def _needs(value: object, where: Where, problems: _Problems) -> list[str] | None:
    items = _strings(value, where, problems)
    # the store counts a job's unmet needs: a repeated need would never be met twice
    return None if items is None else list(dict.fromkeys(item for _, item in items))


def _labels(value: object, where: Where, problems: _Problems) -> list[str] | None:
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
    return sorted({label for _, label in items})


def _bounded_int(value: object, where: Where, problems: _Problems, low: int, high: int) -> int | None:
    # `type is int`: a bool is an int to Python, but `retries: true` is a mistake
    if type(value) is int and low <= value <= high:
        return value
    problems.add(where, f"must be an integer from {low} to {high}")
    return None


def _retries(value: object, where: Where, problems: _Problems) -> int | None:
    return _bounded_int(value, where, problems, _RETRIES.ge, _RETRIES.le)


def _priority(value: object, where: Where, problems: _Problems) -> int | None:
    return _bounded_int(value, where, problems, _PRIORITY.ge, _PRIORITY.le)


def _timeout(value: object, where: Where, problems: _Problems) -> int | None:
    """`timeout-minutes` (GitHub's, fractions allowed) or `timeout_secs`, as whole seconds."""
    if where[-1] == "timeout-minutes":
        # the bound comes before the multiplication: inf * 60 cannot be rounded; NaN fails it
        if type(value) in (int, float) and 0 < value <= _MAX_SECONDS / 60:
            return math.ceil(value * 60)
        problems.add(where, f"must be a number of minutes above 0, at most {_MAX_SECONDS // 60}")
        return None
    if type(value) is int and 0 < value <= _MAX_SECONDS:
        return value
    problems.add(where, f"must be a whole number of seconds above 0, at most {_MAX_SECONDS}")
    return None


def _env(value: object, where: Where, problems: _Problems) -> dict[str, str] | None:
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping of NAME: value")
        return None
    env = {}
    for name, raw in value.items():
        name_where = where + (_key(name),)
        if not (isinstance(name, str) and _ENV_NAME_RE.fullmatch(name)):
            problems.add(
                name_where,
                "invalid environment variable name: use letters, digits and '_', not starting with a digit",
            )
        text = _env_text(raw)
        if text is None:
            problems.add(name_where, "must be a string, number or boolean")
        else:
            env[_key(name)] = text
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


def _steps(value: object, where: Where, problems: _Problems) -> list[dict] | None:
    if not isinstance(value, list) or not value:
        problems.add(where, "must be a non-empty list of steps, each {name, run}")
        return None
    steps = [_step(item, where + (index,), problems) for index, item in enumerate(value)]
    return None if None in steps else steps


def _step(value: object, where: Where, problems: _Problems) -> dict | None:
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping with run:")
        return None
    entries = _gather(value, _STEP_FIELDS, where, problems, ignored={"uses"})
    if "uses" in value:
        problems.add(where + ("uses",), "uses: is not supported; give run:")
        return None
    if "run" not in entries:
        problems.add(where + ("run",), "required")
        return None
    run = _text(*entries["run"], problems)
    if run is None:
        return None
    if "name" in entries:
        name = _text(*entries["name"], problems)
    else:
        name = next(line.strip() for line in run.splitlines() if line.strip())
    return {"name": name, "run": run}


# wire tag and parameters of each backoff kind, by its lowercase (YAML) name
_BACKOFF_KINDS = {"fixed": ("Fixed", ("delay_secs",)), "exponential": ("Exponential", ("base_secs", "max_secs"))}


def _backoff(value: object, where: Where, problems: _Problems) -> str | dict | None:
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
    entries = _gather(params, {name: name for name in names}, kind_where, problems)
    seconds = {}
    for name in names:
        if name in entries:
            seconds[name] = _bounded_int(*entries[name], problems, 0, _MAX_SECONDS)
        else:
            problems.add(kind_where + (name,), "required")
    if len(seconds) < len(names) or None in seconds.values():
        return None
    if tag == "Exponential" and seconds["max_secs"] < seconds["base_secs"]:
        problems.add(kind_where + ("max_secs",), "must be at least base_secs")
        return None
    return {tag: seconds}


Converter = Callable[[object, Where, _Problems], object]
# field -> (JobSpec field, converter)
_JOB_CONVERTERS: dict[str, tuple[str, Converter]] = {
    "name": ("name", _text),
    "run": ("command", _text),
    "steps": ("steps", _steps),
    "needs": ("needs", _needs),
    "labels": ("labels", _labels),
    "retries": ("max_retries", _retries),
    "backoff": ("backoff", _backoff),
    "env": ("env", _env),
    "timeout": ("timeout_secs", _timeout),
    "priority": ("priority", _priority),
}


# ---- the graph -----------------------------------------------------------------------


def _check_graph(jobs: list[_Job], problems: _Problems) -> None:
    by_id: dict[str, _Job] = {}
    for job in jobs:
        if job.id is None:
            continue
        if job.id in by_id:  # only the seed's list can say an id twice
            problems.add(job.where + ("id",), f"duplicate job id {job.id!r} (also {_field(by_id[job.id].where)})")
        else:
            by_id[job.id] = job
    for job in jobs:
        for need in job.needs:
            if need == job.id:
                problems.add(job.needs_where, "a job cannot need itself")
            elif need not in by_id:
                # the suggestion search is skipped once nobody will read the problem
                hint = "" if problems.full else _suggest(need, by_id)
                problems.add(job.needs_where, f"unknown job {need!r}{hint}")
    graph = {job_id: [n for n in job.needs if n in by_id and n != job_id] for job_id, job in by_id.items()}
    for cycle in _cycles(graph):
        problems.add(by_id[cycle[0]].needs_where, "cycle: " + " -> ".join(cycle))


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per back edge of a depth-first search, each distinct, as `[a, b, a]`.

    Iterative, so a chain of a thousand jobs does not hit the recursion limit.
    Breaking these cycles may reveal others; the resubmission reports those.
    """
    cycles = []
    done: set[str] = set()
    for root in graph:
        if root in done:
            continue
        stack = [(root, iter(graph[root]))]
        on_stack = {root: 0}  # job -> its index in `stack`
        while stack:
            node, needs = stack[-1]
            for need in needs:
                if need in on_stack:
                    cycles.append([job for job, _ in stack[on_stack[need]:]] + [need])
                elif need not in done:
                    on_stack[need] = len(stack)
                    stack.append((need, iter(graph[need])))
                    break
            else:
                stack.pop()
                del on_stack[node]
                done.add(node)
    return cycles
