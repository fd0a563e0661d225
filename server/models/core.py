"""Ids, labels, statuses and retry policies: the vocabulary every wire type uses."""

from __future__ import annotations

from typing import Annotated, Any, Callable, Literal, Optional, Union

from msgspec import Meta, Struct


# Every pattern is `^...\Z` over explicit character classes: msgspec checks
# it with Python's re, where `$` also matches before a final "\n" and `\s`,
# `\d`, `\w` take in more of Unicode than ECMA-262's. /openapi.json shows
# each with `$`, which is the end of input there (openapi.portable), so a
# generated client or Ajv accepts exactly what the server does.

# What a declared pattern means, in words, for the people reading a
# refusal: msgspec names only the regex (and cuts a long one short).
PATTERN_WORDS: dict[str, str] = {}


def worded(pattern: str, words: str) -> str:
    """`pattern`, registered with what it means (http.py says that instead)."""
    PATTERN_WORDS[pattern] = words
    return pattern


# Ids end up inside Redis key names and URLs; keeping them to a plain
# alphabet means no escaping anywhere and no ':' to confuse key parsing.
ID_PATTERN = worded(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z",
                    "an id: letters, digits and _ . -, starting with a letter or digit, 1 to 128 characters")
Id = Annotated[str, Meta(pattern=ID_PATTERN)]
# Label sets are stored comma-joined as the ready-queue key: no ',' allowed.
LABEL_PATTERN = worded(r"^[A-Za-z0-9_.:/=+-]{1,64}\Z", "a label: letters, digits and _ . : / = + -, 1 to 64 characters")
Label = Annotated[str, Meta(pattern=LABEL_PATTERN)]
# Shown in lists and logs: no space of any kind (Python's and ECMA-262's
# whitespace both) and no control character.
WORKER_ID_PATTERN = worded(r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]{1,200}\Z",
                           "a worker id: 1 to 200 characters, no spaces or control characters")
WorkerId = Annotated[str, Meta(pattern=WORKER_ID_PATTERN)]
Retries = Annotated[int, Meta(ge=0, le=100)]
Seconds = Annotated[int, Meta(ge=0, le=86_400 * 7)]
Priority = Annotated[int, Meta(ge=-100, le=100)]

# `waiting`: for an event, or an approval (a gate); an extension of seed 002's.
JobStatus = Literal["queued", "running", "waiting", "success", "failure", "skipped", "cancelled"]
# `delayed`: scheduled ahead, not started yet; `expired`: its expires_at
# passed before any job of it was claimed.
RunStatus = Literal["delayed", "queued", "running", "success", "failure", "cancelled", "expired"]
# A workflow shows its latest run's status, or `idle` if it never ran.
WorkflowStatus = Literal["idle", "delayed", "queued", "running", "success", "failure", "cancelled", "expired"]
RUN_STATUSES: tuple[str, ...] = RunStatus.__args__  # type: ignore[attr-defined]
JOB_STATUSES: tuple[str, ...] = JobStatus.__args__  # type: ignore[attr-defined]


# ---- fields that go together ------------------------------------------------


def given(*names: str, exactly_one: bool = True, message: str = "") -> Callable[[Any], None]:
    """A Struct's `__post_init__`: exactly one (or, with exactly_one=False,
    at least one) of the optional fields `names` is given, not null. It
    carries the same rule as JSON Schema (`json_schema`), which
    /openapi.json adds to the Struct's schema: one declaration for both.
    A refusal starts "give `first name`" (http.py names that field)."""
    quoted = [f"`{name}`" for name in names]
    if not message:
        message = f"give {' or '.join(quoted)}" + (", not both nor neither" if exactly_one else "")

    def check(self: Any) -> None:
        count = sum(getattr(self, name) is not None for name in names)
        if count == 0 or (exactly_one and count > 1):
            raise ValueError(message)

    alternatives = [{"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in names]
    check.json_schema = {"oneOf" if exactly_one else "anyOf": alternatives}  # type: ignore[attr-defined]
    return check


def not_both(first: str, second: str) -> Callable[[Any], None]:
    """A Struct's `__post_init__`: at most one of two optional fields is
    given (either, or neither), with the same rule in JSON Schema, as
    `given` carries its own."""
    message = f"give `{first}` or `{second}`, not both"

    def check(self: Any) -> None:
        if getattr(self, first) is not None and getattr(self, second) is not None:
            raise ValueError(message)

    both = {"required": [first, second], "properties": {name: {"not": {"type": "null"}} for name in (first, second)}}
    check.json_schema = {"not": both}  # type: ignore[attr-defined]
    return check


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

    __post_init__ = given("Fixed", "Exponential")


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
