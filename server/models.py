"""The wire types: every JSON body the API reads or writes is one of these.

The server, the worker daemon and the CLI all import from here, so a field
changes in one place. Field names follow the workflow-graph protocol (seed
002) so a worker written against that document works unchanged; the
extensions (`name`, `env`, `steps`, `timeout_secs`, `wait_secs`, ...) are
all optional on input.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

import msgspec
from msgspec import Meta, Struct

from . import limits

# Ids end up inside Redis key names and URLs; keeping them to a plain
# alphabet means no escaping anywhere and no ':' to confuse key parsing.
# `\Z`, not `$`: `$` also matches before a trailing newline ("abc\n").
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z"
Id = Annotated[str, Meta(pattern=ID_PATTERN)]
# Label sets are stored comma-joined as the ready-queue key: no ',' allowed.
LABEL_PATTERN = r"^[A-Za-z0-9_.:/=+-]{1,64}\Z"
Label = Annotated[str, Meta(pattern=LABEL_PATTERN)]
WorkerId = Annotated[str, Meta(pattern=r"^[^\s]{1,200}\Z")]
Retries = Annotated[int, Meta(ge=0, le=100)]
Seconds = Annotated[int, Meta(ge=0, le=86_400 * 7)]
Priority = Annotated[int, Meta(ge=-100, le=100)]

JobStatus = Literal["queued", "running", "success", "failure", "skipped", "cancelled"]
WorkflowStatus = Literal["queued", "running", "success", "failure", "cancelled"]
JOB_STATUSES: tuple[str, ...] = JobStatus.__args__  # type: ignore[attr-defined]


# ---- retry policy ---------------------------------------------------------


class FixedParams(Struct, forbid_unknown_fields=True):
    delay_secs: Seconds


class ExponentialParams(Struct, forbid_unknown_fields=True):
    base_secs: Seconds
    max_secs: Seconds


class BackoffObject(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """`{"Fixed": {...}}` or `{"Exponential": {...}}`: serde's external tagging."""

    Fixed: Optional[FixedParams] = None
    Exponential: Optional[ExponentialParams] = None

    def __post_init__(self) -> None:
        if (self.Fixed is None) == (self.Exponential is None):
            raise ValueError("backoff must name exactly one of Fixed or Exponential")


Backoff = Union[Literal["None"], BackoffObject]


class RetryPolicy(Struct):
    max_retries: Retries = 0
    backoff: Backoff = "None"


def backoff_fields(backoff: Backoff) -> tuple[str, int, int]:
    """(kind, a, b) as the Lua scripts read them from the job hash."""
    if isinstance(backoff, BackoffObject):
        if backoff.Fixed is not None:
            return "fixed", backoff.Fixed.delay_secs, 0
        if backoff.Exponential is not None:
            return "exp", backoff.Exponential.base_secs, backoff.Exponential.max_secs
    return "none", 0, 0


# ---- normalized workflow definition (what server/definitions produces) -----


Name = Annotated[str, Meta(max_length=limits.MAX_NAME_CHARS)]
Script = Annotated[str, Meta(max_length=limits.MAX_SCRIPT_CHARS)]
EnvName = Annotated[str, Meta(max_length=limits.MAX_ENV_NAME_CHARS)]
EnvText = Annotated[str, Meta(max_length=limits.MAX_ENV_VALUE_CHARS)]


class Step(Struct, forbid_unknown_fields=True):
    name: Name
    run: Script


class JobSpec(Struct, kw_only=True):
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


class WorkflowSpec(Struct, kw_only=True):
    name: Name
    trigger: Annotated[str, Meta(max_length=limits.MAX_TRIGGER_CHARS)] = ""
    jobs: Annotated[list[JobSpec], Meta(min_length=1, max_length=limits.MAX_JOBS)]


# ---- submitted documents (their schema; server/definitions reads them) ------
# What POST /api/workflows accepts, as /openapi.json describes it. The
# definitions package validates far more (ids, graph, limits) and names
# every problem; these types only give the document's shape.

