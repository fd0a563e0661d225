"""Strait's run-management API (seed 003) as rota answers it at /v1/runs:
its bodies and its answers, field for field (server/strait_view.py fills
them from a rota run; docs/strait-restep.md maps each field)."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal, Optional

from msgspec import Meta, Struct

from .core import Id, Label, given
from .runs import RunId, Trigger

StraitStatus = Literal["delayed", "queued", "dequeued", "executing", "waiting", "completed", "failed", "timed_out",
                       "crashed", "system_failed", "canceled", "expired", "dead_letter"]


class ExecutionTrace(Struct, kw_only=True):
    queue_wait_ms: Optional[int] = None
    dequeue_ms: Optional[int] = None
    connect_ms: Optional[int] = None
    ttfb_ms: Optional[int] = None
    transfer_ms: Optional[int] = None
    total_ms: Optional[int] = None
    dispatch_ms: Optional[int] = None


class StraitRun(Struct, kw_only=True):
    id: str
    job_id: str
    project_id: str
    status: StraitStatus
    attempt: int
    payload: Any = None
    result: Any = None
    metadata: dict[str, str] = {}
    error: Optional[str] = None
    triggered_by: str
    scheduled_at: Optional[str] = None
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    heartbeat_at: Optional[str] = None
    next_retry_at: Optional[str] = None
    expires_at: Optional[str] = None
    parent_run_id: Optional[str] = None
    priority: Optional[int] = None
    idempotency_key: Optional[str] = None
    job_version: Optional[int] = None
    workflow_step_run_id: Optional[str] = None
    max_attempts_override: Optional[int] = None
    timeout_secs_override: Optional[int] = None
    retry_backoff: Optional[str] = None
    retry_initial_delay_secs: Optional[int] = None
    retry_max_delay_secs: Optional[int] = None
    execution_trace: Optional[ExecutionTrace] = None
    debug_mode: bool = False
    continuation_of: Optional[str] = None
    lineage_depth: int = 0
    tags: dict[str, str] = {}
    job_version_id: Optional[str] = None
    created_by: Optional[str] = None
    batch_id: Optional[str] = None
    concurrency_key: Optional[str] = None
    created_at: Optional[str] = None


class StraitEvent(Struct, kw_only=True):
    id: str
    run_id: str
    type: str
    level: str
    message: str
    data: Any = None
    created_at: Optional[str] = None


class StraitCheckpoint(Struct, kw_only=True):
    id: str
    run_id: str
    sequence: int
    source: str
    state: Any = None
    created_at: Optional[str] = None


class StraitUsage(Struct, kw_only=True):
    id: str
    run_id: str
    provider: Any = None
    model: Any = None
    prompt_tokens: Any = None
    completion_tokens: Any = None
    total_tokens: Any = None
    cost_microusd: Any = None
    created_at: Optional[str] = None


class StraitToolCall(Struct, kw_only=True):
    id: str
    run_id: str
    tool_name: Any = None
    input: Any = None
    output: Any = None
    duration_ms: Any = None
    status: Any = None
    created_at: Optional[str] = None


class StraitOutput(Struct, kw_only=True):
    id: str
    run_id: str
    output_key: str
    schema: Any = None
    value: Any = None
    created_at: Optional[str] = None


class DebugBundle(Struct, kw_only=True):
    run: StraitRun
    events: list[StraitEvent]
    checkpoints: list[StraitCheckpoint]
    usage: list[StraitUsage]
    tool_calls: list[StraitToolCall]
    outputs: list[StraitOutput]


class Dependency(Struct, kw_only=True):
    id: str
    job_id: str
    depends_on_job_id: str
    condition: str
    created_at: Optional[str] = None


class DependencyStatus(Struct, kw_only=True):
    run_id: str
    job_id: str
    status: StraitStatus
    dependencies: list[Dependency] = []
    dependencies_satisfied: bool = True


# ---- bodies ------------------------------------------------------------------------

MAX_STRAIT_BULK = 1000
MAX_STRAIT_REPLAY = 100  # Strait's own bound on bulk-replay


class RunIds(Struct, forbid_unknown_fields=True, kw_only=True):
    run_ids: Annotated[list[RunId], Meta(min_length=1, max_length=MAX_STRAIT_BULK)]


class ReplayIds(Struct, forbid_unknown_fields=True, kw_only=True):
    run_ids: Annotated[list[RunId], Meta(min_length=1, max_length=MAX_STRAIT_REPLAY)]


class CancelAllFilter(Struct, forbid_unknown_fields=True, kw_only=True):
    """At least one of these: runs of that workflow, of that bulk call,
    started that way, in that (Strait) status."""

    job_id: Optional[Id] = None  # a workflow id
    batch_id: Optional[RunId] = None
    triggered_by: Optional[Trigger] = None
    status: Optional[StraitStatus] = None

    __post_init__ = given("job_id", "batch_id", "triggered_by", "status", exactly_one=False)


class DlqReplay(Struct, forbid_unknown_fields=True, kw_only=True):
    """Either `run_ids`, or `project_id` and at most `limit` (default 100)."""

    run_ids: Optional[Annotated[list[RunId], Meta(min_length=1, max_length=500)]] = None
    project_id: Optional[Annotated[str, Meta(max_length=128)]] = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 100

    __post_init__ = given("run_ids", "project_id")


class StraitReschedule(Struct, forbid_unknown_fields=True, kw_only=True):
    """A delayed run's new start, as an RFC 3339 date-time (the native
    reschedule's `scheduled_at`; a time past, as any before 1970, now)."""

    scheduled_at: Annotated[datetime.datetime, Meta(tz=True)]


class StraitRestart(Struct, forbid_unknown_fields=True, kw_only=True):
    """A restart's machine preset: the label the new run's jobs need
    instead of their own (the native restart's `overrides.labels`)."""

    machine_preset: Optional[Label] = None


class DebugSet(Struct, forbid_unknown_fields=True, kw_only=True):
    debug_mode: bool = False


# ---- answers ------------------------------------------------------------------------


class CancelResult(Struct, kw_only=True):
    id: str
    status: str
    error: Optional[str] = None


class BulkCancelled(Struct, kw_only=True):
    results: list[CancelResult]
    total: int
    canceled: int
    failed: int
    # (rota's) a filter matched more than one call cancels: call again
    more: bool = False


class DlqReplayed(Struct, kw_only=True):
    replayed: list[StraitRun]
    count: int


class StatusOk(Struct, kw_only=True):
    status: str


class KeyReset(Struct, kw_only=True):
    status: str
    run_id: str
