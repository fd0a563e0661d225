"""What a running job tells its server and asks of it (the in-job SDK):
progress, structured logs, steps, checkpoints, run state, annotations,
outputs, spawning, waiting for an event, resource samples. Field names are
Restep's and Strait's, so their executors' bodies decode unchanged."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from msgspec import Meta, Struct

from .. import limits
from .core import Id, given

Percent = Annotated[float, Meta(ge=0, le=100)]
ShortText = Annotated[str, Meta(max_length=256)]
LongText = Annotated[str, Meta(max_length=65_536)]
Level = Literal["debug", "info", "warn", "warning", "error"]
# Both are path segments of their calls: no '/'.
StateKey = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}\Z")]
EVENT_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}\Z"
EventKey = Annotated[str, Meta(pattern=EVENT_KEY_PATTERN)]
# How long a gate (a `wait:` job) may wait: a day unless its timeout-minutes
# says otherwise, at most 30 days.
GATE_DEFAULT_SECS = 86_400
GateSeconds = Annotated[int, Meta(ge=1, le=30 * 86_400)]
# A step of a job: its index in a `steps:` job, or an executor's own id.
StepId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}\Z")]


class ProgressUpdate(Struct, kw_only=True):
    progress_percent: Optional[Percent] = None
    current_step_name: Optional[ShortText] = None
    current_step_index: Optional[Annotated[int, Meta(ge=0)]] = None
    metadata: Optional[dict[str, Any]] = None


class LogEntry(Struct, kw_only=True):
    level: Level = "info"
    message: LongText
    log_data: Optional[dict[str, Any]] = None
    progress_percent: Optional[Percent] = None
    step: Optional[ShortText] = None
    execution_step_id: Optional[ShortText] = None  # Restep's name for `step`


class LogBody(Struct, kw_only=True):
    """One entry (Restep's single form), or `logs` (its batch form)."""

    logs: Optional[Annotated[list[LogEntry], Meta(min_length=1, max_length=limits.MAX_LOG_CHUNKS_PER_REQUEST)]] = None
    level: Level = "info"
    message: Optional[LongText] = None
    log_data: Optional[dict[str, Any]] = None
    progress_percent: Optional[Percent] = None
    step: Optional[ShortText] = None
    execution_step_id: Optional[ShortText] = None

    __post_init__ = given("logs", "message", exactly_one=False,
                          message="give `message` (one entry) or `logs` (a list of entries)")


class StepUpdate(Struct, kw_only=True):
    """Restep's step calls: running (no body), completed (result_data,
    artifacts), failed (error_*), progress (progress_percent, metadata,
    checkpoint_data); rota's daemon adds name and exit_code."""

    name: Optional[ShortText] = None
    exit_code: Optional[int] = None
    result_data: Any = None
    artifacts: Any = None
    error_message: Optional[LongText] = None
    error_type: Optional[ShortText] = None
    error_stack: Optional[LongText] = None
    progress_percent: Optional[Percent] = None
    metadata: Optional[dict[str, Any]] = None
    checkpoint_data: Any = None


class CheckpointSave(Struct, kw_only=True):
    data: Any


class StateSet(Struct, kw_only=True):
    """Strait's POST .../state: a key and its value."""

    key: StateKey
    value: Any


# A body with this field is a Note; any other is a job's annotations.
NOTE_FIELD = "markdown"
Annotations = Annotated[
    dict[StateKey, Annotated[str, Meta(max_length=limits.MAX_ANNOTATION_VALUE_CHARS)]],
    Meta(max_length=limits.MAX_ANNOTATIONS, extra_json_schema={"not": {"required": [NOTE_FIELD]}})]


class Note(Struct, kw_only=True):
    """A Markdown annotation of the run (Buildkite's): one per context."""

    markdown: Annotated[str, Meta(max_length=65_536)]
    style: Literal["info", "warning", "error", "success"] = "info"
    context: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}\Z")] = "default"


class WaitRequest(Struct, kw_only=True):
    event_key: EventKey
    timeout_secs: Annotated[int, Meta(ge=1, le=30 * 86_400)] = 86_400


