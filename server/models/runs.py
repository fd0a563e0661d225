"""What the run-management API reads: starting runs, filters, bulk calls,
dead-letter replays."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from msgspec import Meta, Struct

from .. import limits

from .core import Id, Label, Priority, RunStatus, given, not_both, worded
from .sdk import StateKey

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


# A time: epoch milliseconds, or RFC 3339 text ("2026-05-01T09:00:00Z").
INSTANT_TEXT = worded(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.][0-9]{1,9})?"
                      r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})\Z",
                      "epoch milliseconds or an RFC 3339 time with its offset, e.g. 2026-05-01T09:00:00Z")
Instant = Union[Annotated[int, Meta(ge=0, le=limits.MAX_EPOCH_MS)], Annotated[str, Meta(pattern=INSTANT_TEXT)]]
# A span: seconds, or text such as "90s", "30m", "2h", "1d".
SPAN_TEXT = worded(r"^[0-9]{1,15}(?:[.][0-9]{1,9})?(?:ms|s|m|h|d)?\Z",
                   "seconds or a span such as 90s, 30m, 2h or 1d")
Span = Union[Annotated[float, Meta(ge=0, le=limits.MAX_EPOCH_MS / 1000)], Annotated[str, Meta(pattern=SPAN_TEXT)]]
BackoffText = Union[str, dict[str, dict[str, int]]]


class RunOverrides(Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """What one run changes of its jobs' definitions (every job but gates):
    Strait's per-run `max_attempts_override`, `timeout_secs_override`,
    `retry_backoff`, `priority` and machine preset (`labels`)."""

    # attempts in all, the first included (a job's `retries` + 1)
    max_attempts: Optional[Annotated[int, Meta(ge=1, le=101)]] = None
    timeout_secs: Optional[Annotated[int, Meta(ge=1, le=7 * 86_400)]] = None
    # none, {fixed: {delay_secs}} or {exponential: {base_secs, max_secs}} (the wire forms too)
    backoff: Optional[BackoffText] = None
    priority: Optional[Priority] = None
    # replace each job's labels with these (a machine preset)...
    labels: Optional[Annotated[list[Label], Meta(max_length=limits.MAX_LABELS)]] = None
    # ...and/or add these to each job's
    add_labels: Optional[Annotated[list[Label], Meta(max_length=limits.MAX_LABELS)]] = None


# JSON values; a workflow with `workflow_dispatch: inputs:` checks them
# against their types. Bounded as server/limits.py says (MAX_INPUT_*).
Inputs = Annotated[dict[str, Any], Meta(max_length=limits.MAX_INPUTS)]


class RunCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    inputs: Inputs = {}
    tags: Annotated[dict[TagKey, TagValue], Meta(max_length=20)] = {}
    # Who started it, as runs are filtered by: api (default), cli, ...
    triggered_by: Trigger = "api"
    # Delayed: not before this time (or this long from now); not both.
    scheduled_at: Optional[Instant] = None
    delay: Optional[Span] = None
    # A run not started by then (no job claimed) ends `expired`; not both.
    expires_at: Optional[Instant] = None
    expires_in: Optional[Span] = None
    overrides: Optional[RunOverrides] = None
    # The run's concurrency group, by name (Strait's per-run key): in place
    # of the workflow-level group's name, with its settings (without one,
    # one at a time, in order).
    concurrency_key: Optional[Annotated[str, Meta(min_length=1, max_length=limits.MAX_GROUP_CHARS,
                                                  pattern=r"^[^\x00-\x1f\x7f]+\Z")]] = None


class Continuation(Struct, forbid_unknown_fields=True, kw_only=True):
    """The SDK's `continue`: the new run's inputs (JSON values, checked as a
    start's are), as rota's `inputs` or Strait's `payload`."""

    payload: Optional[Inputs] = None
    inputs: Optional[Inputs] = None

    __post_init__ = not_both("payload", "inputs")


class RestartRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """A new run of a run's definition version, with its inputs and tags:
    these overrides merge over the restarted run's own."""

    overrides: Optional[RunOverrides] = None
    tags: Optional[Annotated[dict[TagKey, TagValue], Meta(max_length=20)]] = None  # instead of the run's
    scheduled_at: Optional[Instant] = None
    delay: Optional[Span] = None
    expires_at: Optional[Instant] = None
    expires_in: Optional[Span] = None


class RescheduleRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """A delayed run's new start: one of the two (a time past or now starts it at once)."""

    scheduled_at: Optional[Instant] = None
    delay: Optional[Span] = None

    __post_init__ = given("scheduled_at", "delay")


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
    batch_id: Optional[RunId] = None  # runs one bulk call started
    # The run's metadata (its jobs' annotations): each key present, with
    # this value unless null. All must match.
    annotations: Annotated[dict[StateKey, Optional[Annotated[str, Meta(max_length=1024)]]], Meta(max_length=20)] = {}
    # ... and some key of it holds this value (Strait's metadata_value alone)
    annotation_value: Optional[Annotated[str, Meta(max_length=1024)]] = None
    # JSON containment of the run's inputs (PostgreSQL's @>, Strait's payload_contains)
    inputs_contain: Optional[dict[str, Any]] = None


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
