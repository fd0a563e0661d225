"""What the API answers about workflows, jobs and workers."""

from __future__ import annotations

from typing import Any, Literal, Optional

from msgspec import Struct


from .core import JobStatus, RunStatus, WorkflowStatus
from .runs import RunOverrides
from .sdk import NoteOut, Resources, StepOut


# ---- read models ------------------------------------------------------------


class AttemptOut(Struct, kw_only=True):
    number: int
    worker_id: str
    started_at: Optional[int] = None
    finished_at: Optional[int] = None
    # waiting: the attempt gave its lease up to wait for an event;
    # handed_back: its worker stopped and gave the job back, no attempt spent;
    # timed_out: its worker stopped it at its timeout; lost: its lease expired
    status: Literal["running", "success", "failure", "timed_out", "lost", "cancelled", "waiting", "handed_back"]
    error: Optional[str] = None


class JobOut(Struct, kw_only=True):
    id: str
    name: str
    status: JobStatus
    command: str
    depends_on: list[str]
    required_labels: list[str]
    max_retries: int
    attempt: int
    started_at: Optional[float] = None
    duration_secs: Optional[int] = None
    output: Optional[str] = None
    outputs: dict[str, str] = {}
    error: Optional[str] = None
    progress: Optional[float] = None
    worker_id: Optional[str] = None
    finished_at: Optional[float] = None
    # Extensions: when a job waiting out a backoff is due (epoch ms), and
    # every attempt so far (in the run views).
    retry_at: Optional[int] = None
    attempts: list[AttemptOut] = []
    # The in-job SDK's reports (GET of a run or a job; not in the seed views)
    current_step: Optional[str] = None
    current_step_index: Optional[int] = None
    steps: list[StepOut] = []
    annotations: dict[str, str] = {}
    resources: Optional[Resources] = None
    progress_metadata: Optional[dict[str, Any]] = None
    waiting_for: Optional[str] = None  # the event key a waiting job waits on
    waiting_until: Optional[int] = None  # when that wait times out (epoch ms)
    result_data: Any = None  # Restep's, given at complete
    error_type: Optional[str] = None  # Restep's, given at fail
    error_stack: Optional[str] = None
    heartbeat_at: Optional[int] = None  # the job's last heartbeat (epoch ms), of any attempt
    # The workflow language: a matrix combination's values and the matrix
    # job it belongs to; a matrix job's combinations (ids, in order); a job
    # whose failure does not fail its run.
    matrix: Optional[dict[str, Any]] = None
    matrix_of: Optional[str] = None
    combinations: list[str] = []
    continue_on_error: bool = False
    # A queued job of a concurrency group with no place for it yet (the group's name)
    waiting_for_group: Optional[str] = None


class WorkflowOut(Struct, kw_only=True):
    """A workflow definition with its latest run's state (seed 002's view:
    `status` and `jobs` are the latest run's; `idle` and jobs `queued` when
    it never ran)."""

    id: str
    name: str
    trigger: str
    status: WorkflowStatus
    jobs: list[JobOut]
    created_at_ms: int
    runs: int = 0
    started_at_ms: Optional[int] = None
    finished_at_ms: Optional[int] = None
    version: Optional[str] = None
    kind: Optional[Literal["oneoff", "put", "file"]] = None
    latest_run_id: Optional[str] = None
    latest_run_number: Optional[int] = None
    active_runs: int = 0
    updated_at_ms: Optional[int] = None
    schedules: int = 0  # entries of its `on: schedule:` (GET /api/schedules?workflow_id= lists them)
    # Paused: what becomes of its new runs (queue: they wait; skip: refused)
    paused: Optional[Literal["queue", "skip"]] = None
    paused_at_ms: Optional[int] = None


class DispatchInputOut(Struct, kw_only=True):
    """One of `on: workflow_dispatch: inputs:`, every field explicit (a form
    is built from it); `default` is of the input's type, null for none."""

    name: str
    type: Literal["string", "number", "boolean", "choice", "environment"]
    description: str = ""
    required: bool = False
    default: Any = None
    options: list[str] = []


class DefinitionOut(Struct, kw_only=True):
    id: str
    name: str
    version: str
    kind: Literal["oneoff", "put", "file"]
    # The document as submitted (YAML or JSON text), for display.
    document: str
    created_at_ms: int
    updated_at_ms: int
    # Its `workflow_dispatch: inputs:` in order; none declared: a run takes any inputs.
    inputs: list[DispatchInputOut] = []


