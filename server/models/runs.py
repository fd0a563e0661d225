"""What the run-management API reads: starting runs, filters, bulk calls,
dead-letter replays."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from msgspec import Meta, Struct

from .core import Id, Label, RunStatus

# Inputs become environment variables (ROTA_INPUT_<NAME>): names that are
# valid there. Tags are free-form labels for finding runs.
InputName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")]
InputValue = Annotated[str, Meta(max_length=65_536)]
TagKey = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:/-]{1,64}\Z")]
TagValue = Annotated[str, Meta(max_length=256)]
Trigger = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{0,31}\Z")]
RunId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}\Z")]


class RunCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    inputs: Annotated[dict[InputName, InputValue], Meta(max_length=100)] = {}
    tags: Annotated[dict[TagKey, TagValue], Meta(max_length=20)] = {}
    # Who started it, as runs are filtered by: api (default), cli, ...
    triggered_by: Trigger = "api"


class RunFilter(Struct, forbid_unknown_fields=True, kw_only=True):
    """The filters of GET /api/runs, for the bulk calls."""

    workflow_id: Optional[Id] = None
    status: Optional[RunStatus] = None
    triggered_by: Optional[Trigger] = None
    tags: Annotated[dict[TagKey, TagValue], Meta(max_length=20)] = {}  # all must match
    created_after: Optional[int] = None  # epoch ms
    created_before: Optional[int] = None
    # A job of the run's definition needs this label.
    label: Optional[Label] = None
    # Text in the run id, the workflow's id or name, or a job's id or name
    # (any case).
    q: Optional[Annotated[str, Meta(min_length=1, max_length=200)]] = None


MAX_BULK = 1000


class BulkRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """Either run ids or a filter (at most 1,000 runs a call)."""

    run_ids: Optional[Annotated[list[RunId], Meta(min_length=1, max_length=MAX_BULK)]] = None
    filter: Optional[RunFilter] = None


class BulkOutcome(Struct, kw_only=True):
    run_id: str
    outcome: Literal["cancelled", "retried", "noop", "active", "not_found"]
    detail: str = ""


class BulkAnswer(Struct, kw_only=True):
    outcomes: list[BulkOutcome]
    # A filter matching more than one call's worth: call again for the rest.
    more: bool = False


class DeadLetterRef(Struct, forbid_unknown_fields=True):
    run_id: RunId
    job_id: Id


class DeadLetterFilter(Struct, forbid_unknown_fields=True, kw_only=True):
    workflow_id: Optional[Id] = None
    label: Optional[str] = None
    error: Optional[Annotated[str, Meta(max_length=200)]] = None  # substring


class ReplayRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    items: Optional[Annotated[list[DeadLetterRef], Meta(min_length=1, max_length=MAX_BULK)]] = None
    filter: Optional[DeadLetterFilter] = None


class ReplayOutcome(Struct, kw_only=True):
    run_id: str
    job_id: str
    outcome: Literal["retried", "active", "not_retryable", "blocked", "not_found"]
    detail: str = ""


class ReplayAnswer(Struct, kw_only=True):
    outcomes: list[ReplayOutcome]
    more: bool = False


class RetryAnswer(Struct, kw_only=True):
    run_id: str
    retried: int  # jobs put back
