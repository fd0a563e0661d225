"""A workflow definition once read and checked (what server/definitions produces),
and the documents POST /api/workflows accepts, as /openapi.json describes them."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal, Optional, Union

from msgspec import Meta, Struct, field

from .. import limits

from .core import Backoff, Id, Label, Priority, Retries, Seconds
from .sdk import EventKey, GateSeconds


# ---- normalized workflow definition (what server/definitions produces) -----


Name = Annotated[str, Meta(max_length=limits.MAX_NAME_CHARS)]
_SECONDS = typing.get_args(Seconds)[1]
_GATE_SECONDS = typing.get_args(GateSeconds)[1]
Script = Annotated[str, Meta(max_length=limits.MAX_SCRIPT_CHARS)]
EnvName = Annotated[str, Meta(max_length=limits.MAX_ENV_NAME_CHARS)]
EnvText = Annotated[str, Meta(max_length=limits.MAX_ENV_VALUE_CHARS)]


# A value that may hold `${{ }}` expressions (rendered when the job is
# decided, or by the worker for step-level ones), or a plain value.
Flag = Union[bool, str]  # true, false, or an expression's text


class RunDefaults(Struct, kw_only=True, omit_defaults=True):
    """`defaults: {run: {shell, working-directory}}`, the workflow's and the
    job's merged (the job's win); for the worker to apply to each step."""

    shell: Optional[str] = None
    working_directory: Optional[str] = field(default=None, name="working-directory")


class Step(Struct, kw_only=True, omit_defaults=True):
    """A step as written. Everything but name and run is for the worker to
    evaluate (`if`, `env`, ... may hold expressions over the step contexts)."""

    name: Name
    run: Script
    id: Optional[str] = None
    if_: Optional[str] = field(default=None, name="if")  # the condition's expression text
    env: dict[EnvName, EnvText] = {}
    shell: Optional[str] = None
    working_directory: Optional[str] = field(default=None, name="working-directory")
    timeout_minutes: Union[float, str, None] = field(default=None, name="timeout-minutes")
    continue_on_error: Flag = field(default=False, name="continue-on-error")


class Strategy(Struct, kw_only=True, omit_defaults=True):
    """`strategy:` of a matrix job, as written: `matrix` is a mapping (whose
    values may hold expressions) or one expression (a dynamic matrix)."""

    matrix: Any = None
    fail_fast: Flag = field(default=True, name="fail-fast")
    max_parallel: Union[int, str, None] = field(default=None, name="max-parallel")


class SpawnAllow(Struct, kw_only=True):
    """`spawn:` on a job: what the jobs and child runs it spawns may use
    beyond its own labels (nothing else: a job may spawn onto its own labels
    and no workflow)."""

    labels: Annotated[list[Label], Meta(max_length=limits.MAX_LABELS)] = []
    workflows: Annotated[list[Id], Meta(max_length=limits.MAX_SPAWN_WORKFLOWS)] = []


class ConcurrencySpec(Struct, kw_only=True):
    """`concurrency:` of a workflow or a job, as written: `group` (and
    `cancel_in_progress` when it is text) may hold `${{ }}` expressions,
    rendered when a run starts. Members of one group run `limit` at once;
    the others wait, one (`queue: single`, the newest replacing the one
    waiting) or up to MAX_GROUP_PENDING in order (`queue: max`)."""

    group: Annotated[str, Meta(min_length=1, max_length=limits.MAX_GROUP_TEMPLATE_CHARS)]
    cancel_in_progress: Union[bool, Annotated[str, Meta(max_length=limits.MAX_GROUP_TEMPLATE_CHARS)]] = False
    queue: Literal["single", "max"] = "single"
    limit: Annotated[int, Meta(ge=1, le=limits.MAX_GROUP_LIMIT)] = 1
    # `limit: N per D`: a rate, N let in within any window this long
    # (no bound on how many run at once) instead of N at once.
    per_secs: Optional[Annotated[int, Meta(ge=1, le=limits.MAX_RATE_WINDOW_SECS)]] = None


class JobSpec(Struct, kw_only=True, omit_defaults=True):
    id: Id
    name: Name
    command: Annotated[str, Meta(max_length=limits.MAX_STEPS_CHARS)]
    steps: list[Step] = []
    needs: list[Id] = []
    labels: Annotated[list[Label], Meta(max_length=limits.MAX_LABELS)] = []
    max_retries: Retries = 0
    backoff: Backoff = "None"
    env: Annotated[dict[EnvName, EnvText], Meta(max_length=limits.MAX_ENV_ENTRIES)] = {}
    timeout_secs: Optional[int] = None
    priority: Priority = 0
    # A gate: a job that is only a wait for this event (or an approval),
    # never sent to a worker; `command` is empty.
    wait_event: Optional[EventKey] = None
    wait_timeout_secs: Optional[GateSeconds] = None
    spawn: Optional[SpawnAllow] = None
    # Restep's: input name -> job.input_params.F | NEED.artifacts.F |
    # NEED.result_data.F, resolved into the job's inputs when it is claimed
    input_mapping: dict[str, str] = {}
    # The workflow language (see docs/workflow-yaml.md). `name` and each env
    # value may hold `${{ }}`; these are their other templated fields. A job
    # with any of them (or a matrix) is decided when its needs have settled.
    if_: Optional[str] = field(default=None, name="if")  # the condition's expression text
    labels_expr: Optional[list[str]] = None  # runs-on with expressions: each item a template
    timeout_expr: Optional[str] = None  # timeout-minutes as an expression
    continue_on_error: Flag = False
    strategy: Optional[Strategy] = None
    outputs: dict[str, str] = {}  # declared outputs: name -> template (the worker evaluates them)
    defaults: Optional[RunDefaults] = None
    concurrency: Optional[ConcurrencySpec] = None


class ScheduleSpec(Struct, kw_only=True, omit_defaults=True):
    """One entry of `on: schedule:`: a cron expression in a time zone, and
    what to do about ticks missed while no scheduler ran (`catch_up`) and
    about a tick while the schedule's previous run is still going
    (`overlap`)."""

    cron: Annotated[str, Meta(max_length=256)]
    timezone: Annotated[str, Meta(max_length=64)] = "UTC"
    catch_up: Literal["none", "latest", "all"] = "latest"
    overlap: Literal["allow", "skip"] = "allow"


class InputSpec(Struct, kw_only=True, omit_defaults=True):
    """One of `on: workflow_dispatch: inputs:`, typed as GitHub types them;
    `default` is already of the type (None: no default)."""

    type: Literal["string", "number", "boolean", "choice", "environment"] = "string"
    description: Annotated[str, Meta(max_length=limits.MAX_INPUT_DESCRIPTION_CHARS)] = ""
    required: bool = False
    default: Any = None
    options: Annotated[list[str], Meta(max_length=limits.MAX_INPUT_OPTIONS)] = []


class DecidedJob(Struct, kw_only=True, omit_defaults=True):
    """A job's fields as its decision rendered them (kept with its run, so
    the claim and the run views read them instead of the spec's templates);
    for a matrix combination, also its values and its matrix job."""

    name: str
    labels: list[str] = []
    env: dict[str, str] = {}
    timeout_secs: Optional[int] = None
    continue_on_error: bool = False
    matrix: Optional[dict[str, Any]] = None
    strategy: Optional[dict[str, Any]] = None  # fail-fast, job-index, job-total, max-parallel
    of: Optional[str] = None  # a combination's matrix job


class WorkflowSpec(Struct, kw_only=True, omit_defaults=True):
    name: Name
    trigger: Annotated[str, Meta(max_length=limits.MAX_TRIGGER_CHARS)] = ""
    jobs: Annotated[list[JobSpec], Meta(min_length=1, max_length=limits.MAX_JOBS)]
    schedules: Annotated[list[ScheduleSpec], Meta(max_length=limits.MAX_SCHEDULES)] = []
    inputs: Annotated[dict[str, InputSpec], Meta(max_length=limits.MAX_INPUTS)] = {}
    # The workflow's env: when it holds expressions (a static one is merged
    # into each job's env when the document is read); rendered per job.
    env: dict[str, str] = {}
    run_name: Optional[str] = None  # `run-name`: a template over inputs and run
    concurrency: Optional[ConcurrencySpec] = None


# ---- submitted documents (their schema; server/definitions reads them) ------
# What POST /api/workflows accepts, as /openapi.json describes it. The
# definitions package reads documents itself (YAML too, naming every problem
# with its line); these types give the document's shape and the limits that
# JSON Schema can state, each from the declaration the checks use. What no
# schema can say (needs name jobs that exist, no cycles, `${{ }}` only where
# the worker reads it, the totals) is checked there as well, and answered
# 422 naming each problem.

EnvValue = Union[str, int, float, bool, None]
# A job id, the key of `jobs:` (and each entry of `needs:`).
NeedIds = Union[Id, list[Id]]
Labels = Union[Label, list[Label]]
Text = Annotated[str, Meta(min_length=1, max_length=limits.MAX_NAME_CHARS)]
Run = Annotated[str, Meta(min_length=1, max_length=limits.MAX_SCRIPT_CHARS)]
EnvVarName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,%d}\Z" % (limits.MAX_ENV_NAME_CHARS - 1))]
Env = Annotated[dict[EnvVarName, EnvValue], Meta(max_length=limits.MAX_ENV_ENTRIES)]
TimeoutSecs = Annotated[int, Meta(gt=0, le=_SECONDS.le)]
TimeoutMinutes = Annotated[float, Meta(gt=0, le=_SECONDS.le / 60)]
GateMinutes = Annotated[float, Meta(gt=0, le=_GATE_SECONDS.le / 60)]
BackoffDocument = Union[str, dict[str, dict[str, int]]]


# Text that holds, or is, a `${{ }}` expression (an `if:`, a flag or a
# number given as an expression): bounded as a document's expressions are.
ExpressionText = Annotated[str, Meta(min_length=1, max_length=limits.MAX_DOCUMENT_EXPRESSION_CHARS)]
Condition = Union[bool, ExpressionText]  # an `if:`: an expression, with or without `${{ }}`
FlagDocument = Union[bool, ExpressionText]  # true, false, their text, or one `${{ }}`
StepIdText = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,%d}\Z" % (limits.MAX_STEP_ID_CHARS - 1))]
PathText = Annotated[str, Meta(min_length=1, max_length=limits.MAX_PATH_CHARS)]
# A job's labels: each a label (models/core.py's pattern, checked when the
# document is read) or `${{ }}` text rendered when the job is decided
# (runs-on: ${{ matrix.os }}); one string type, as a union holds one.
JobLabel = Annotated[str, Meta(min_length=1, max_length=limits.MAX_DOCUMENT_EXPRESSION_CHARS)]
JobLabels = Union[JobLabel, list[JobLabel]]
OutputName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*\Z")]
OutputDeclarations = Annotated[
    dict[OutputName, Annotated[str, Meta(max_length=limits.MAX_OUTPUT_DECLARATION_CHARS)]],
    Meta(max_length=limits.MAX_OUTPUT_DECLARATIONS)]


class StepDocument(Struct, forbid_unknown_fields=True,
                   rename={"if_": "if", "timeout_minutes": "timeout-minutes",
                           "working_directory": "working-directory", "continue_on_error": "continue-on-error"}):
    run: Run
    name: Optional[Text] = None
    id: Optional[StepIdText] = None
    if_: Optional[Condition] = None
    env: Optional[Env] = None
    shell: Optional[PathText] = None
    working_directory: Optional[PathText] = None
    timeout_minutes: Optional[Union[TimeoutMinutes, ExpressionText]] = None
    continue_on_error: Optional[FlagDocument] = None


class RunDefaultsDocument(Struct, forbid_unknown_fields=True, rename={"working_directory": "working-directory"}):
    shell: Optional[PathText] = None
    working_directory: Optional[PathText] = None


class DefaultsDocument(Struct, forbid_unknown_fields=True):
    """`defaults: {run: {shell, working-directory}}`."""

    run: Optional[RunDefaultsDocument] = None


class StrategyDocument(Struct, forbid_unknown_fields=True,
                       rename={"fail_fast": "fail-fast", "max_parallel": "max-parallel"}):
    """A matrix: vectors (key: [values]), `include`, `exclude`; or one
    `${{ }}` expression giving all of it."""

    matrix: Union[ExpressionText, dict[str, Any]]
    fail_fast: Optional[FlagDocument] = None
    max_parallel: Optional[Union[Annotated[int, Meta(ge=1)], ExpressionText]] = None


class WaitDocument(Struct, forbid_unknown_fields=True, rename={"timeout_minutes": "timeout-minutes"}):
    """An approval gate's wait: the event key and how long it waits."""

    event: EventKey
    timeout_minutes: Optional[GateMinutes] = None