EnvValue = Union[str, int, float, bool, None]
Names = Union[str, list[str]]


class StepDocument(Struct):
    run: str
    name: Optional[str] = None


class JobDocument(Struct, rename={"runs_on": "runs-on", "timeout_minutes": "timeout-minutes"}):
    """A job of the YAML document shape (`jobs` is a mapping of id to job)."""

    run: Optional[str] = None
    steps: Optional[list[StepDocument]] = None
    name: Optional[str] = None
    needs: Optional[Names] = None
    labels: Optional[Names] = None
    runs_on: Optional[Names] = None
    retries: Optional[int] = None
    max_retries: Optional[int] = None
    backoff: Optional[Union[str, dict[str, dict[str, int]]]] = None
    env: Optional[dict[str, EnvValue]] = None
    timeout_minutes: Optional[float] = None
    timeout_secs: Optional[int] = None
    priority: Optional[int] = None


class SeedJobDocument(Struct):
    """A job of seed 002's shape (`jobs` is a list); its state fields are ignored."""

    id: str
    command: Optional[str] = None
    steps: Optional[list[StepDocument]] = None
    name: Optional[str] = None
    depends_on: Optional[list[str]] = None
    required_labels: Optional[list[str]] = None
    max_retries: Optional[int] = None
    backoff: Optional[Union[str, dict[str, dict[str, int]]]] = None
    env: Optional[dict[str, EnvValue]] = None
    timeout_secs: Optional[int] = None
    priority: Optional[int] = None


class WorkflowDocument(Struct):
    jobs: Union[list[SeedJobDocument], dict[str, JobDocument]]
    name: Optional[str] = None
    on: Optional[Union[str, list[str], dict[str, Any]]] = None
    trigger: Optional[str] = None


# ---- worker protocol --------------------------------------------------------


# What a worker offers: bounded like a job's labels, since each distinct set
# is indexed for claims.
WorkerLabels = Annotated[list[Label], Meta(max_length=limits.MAX_LABELS)]


class RegisterRequest(Struct, kw_only=True):
    worker_id: WorkerId
    labels: WorkerLabels = []
    # Extensions, all optional (the seed worker sends none): shown in the
    # worker list, and `claim_wait_secs`/`lease_ttl_secs` set how long the
    # worker may go unseen before it shows offline (or lost, holding leases).
    exclusive: bool = False
    concurrency: Optional[Annotated[int, Meta(ge=1, le=10_000)]] = None
    version: Optional[Annotated[str, Meta(max_length=64)]] = None
    host: Optional[Annotated[str, Meta(max_length=255)]] = None
    claim_wait_secs: Optional[Annotated[float, Meta(ge=0, le=3600)]] = None
    lease_ttl_secs: Optional[Annotated[int, Meta(ge=1, le=86_400)]] = None


class Registered(Struct):
    worker_id: str
    labels: list[str]
    registered_at_ms: int


class ClaimRequest(Struct):
    worker_id: WorkerId
    labels: WorkerLabels = []
    lease_ttl_secs: Annotated[int, Meta(ge=1, le=86_400)] = 30
    # Long-poll extension; values above the server's cap are clamped, not refused.
    wait_secs: Annotated[float, Meta(ge=0)] = 0.0
    # The client's id for this claim: sent again after a lost reply, it gets
    # the job and lease the first one was given (while the lease lives).
    # (No ':' in it: the server keys it as `<worker id>:<claim id>`.)
    claim_id: Optional[Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,100}\Z")]] = None
    # Take only jobs that ask for at least one of `labels` (no unlabelled
    # jobs): for the deploy box that must not run just anything.
    exclusive: bool = False


class QueuedJob(Struct, kw_only=True):
    job_id: str
    workflow_id: str
    command: str
    required_labels: list[str]
    retry_policy: RetryPolicy
    attempt: int
    upstream_outputs: dict[str, dict[str, str]]
    enqueued_at_ms: int
    delayed_until_ms: int = 0
    name: str = ""
    env: dict[str, str] = {}
    steps: list[Step] = []
    timeout_secs: Optional[int] = None


