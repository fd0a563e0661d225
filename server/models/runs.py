"""What the run-management API reads: starting runs, filters, bulk calls,
dead-letter replays."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from msgspec import Meta, Struct

from .. import limits

from .core import Id, Label, RunStatus, given

# Inputs become environment variables (ROTA_INPUT_<NAME>): names that are
# valid there. Tags are free-form labels for finding runs.
InputName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")]
InputValue = Annotated[str, Meta(max_length=65_536)]
TagKey = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:/-]{1,64}\Z")]
TagValue = Annotated[str, Meta(max_length=256)]
Trigger = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{0,31}\Z")]
RunId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}\Z")]
# Epoch milliseconds, up to limits.MAX_EPOCH_MS (the end of the year 9999).
EpochMs = Annotated[int, Meta(ge=0, le=limits.MAX_EPOCH_MS)]
# A tag filter in a query: key:value (the key ends at the first ':').
TagFilter = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_./-]{1,64}:(?:[^\n]|\n){0,256}\Z")]
MAX_TAGS = 20
# A search of runs (?q=): text in ids and names, any case.
SearchText = Annotated[str, Meta(min_length=1, max_length=200)]


class RunCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    inputs: Annotated[dict[InputName, InputValue], Meta(max_length=100)] = {}
    tags: Annotated[dict[TagKey, TagValue], Meta(max_length=MAX_TAGS)] = {}
    # Who started it, as runs are filtered by: api (default), cli, ...
    triggered_by: Trigger = "api"


class RunFilter(Struct, forbid_unknown_fields=True, kw_only=True):
    """The filters of GET /api/runs, for the bulk calls."""

    workflow_id: Optional[Id] = None
    status: Optional[RunStatus] = None
    triggered_by: Optional[Trigger] = None
    tags: Annotated[dict[TagKey, TagValue], Meta(max_length=MAX_TAGS)] = {}  # all must match
    created_after: Optional[EpochMs] = None
    created_before: Optional[EpochMs] = None
    # A job of the run's definition needs this label.
    label: Optional[Label] = None
    # Text in the run id, the workflow's id or name, or a job's id or name
    # (any case).
    q: Optional[SearchText] = None


MAX_BULK = 1000


class BulkRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """Either run ids or a filter (at most 1,000 runs a call)."""

    run_ids: Optional[Annotated[list[RunId], Meta(min_length=1, max_length=MAX_BULK)]] = None
    filter: Optional[RunFilter] = None

    __post_init__ = given("run_ids", "filter")


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


ErrorText = Annotated[str, Meta(max_length=200)]


class DeadLetterFilter(Struct, forbid_unknown_fields=True, kw_only=True):
    workflow_id: Optional[Id] = None
    label: Optional[Label] = None
    error: Optional[ErrorText] = None  # substring


class ReplayRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    items: Optional[Annotated[list[DeadLetterRef], Meta(min_length=1, max_length=MAX_BULK)]] = None
    filter: Optional[DeadLetterFilter] = None

    __post_init__ = given("items", "filter")


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