class SpawnDocument(Struct, forbid_unknown_fields=True):
    """A job's `spawn:` allow-list: labels and workflow ids, each one or a list."""

    labels: Optional[Labels] = None
    workflows: Optional[Union[Id, list[Id]]] = None


_JOB_RENAMES = {"runs_on": "runs-on", "timeout_minutes": "timeout-minutes", "if_": "if",
                "continue_on_error": "continue-on-error"}


# Python's whitespace (str.isspace), spelled out: a group name is not blank.
_SPACE = "\\t-\\r\\x1c- \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
NOT_BLANK = f"^[{_SPACE}]*[^{_SPACE}](?:[^\\n]|\\n)*\\Z"
GroupTemplate = Annotated[str, Meta(min_length=1, max_length=limits.MAX_GROUP_TEMPLATE_CHARS, pattern=NOT_BLANK)]
# `limit: N per D`, a rate (10 per 1m): what server/definitions/concurrency.py reads.
RATE_PATTERN = r"^[\t-\r ]*([0-9]{1,7})[\t-\r ]+per[\t-\r ]+([0-9]{1,7})[\t-\r ]*([smhd])[\t-\r ]*\Z"


class ConcurrencyDocument(Struct, forbid_unknown_fields=True, rename={"cancel_in_progress": "cancel-in-progress"}):
    """`concurrency:` as a mapping (or give the group alone, as text)."""

    group: GroupTemplate
    cancel_in_progress: Optional[Union[bool, GroupTemplate]] = None
    queue: Optional[Literal["single", "max"]] = None
    # N (at most N at once), or "N per D", a rate (10 per 1m)
    limit: Optional[Union[Annotated[int, Meta(ge=1, le=limits.MAX_GROUP_LIMIT)],
                          Annotated[str, Meta(pattern=RATE_PATTERN)]]] = None


