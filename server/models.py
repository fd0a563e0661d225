"""The wire types: every JSON body the API reads or writes is one of these.

The server, the worker daemon and the CLI all import from here, so a field
changes in one place. Field names follow the workflow-graph protocol (seed
002) so a worker written against that document works unchanged; the
extensions (`name`, `env`, `steps`, `timeout_secs`, `wait_secs`, ...) are
all optional on input.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

import msgspec
from msgspec import Meta, Struct

# Ids end up inside Redis key names and URLs; keeping them to a plain
# alphabet means no escaping anywhere and no ':' to confuse key parsing.
# `\Z`, not `$`: `$` also matches before a trailing newline ("abc\n").
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z"
Id = Annotated[str, Meta(pattern=ID_PATTERN)]
# Label sets are stored comma-joined as the ready-queue key: no ',' allowed.
LABEL_PATTERN = r"^[A-Za-z0-9_.:/=+-]{1,64}\Z"
Label = Annotated[str, Meta(pattern=LABEL_PATTERN)]
WorkerId = Annotated[str, Meta(pattern=r"^[^\s]{1,200}\Z")]
NonNeg = Annotated[int, Meta(ge=0)]
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


# ---- normalized workflow definition (what definitions.py produces) ---------


class Step(Struct, forbid_unknown_fields=True):
    name: str
    run: str


class JobSpec(Struct, kw_only=True):
    id: Id
    name: str
    command: str
    steps: list[Step] = []
    needs: list[Id] = []
    labels: list[Label] = []
    max_retries: Retries = 0
    backoff: Backoff = "None"
    env: dict[str, str] = {}
    timeout_secs: Optional[int] = None
    priority: Priority = 0


class WorkflowSpec(Struct, kw_only=True):
    name: str
    trigger: str = ""
    jobs: list[JobSpec]


# ---- worker protocol --------------------------------------------------------


class RegisterRequest(Struct):
    worker_id: WorkerId
    labels: list[Label] = []


class ClaimRequest(Struct):
    worker_id: WorkerId
    labels: list[Label] = []
    lease_ttl_secs: Annotated[int, Meta(ge=1, le=86_400)] = 30
    # Long-poll extension; values above the server's cap are clamped, not refused.
    wait_secs: Annotated[float, Meta(ge=0)] = 0.0


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


class ClaimResponse(Struct):
    job: QueuedJob
    lease: Lease


class HeartbeatResponse(Struct):
    cancelled: bool
    lease_id: str
    expires_at_ms: int


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
    timestamp_ms: NonNeg
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
    status: Literal["idle", "busy", "offline"]
    current_jobs: list[str]
    # seed 002 names, kept so its dashboard and clients still read them
    last_heartbeat_ms: int = 0
    current_job: Optional[str] = None


class JobEvent(Struct, kw_only=True):
    """One entry of a workflow's event stream (job state changes)."""

    workflow_id: str
    job_id: str
    status: str
    attempt: int
    at_ms: int
    detail: str = ""


class ErrorDetail(Struct):
    code: str
    message: str
    details: object = None


class ErrorBody(Struct):
    error: ErrorDetail


encoder = msgspec.json.Encoder()