class RunFailure(Struct, kw_only=True):
    """How a failed run failed: the first of its jobs to fail for good."""

    job_id: str
    # failure: an attempt failed; timed_out: its worker stopped it at its
    # timeout; lost: its lease expired; system: the server failed it (a wait
    # for an event or an approval timed out)
    kind: Literal["failure", "timed_out", "lost", "system"]
    error: str


class RunOut(Struct, kw_only=True):
    run_id: str
    number: int
    workflow_id: str
    # The workflow's name now (GET of a run, and listings of runs)
    workflow_name: Optional[str] = None
    status: RunStatus
    triggered_by: str
    inputs: dict[str, Any] = {}  # JSON values (typed, for a workflow that declares its inputs)
    tags: dict[str, str] = {}
    created_at: int
    started_at: Optional[int] = None
    finished_at: Optional[int] = None
    version: str
    # Its run-name rendered when it started, else the workflow's name.
    name: str = ""
    # job status -> how many of the run's jobs are in it
    job_counts: dict[str, int] = {}
    jobs: Optional[list[JobOut]] = None  # in GET /api/runs/{id}; not in listings
    parent_run_id: Optional[str] = None  # a child run: the run that spawned it
    depth: int = 0  # levels of child runs above this one (0: nobody spawned it)
    notes: list[NoteOut] = []  # Markdown annotations
    # When it was to start (a delayed run's time, or a cron tick), epoch ms
    scheduled_at: Optional[int] = None
    expires_at: Optional[int] = None  # unstarted by then, it ends `expired`
    schedule_id: Optional[str] = None  # the schedule whose tick started it
    # the run this one restarts (or replays: a restart triggered_by retry)
    restarted_from: Optional[str] = None
    overrides: Optional[RunOverrides] = None  # per-run overrides of its jobs
    idempotency_key: Optional[str] = None  # the Idempotency-Key it was started with
    continuation_of: Optional[str] = None  # a continuation: the run it continues
    lineage_depth: int = 0  # continuations before this one (0: it continues none)
    batch_id: Optional[str] = None  # the bulk call that started it
    debug_mode: bool = False
    failure: Optional[RunFailure] = None  # a failed run: how
    dead_letters: int = 0  # its jobs still dead letters
    # its jobs' annotations merged (the latest value of a key wins); in
    # GET /api/runs/{id}, empty in listings
    metadata: dict[str, str] = {}
    # Run control: its workflow-level concurrency group, as rendered; the
    # group while the run waits for a place in it (its jobs held); whether it
    # waits for its paused workflow; whether an operator paused it.
    concurrency_group: Optional[str] = None
    waiting_for_group: Optional[str] = None
    waiting_for_workflow: bool = False
    paused: bool = False
    paused_at: Optional[int] = None


class RunPage(Struct, kw_only=True):
    runs: list[RunOut]
    # Pass as ?cursor= for the next page; null at the end.
    next_cursor: Optional[str] = None


class NeedStatus(Struct, kw_only=True):
    job: str
    status: JobStatus


class BlockedBy(Struct, kw_only=True):
    """Why a queued job is not running."""

    needs: list[NeedStatus] = []  # needs not yet met
    retry_at: Optional[int] = None  # waiting out a backoff until then (epoch ms)
    # No live worker offers these labels (the job's required labels).
    no_worker_with: Optional[list[str]] = None
    # Its needs have settled and its if:, matrix or expressions are being
    # evaluated (it is enqueued, skipped or expanded next).
    deciding: bool = False
    # A matrix combination held back by its matrix's max-parallel (this many
    # run at once); it starts when one of them ends.
    max_parallel: Optional[int] = None
    # Its run is held: paused by an operator, waiting for its paused
    # workflow, or waiting for a place in its concurrency group.
    run_held: Optional[Literal["paused", "workflow_paused", "concurrency_group"]] = None
    # Its own concurrency group has no place for it yet.
    concurrency_group: Optional[str] = None
    # Labels of it that are paused: no worker takes it until they resume.
    paused_labels: Optional[list[str]] = None


class RunJobOut(JobOut, kw_only=True):
    run_id: str
    blocked_by: Optional[BlockedBy] = None