class ChildRun(Struct, kw_only=True):
    """Spawn's other form: a run of another workflow, as this run's child."""

    workflow_id: Id
    inputs: Annotated[dict[str, Any], Meta(max_length=limits.MAX_INPUTS)] = {}  # checked as a start's are
    tags: dict[str, str] = {}


class EventPost(Struct, kw_only=True):
    payload: Any = None


class ResourceSample(Struct, kw_only=True):
    cpu_percent: Optional[Annotated[float, Meta(ge=0)]] = None
    memory_bytes: Optional[Annotated[int, Meta(ge=0)]] = None
    # what else an executor measures, kept as sent
    extra: Optional[dict[str, Any]] = None


# ---- answers -------------------------------------------------------------------


class Accepted(Struct, kw_only=True):
    ok: bool = True
    count: Optional[int] = None


class LogAccepted(Struct, kw_only=True, omit_defaults=True):
    """Entries kept; `dropped`: those past the attempt's LOG_MAX_BYTES, by
    the call that filled it (later calls are 413), left out when none."""

    ok: bool  # always true, as in every other in-job answer
    count: int
    dropped: int = 0


class Waiting(Struct, kw_only=True):
    status: Literal["waiting"] = "waiting"
    event_key: str
    expires_at_ms: int
    expires_at: str  # the same, ISO 8601 (Strait's)
    trigger_id: str  # what the wait is known by: the lease that asked


class Spawned(Struct, kw_only=True):
    jobs: list[str] = []  # jobs added to the run
    child_run_id: Optional[str] = None


class Released(Struct, kw_only=True):
    event_key: str
    released: int  # jobs woken


class Payload(Struct, kw_only=True):
    inputs: dict[str, Any]  # the run's inputs as JSON values
    upstream_outputs: dict[str, dict[str, str]]
    checkpoint: Any = None
    event: Any = None


class CheckpointOut(Struct, kw_only=True):
    attempt: int
    saved_at_ms: int
    data: Any
    # Numbered in its run, 1, 2, ...; what saved it: `checkpoint` (the
    # call) or `step` (a step's artifacts or checkpoint_data). Absent on a
    # checkpoint saved before rota kept them all.
    sequence: Optional[int] = None
    job_id: Optional[str] = None
    source: Optional[str] = None


class StructuredOutput(Struct, kw_only=True):
    """A structured output of a run (Strait's): a JSON value by key, with
    the JSON schema the job gave for it (kept, not applied)."""

    output_key: str
    job_id: str
    attempt: int
    created_at_ms: int
    updated_at_ms: int
    schema: Any = None
    value: Any = None


# A body with this field is a structured output (Strait's); any other is
# the job's outputs.
OUTPUT_KEY_FIELD = "output_key"
OutputValues = Annotated[dict[str, str], Meta(extra_json_schema={"not": {"required": [OUTPUT_KEY_FIELD]}})]


class StructuredOutputSet(Struct, forbid_unknown_fields=True, kw_only=True):
    """`/output`'s structured form: {output_key, value, schema?}."""

    output_key: StateKey
    value: Any
    schema: Optional[dict[str, Any]] = None


class StepOut(Struct, kw_only=True):
    id: str
    name: Optional[str] = None
    status: Literal["pending", "running", "completed", "failed", "skipped"] = "pending"
    started_at: Optional[int] = None
    finished_at: Optional[int] = None
    duration_ms: Optional[int] = None
    exit_code: Optional[int] = None
    progress_percent: Optional[float] = None
    result_data: Any = None
    artifacts: Any = None
    error_message: Optional[str] = None
    error_type: Optional[str] = None
    error_stack: Optional[str] = None
    metadata: Optional[dict[str, Any]] = None


class Resources(Struct, kw_only=True):
    """The latest sample of a job's resource use, and the peaks of its attempt."""

    cpu_percent: Optional[float] = None
    memory_bytes: Optional[int] = None
    peak_cpu_percent: Optional[float] = None
    peak_memory_bytes: Optional[int] = None
    at_ms: Optional[int] = None
    extra: Optional[dict[str, Any]] = None


class NoteOut(Struct, kw_only=True):
    context: str
    style: str
    markdown: str
    job_id: str
    at_ms: int


class NoteHtml(NoteOut, kw_only=True):
    """A note with its Markdown rendered and sanitised (GET .../notes)."""

    html: str
