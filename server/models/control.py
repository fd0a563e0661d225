"""Run control: pausing and resuming runs, workflows and labels, and the
concurrency groups runs and jobs wait in."""

from __future__ import annotations

from typing import Literal, Optional

from msgspec import Struct

from .views import RunOut

NewRuns = Literal["queue", "skip"]


class WorkflowPause(Struct, forbid_unknown_fields=True, kw_only=True):
    """What becomes of the workflow's new runs (a schedule's ticks included)
    while it is paused: they wait for it to resume (`queue`), or are refused
    (`skip`)."""

    new_runs: NewRuns = "queue"


class RunPaused(Struct, kw_only=True):
    """A pause or resume of a run; `changed` false: it was already so (or
    finished), as `detail` says."""

    changed: bool
    detail: str
    run: RunOut


class WorkflowPaused(Struct, kw_only=True):
    workflow_id: str
    paused: bool
    new_runs: Optional[NewRuns] = None
    changed: bool
    detail: str
    runs_released: int = 0  # resumed: the runs that waited for it, now started


class LabelPaused(Struct, kw_only=True):
    label: str
    paused: bool
    changed: bool
    detail: str
    queued: int = 0  # jobs queued behind it (held back, or let go)


class PausedWorkflow(Struct, kw_only=True):
    workflow_id: str
    new_runs: NewRuns
    paused_at_ms: int
    waiting_runs: int  # runs that wait for it to resume


class PausedLabel(Struct, kw_only=True):
    label: str
    paused_at_ms: int
    queued: int  # jobs needing it, queued


class Paused(Struct, kw_only=True):
    workflows: list[PausedWorkflow]
    labels: list[PausedLabel]


class ControlEvent(Struct, kw_only=True):
    """A pause or resume, for the record: of a run, a workflow or a label."""

    id: str
    kind: Literal["run", "workflow", "label"]
    target: str
    action: Literal["paused", "resumed"]
    by: str = ""  # the token id that asked ('' with auth off)
    at_ms: int
    detail: str = ""


class GroupMember(Struct, kw_only=True):
    run_id: str
    job_id: Optional[str] = None  # a job-level group's member
    workflow_id: Optional[str] = None
    since_ms: Optional[int] = None  # holding: when it got its place


class GroupOut(Struct, kw_only=True):
    """A concurrency group in use: who holds its places, who waits (in order)."""

    group: str
    limit: int  # as its first member asked (each member brings its own)
    per_secs: Optional[int] = None  # a rate: `limit` let in within any window this long
    running: list[GroupMember]
    waiting: list[GroupMember]


class GroupPage(Struct, kw_only=True):
    groups: list[GroupOut]
    next_cursor: Optional[str] = None
