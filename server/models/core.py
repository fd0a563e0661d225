"""Ids, labels, statuses and retry policies: the vocabulary every wire type uses."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

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
Retries = Annotated[int, Meta(ge=0, le=100)]
Seconds = Annotated[int, Meta(ge=0, le=86_400 * 7)]
Priority = Annotated[int, Meta(ge=-100, le=100)]

# `waiting`: for an event, or an approval (a gate); an extension of seed 002's.
JobStatus = Literal["queued", "running", "waiting", "success", "failure", "skipped", "cancelled"]
RunStatus = Literal["queued", "running", "success", "failure", "cancelled"]
# A workflow shows its latest run's status, or `idle` if it never ran.
WorkflowStatus = Literal["idle", "queued", "running", "success", "failure", "cancelled"]
RUN_STATUSES: tuple[str, ...] = RunStatus.__args__  # type: ignore[attr-defined]
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


class ErrorDetail(Struct):
    code: str
    message: str
    details: Any = None


class ErrorBody(Struct):
    error: ErrorDetail