class Lease(Struct, kw_only=True):
    lease_id: str
    job_id: str
    workflow_id: str
    worker_id: str
    ttl_secs: int
    granted_at_ms: int
    # A secret good only for this lease's own calls (heartbeat, complete,
    # fail, logs) while the lease lives; the worker hands it to the job as
    # ROTA_RUN_TOKEN instead of its own token.
    run_token: Optional[str] = None


class ClaimResponse(Struct):
    job: QueuedJob
    lease: Lease


class HeartbeatRequest(Struct):
    # Long-poll extension: renew now, then answer early the moment the job is
    # cancelled, or after this long (capped below the lease's TTL). Absent or
    # 0 (the seed worker sends no body): answer at once.
    wait_secs: Annotated[float, Meta(ge=0)] = 0.0


class HeartbeatResponse(Struct):
    cancelled: bool
    lease_id: str
    expires_at_ms: int


class ResultAccepted(Struct, kw_only=True):
    ok: bool = True
    lease_id: str
    # What became of the job: success, retrying (re-enqueued, maybe after a
    # backoff) or failure (for good).
    outcome: Literal["success", "retrying", "failure"]
    # True when this repeats a result already taken (its reply was lost):
    # nothing changed now, and `outcome` is what the first one did.
    replayed: bool = False


class CompleteRequest(Struct):
    outputs: dict[str, str] = {}


class FailRequest(Struct):
    error: str = ""
    retryable: bool = False


class LogChunk(Struct, kw_only=True):
    workflow_id: str
    job_id: str
    # Lua numbers are doubles: above 2^53 two sequences could compare equal.
    sequence: Annotated[int, Meta(ge=0, le=2**53)]
    data: str
    timestamp_ms: Annotated[int, Meta(ge=0, le=2**53)]
    stream: Literal["stdout", "stderr"] = "stdout"


class LogsRequest(Struct):
    chunks: list[LogChunk]


class LogsAccepted(Struct):
    accepted: int
    duplicates: int


# ---- read models ------------------------------------------------------------


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


class WorkflowOut(Struct, kw_only=True):
    id: str
    name: str
    trigger: str
    status: WorkflowStatus
    jobs: list[JobOut]
    created_at_ms: int
    runs: int = 0
    started_at_ms: Optional[int] = None
    finished_at_ms: Optional[int] = None


class WorkerOut(Struct, kw_only=True):
    worker_id: str
    labels: list[str]
    registered_at_ms: int
    last_seen_ms: int
    # idle/busy: seen lately; offline: unseen past its grace, holding nothing;
    # lost: unseen past its grace, holding leases that will expire;
    # stopped: deregistered (a clean stop), listed a while longer.
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


class JobEvent(Struct, kw_only=True):
    """One entry of a workflow's event stream (job state changes)."""

    workflow_id: str
    job_id: str
    status: str
    attempt: int
    at_ms: int
    detail: str = ""


class EventEntry(Struct):
    id: str
    event: JobEvent


# ---- API tokens -------------------------------------------------------------

Scope = Literal["read", "submit", "worker", "admin"]
SCOPES: tuple[str, ...] = Scope.__args__  # type: ignore[attr-defined]


class TokenCreate(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    scopes: Annotated[list[Scope], Meta(min_length=1, max_length=len(SCOPES))]
    # Unset: the token never expires. At most ten years.
    expires_in_secs: Optional[Annotated[int, Meta(ge=1, le=10 * 365 * 86_400)]] = None


class TokenOut(Struct, kw_only=True):
    id: str
    name: str
    scopes: list[Scope]
    created_at_ms: int
    last_used_at_ms: Optional[int] = None
    expires_at_ms: Optional[int] = None


class TokenCreated(TokenOut, kw_only=True):
    # The secret, shown this once: the server keeps only its hash.
    token: str


class ErrorDetail(Struct):
    code: str
    message: str
    details: Any = None


class ErrorBody(Struct):
    error: ErrorDetail


encoder = msgspec.json.Encoder()