class EventOut(Struct, kw_only=True):
    id: str
    run_id: str
    job_id: str
    type: str
    status: str
    attempt: int
    at_ms: int
    detail: str = ""
    # structured content of an in-job report (usage, tool_call, stream)
    data: Any = None
    # debug | info | warn | error: a log entry's own level; a failure's
    # error; a retry, a skip, a cancel or a hand-back warn; the rest info
    level: str = "info"
    message: str = ""  # the event in a sentence


class DeadLetter(Struct, kw_only=True):
    run_id: str
    job_id: str
    workflow_id: str
    failed_at_ms: int
    attempt: int
    error: str
    required_labels: list[str]


class DeadLetterPage(Struct, kw_only=True):
    items: list[DeadLetter]
    next_cursor: Optional[str] = None


class WorkerOut(Struct, kw_only=True):
    worker_id: str
    labels: list[str]
    registered_at_ms: int
    last_seen_ms: int
    # idle/busy: seen lately; offline: unseen past its grace, holding nothing;
    # lost: unseen past its grace, holding leases that will expire;
    # stopped: deregistered (a clean stop) or removed by an admin, listed a
    # while longer (until seen again, if it is still running).
    status: Literal["idle", "busy", "offline", "lost", "stopped"]
    current_jobs: list[str]
    # seed 002 names, kept so its dashboard and clients still read them
    last_heartbeat_ms: int = 0
    current_job: Optional[str] = None
    exclusive: bool = False
    concurrency: Optional[int] = None
    free_slots: Optional[int] = None
    version: Optional[str] = None
    host: Optional[str] = None
    # Its labels that are paused: it takes no job needing one of them.
    paused_labels: list[str] = []


class Resolved(Struct, kw_only=True):
    """`GET /api/resolve/{ref}`: what a name given to the CLI stands for."""

    kind: Literal["run", "workflow"]
    workflow_id: str
    # the run named, or the workflow's latest run (None: it never ran)
    run_id: Optional[str] = None
    # how it matched: a run id, a workflow id, or a one-off workflow's name
    matched: Literal["run_id", "workflow_id", "name"]


class WorkersPruned(Struct, kw_only=True):
    """`DELETE /api/workers`: the workers removed; `more`: call again, more may match."""

    removed: list[str]
    more: bool = False


class JobEvent(Struct, kw_only=True):
    """One entry of a workflow's event stream (job state changes)."""

    workflow_id: str
    job_id: str
    status: str
    attempt: int
    at_ms: int
    detail: str = ""
    # structured content of an in-job report (usage, tool_call, stream)
    data: Any = None


class EventEntry(Struct):
    id: str
    event: JobEvent


class QueuedRef(Struct, kw_only=True):
    run_id: str
    job_id: str
    enqueued_at_ms: int


class QueueOut(Struct, kw_only=True):
    """One ready queue: the jobs needing exactly this label set."""

    labels: list[str]
    ready: int
    # The longest-waiting of the jobs at the head of each priority (a job
    # handed back goes to the front and counts from then).
    oldest: Optional[QueuedRef] = None
    # Live (idle or busy) workers that offer every label: their ids (up to
    # 20), how many, and their free slots (of those that say their concurrency).
    workers: list[str] = []
    live_workers: int = 0
    free_slots: int = 0
    # A label of it is paused (those listed): no worker takes from it until they resume.
    paused: bool = False
    paused_labels: list[str] = []


class QueuesPage(Struct, kw_only=True):
    queues: list[QueueOut]  # the fullest first
    now_ms: int  # the server's clock, to age `oldest` by
    # More label sets have ready jobs than one listing shows (1,000).
    truncated: bool = False


class ScheduleOut(Struct, kw_only=True):
    """One entry of a stored workflow's `on: schedule:` and where it stands."""

    id: str  # <workflow id>:<index in on.schedule>
    workflow_id: str
    workflow_name: Optional[str] = None  # as its definition says now
    index: int
    cron: str
    timezone: str
    catch_up: Literal["none", "latest", "all"]
    overlap: Literal["allow", "skip"]
    paused: bool
    paused_at: Optional[int] = None
    # The next tick after now (epoch ms); null while paused
    next_fire_at: Optional[int] = None
    last_fired_at: Optional[int] = None  # the tick of the latest run it started
    last_run_id: Optional[str] = None
    runs_started: int = 0
    ticks_skipped: int = 0  # overlap: skip, while its previous run went on
    created_at: int