Concurrency = Union[GroupTemplate, ConcurrencyDocument]


class JobDocument(Struct, forbid_unknown_fields=True, rename=_JOB_RENAMES):
    """A job of the YAML document shape (`jobs` is a mapping of id to job)."""

    run: Optional[Script] = None  # may be "" beside steps (seed clients send both)
    steps: Optional[Annotated[list[StepDocument], Meta(min_length=1)]] = None
    name: Optional[Text] = None
    needs: Optional[NeedIds] = None
    labels: Optional[JobLabels] = None
    runs_on: Optional[JobLabels] = None
    retries: Optional[Retries] = None
    max_retries: Optional[Retries] = None
    backoff: Optional[BackoffDocument] = None
    env: Optional[Env] = None
    timeout_minutes: Optional[Union[TimeoutMinutes, ExpressionText]] = None
    timeout_secs: Optional[TimeoutSecs] = None
    priority: Optional[Priority] = None
    wait: Optional[WaitDocument] = None
    spawn: Optional[SpawnDocument] = None
    input_mapping: Optional[dict[str, str]] = None
    if_: Optional[Condition] = None
    strategy: Optional[StrategyDocument] = None
    continue_on_error: Optional[FlagDocument] = None
    outputs: Optional[OutputDeclarations] = None
    defaults: Optional[DefaultsDocument] = None
    concurrency: Optional[Concurrency] = None


