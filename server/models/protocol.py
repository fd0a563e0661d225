"""The worker protocol: register, claim, heartbeat, complete, fail, logs."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from msgspec import UNSET, Meta, Struct, UnsetType, field

from .. import limits

from .core import ErrorDetail, Label, RetryPolicy, WorkerId
from .specs import Flag, RunDefaults


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


LeaseTtl = Annotated[int, Meta(ge=1, le=86_400)]
# The client's id for a claim: sent again after a lost reply, it gets the
# job and lease the first one was given (while the lease lives). (No ':' or
# '#' in it: the server keys it as `<worker id>:<claim id>`, and the n-th
# job of a batch as `<claim id>#<n>`.)
ClaimId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,100}\Z")]


class ClaimRequest(Struct):
    worker_id: WorkerId
    labels: WorkerLabels = []
    lease_ttl_secs: LeaseTtl = 30
    # Long-poll extension; values above the server's cap are clamped, not refused.
    wait_secs: Annotated[float, Meta(ge=0)] = 0.0
    claim_id: Optional[ClaimId] = None
    # Take only jobs that ask for at least one of `labels` (no unlabelled
    # jobs): for the deploy box that must not run just anything.
    exclusive: bool = False


class ClaimStep(Struct):
    """A step as every worker reads it; what else the step says is in the
    job's `step_options`, so a worker that knows only these two still
    decodes a claim."""

    name: str
    run: str


class StepOptions(Struct, kw_only=True, omit_defaults=True):
    """What a step says besides name and run, for the worker to evaluate:
    `if`, `env`, `working-directory`, `timeout-minutes` and
    `continue-on-error` may hold `${{ }}` over the job's `contexts`, the
    `env` context (the job's env, then the step's) and `steps` (the earlier
    steps' outputs, outcome and conclusion)."""

    id: Optional[str] = None
    if_: Optional[str] = field(default=None, name="if")  # expression text; no `${{ }}` around it
    env: dict[str, str] = {}
    shell: Optional[str] = None
    working_directory: Optional[str] = field(default=None, name="working-directory")
    timeout_minutes: Union[float, str, None] = field(default=None, name="timeout-minutes")
    continue_on_error: Flag = field(default=False, name="continue-on-error")


class NeedContext(Struct):
    # success, failure, cancelled or skipped; a continue-on-error job's
    # failure is `success` here, as GitHub reports it
    result: str
    outputs: dict[str, str] = {}


class RunContext(Struct, kw_only=True):
    id: str
    number: int
    workflow: str  # the workflow's id
    triggered_by: str
    tags: dict[str, str] = {}
    attempt: int = 1  # 1, and one more each time the run is retried


class StrategyContext(Struct, kw_only=True, rename="kebab"):
    fail_fast: bool = True
    job_index: int = 0
    job_total: int = 1
    max_parallel: int = 1


class JobContexts(Struct, kw_only=True):
    """The values a job's expressions read, as they stand when it is claimed."""

    needs: dict[str, NeedContext] = {}
    inputs: dict[str, Any] = {}  # the run's inputs, typed as its workflow declares them
    matrix: Optional[dict[str, Any]] = None  # a matrix combination's values; null outside a matrix
    strategy: StrategyContext = field(default_factory=StrategyContext)
    env: dict[str, str] = {}  # the job's env as the job gets it (the workflow's, then the job's)
    run: Optional[RunContext] = None


class QueuedJob(Struct, kw_only=True):
    job_id: str
    workflow_id: str
    # Extensions: the run this job belongs to, and the run's inputs (the
    # worker gives them to the job as ROTA_INPUT_<NAME>).
    run_id: Optional[str] = None
    inputs: dict[str, str] = {}
    # The latest checkpoint saved by an earlier attempt of this job, and the
    # payload of the event it waited for: what a resumed job starts from.
    checkpoint: Any = None
    event: Any = None
    command: str
    required_labels: list[str]
    retry_policy: RetryPolicy
    attempt: int
    upstream_outputs: dict[str, dict[str, str]]
    enqueued_at_ms: int
    delayed_until_ms: int = 0
    name: str = ""
    env: dict[str, str] = {}
    steps: list[ClaimStep] = []
    timeout_secs: Optional[int] = None
    # The workflow language (docs/http-api.md, "The claim"). `env` above is
    # final when env_resolved is true; otherwise the worker resolves its
    # `${{ needs.<job>.outputs.<key> }}` from upstream_outputs.
    env_resolved: bool = False
    contexts: Optional[JobContexts] = None
    step_options: list[StepOptions] = []  # one per step, in order; empty when no step has any
    outputs: dict[str, str] = {}  # declared outputs: name -> template over the job's contexts and steps
    defaults: Optional[RunDefaults] = None
    continue_on_error: bool = False


class Lease(Struct, kw_only=True):
    lease_id: str
    job_id: str
    workflow_id: str
    run_id: Optional[str] = None
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


Outcome = Literal["success", "retrying", "failure"]


class ResultAccepted(Struct, kw_only=True):
    ok: bool = True
    lease_id: str
    # What became of the job: success, retrying (re-enqueued, maybe after a
    # backoff) or failure (for good).
    outcome: Outcome
    # True when this repeats a result already taken (its reply was lost):
    # nothing changed now, and `outcome` is what the first one did.
    replayed: bool = False
    # The jobs leased by the request's `next` claim (rota's batch protocol),
    # possibly none; absent when the request had no `next`.
    next: Union[list[ClaimResponse], UnsetType] = UNSET


class HandBackRequest(Struct, kw_only=True):
    # Why the worker hands the job back (e.g. "worker shut down"); shown in
    # the job's events and its attempt.
    reason: Annotated[str, Meta(max_length=limits.MAX_HANDBACK_REASON_CHARS)] = ""


class HandedBack(Struct, kw_only=True):
    ok: bool = True
    lease_id: str
    # handed_back: queued again at the head of its queue, no attempt spent;
    # retrying / failure: the job was handed back more than MAX_HANDBACKS
    # times, so this one counted as a failed attempt.
    outcome: Literal["handed_back", "retrying", "failure"]
    # True when this repeats a hand-back already taken (its reply was lost).
    replayed: bool = False


class NextClaim(Struct, kw_only=True):
    """A claim sent with results (rota's batch protocol): the worker's next
    job(s), leased in the same script that took its results, so a busy
    worker spends one request per job. Answered at once: no long-poll."""

    worker_id: WorkerId
    labels: WorkerLabels = []
    lease_ttl_secs: LeaseTtl = 30
    claim_id: Optional[ClaimId] = None
    exclusive: bool = False
    # Up to this many jobs, each with its own lease.
    max_jobs: Annotated[int, Meta(ge=1, le=limits.MAX_CLAIM_JOBS)] = 1


class BatchClaimRequest(NextClaim, kw_only=True):
    # Long-poll: with no job to lease at once, wait this long for one
    # (clamped to MAX_WAIT_SECS), then answer with what is there.
    wait_secs: Annotated[float, Meta(ge=0)] = 0.0


class Claims(Struct):
    # Up to max_jobs, best first; empty when there was none.
    claims: list[ClaimResponse]


class CompleteRequest(Struct, kw_only=True, omit_defaults=True):
    outputs: dict[str, str] = {}
    result_data: Any = None  # Restep's
    result: Any = None  # Strait's


class FailRequest(Struct, kw_only=True, omit_defaults=True):
    error: str = ""
    # Seed 002 (and rota's own paths) default to false; Restep's and Strait's
    # retry while the job's budget lasts, as their documents say.
    retryable: Optional[bool] = None
    error_message: Optional[str] = None  # Restep's
    error_type: Optional[str] = None
    error_stack: Optional[str] = None


# rota's own paths (not the seeds' executor paths): a result may carry the
# worker's next claim, leased in the same call (the batch protocol).
class CompleteNextRequest(CompleteRequest, kw_only=True, omit_defaults=True):
    next: Optional[NextClaim] = None


class FailNextRequest(FailRequest, kw_only=True, omit_defaults=True):
    next: Optional[NextClaim] = None


LeaseId = Annotated[str, Meta(min_length=1, max_length=limits.MAX_LEASE_ID_CHARS)]


class ResultItem(Struct, kw_only=True, omit_defaults=True):
    """One lease's result in a batch: `complete` with outputs, or `fail`
    with an error, as the single calls take them."""

    lease_id: LeaseId
    kind: Literal["complete", "fail"]
    outputs: dict[str, str] = {}
    result_data: Any = None
    error: str = ""
    retryable: bool = False
    error_type: Optional[str] = None
    error_stack: Optional[str] = None


class ResultsRequest(Struct, kw_only=True):
    results: Annotated[list[ResultItem], Meta(max_length=limits.MAX_RESULTS_PER_REQUEST)] = []
    next: Optional[NextClaim] = None


class ResultOut(Struct, kw_only=True, omit_defaults=True):
    """What became of one result: `outcome` (and `replayed`) when it was
    taken, else `error`, as the single call would have answered it."""

    lease_id: str
    outcome: Optional[Outcome] = None
    replayed: bool = False
    error: Optional[ErrorDetail] = None


class ResultsAccepted(Struct):
    results: list[ResultOut]
    # The jobs the `next` claim leased (empty without one, or with none to lease).
    next: list[ClaimResponse]


class HeartbeatsRequest(Struct, kw_only=True):
    lease_ids: Annotated[list[LeaseId], Meta(max_length=limits.MAX_HEARTBEAT_LEASES)]
    # Long-poll: renew now, then answer the moment one of the jobs is
    # cancelled (or its lease ends), or after this long (capped below the
    # shortest lease's TTL left).
    wait_secs: Annotated[float, Meta(ge=0)] = 0.0


class LeaseBeat(Struct, kw_only=True, omit_defaults=True):
    lease_id: str
    # live: renewed; cancelled: renewed, but the job was cancelled (stop it,
    # then report); lost: expired, superseded or unknown (stop the job, report
    # nothing); waiting: the job gave up its lease to wait for an event (stop
    # it, report nothing); forbidden: another token's lease.
    status: Literal["live", "cancelled", "lost", "waiting", "forbidden"]
    expires_at_ms: Optional[int] = None


class Heartbeats(Struct):
    leases: list[LeaseBeat]


class LogChunk(Struct, kw_only=True):
    workflow_id: str
    job_id: str
    # Lua numbers are doubles: above 2^53 two sequences could compare equal.
    sequence: Annotated[int, Meta(ge=0, le=2**53)]
    data: str
    timestamp_ms: Annotated[int, Meta(ge=0, le=2**53)]
    stream: Literal["stdout", "stderr"] = "stdout"
    # Whatever a worker sends here is ignored: the lease says which attempt.
    attempt: Optional[int] = None


class JobLogChunk(Struct, kw_only=True, omit_defaults=True):
    """A chunk as the log endpoints answer it: a worker's output, or (stream
    `event`) an entry the job logged through the in-job SDK, with its level,
    structured data and step. Absent fields are left out, so an output chunk
    reads as seed 002's chunk plus its attempt."""

    workflow_id: str
    job_id: str
    sequence: int
    data: str
    timestamp_ms: int
    stream: Literal["stdout", "stderr", "event"]
    attempt: Optional[int] = None  # from 0; always set in an answer
    level: Optional[str] = None
    log_data: Any = None
    step: Optional[str] = None


class LogsRequest(Struct):
    chunks: Annotated[list[LogChunk], Meta(max_length=limits.MAX_LOG_CHUNKS_PER_REQUEST)]


class LogsAccepted(Struct, omit_defaults=True):
    accepted: int
    duplicates: int
    # New chunks past the attempt's LOG_MAX_BYTES, by the request that filled
    # it (its later requests are 413); left out when none.
    dropped: int = 0