class SeedJobDocument(Struct, rename={"if_": "if", "continue_on_error": "continue-on-error"}):
    """A job of seed 002's shape (`jobs` is a list); its state fields
    (status, output, outputs, ...) are ignored."""

    id: Id
    command: Optional[Script] = None
    steps: Optional[Annotated[list[StepDocument], Meta(min_length=1)]] = None
    name: Optional[Text] = None
    depends_on: Optional[NeedIds] = None
    required_labels: Optional[Labels] = None
    max_retries: Optional[Retries] = None
    backoff: Optional[BackoffDocument] = None
    env: Optional[Env] = None
    timeout_secs: Optional[TimeoutSecs] = None
    priority: Optional[Priority] = None
    wait: Optional[WaitDocument] = None
    spawn: Optional[SpawnDocument] = None
    input_mapping: Optional[dict[str, str]] = None
    if_: Optional[Condition] = None
    strategy: Optional[StrategyDocument] = None
    continue_on_error: Optional[FlagDocument] = None
    defaults: Optional[DefaultsDocument] = None
    concurrency: Optional[Concurrency] = None


JobMap = Annotated[dict[Id, JobDocument], Meta(min_length=1, max_length=limits.MAX_JOBS)]


class WorkflowDocument(Struct, forbid_unknown_fields=True, rename={"run_name": "run-name"}):
    """A workflow: seed 002's shape (`jobs` a list of job objects) or the
    YAML shape (`jobs` a mapping of job id to job). The server checks more
    than a schema can say (needs name existing jobs, no cycles, expressions,
    totals) and answers 422 naming every problem."""

    jobs: Union[Annotated[list[SeedJobDocument], Meta(min_length=1, max_length=limits.MAX_JOBS)], JobMap]
    name: Optional[Text] = None
    on: Optional[Union[str, list[str], dict[str, Any]]] = None
    trigger: Optional[str] = None
    run_name: Optional[Text] = None
    env: Optional[Env] = None
    defaults: Optional[DefaultsDocument] = None
    concurrency: Optional[Concurrency] = None


class SpawnRequest(Struct, forbid_unknown_fields=True):
    """Jobs a running job adds to its run: the YAML shape's `jobs`, whose
    needs may also name the run's jobs; `wait`: the spawning job's
    dependents wait for these too."""

    jobs: JobMap
    wait: bool = True
