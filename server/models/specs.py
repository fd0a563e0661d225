"""A workflow definition once read and checked (what server/definitions produces),
and the documents POST /api/workflows accepts, as /openapi.json describes them."""

from __future__ import annotations

from typing import Annotated, Any, Optional, Union

from msgspec import Meta, Struct

from .. import limits

from .core import Backoff, Id, Label, Priority, Retries
from .sdk import EventKey, GateSeconds


# ---- normalized workflow definition (what server/definitions produces) -----


Name = Annotated[str, Meta(max_length=limits.MAX_NAME_CHARS)]
Script = Annotated[str, Meta(max_length=limits.MAX_SCRIPT_CHARS)]
EnvName = Annotated[str, Meta(max_length=limits.MAX_ENV_NAME_CHARS)]
EnvText = Annotated[str, Meta(max_length=limits.MAX_ENV_VALUE_CHARS)]


class Step(Struct, forbid_unknown_fields=True):
    name: Name
    run: Script


class SpawnAllow(Struct, kw_only=True):
    """`spawn:` on a job: what the jobs and child runs it spawns may use
    beyond its own labels (nothing else: a job may spawn onto its own labels
    and no workflow)."""

    labels: Annotated[list[Label], Meta(max_length=limits.MAX_LABELS)] = []
    workflows: Annotated[list[Id], Meta(max_length=limits.MAX_SPAWN_WORKFLOWS)] = []


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
    # A gate: a job that is only a wait for this event (or an approval),
    # never sent to a worker; `command` is empty.
    wait_event: Optional[EventKey] = None
    wait_timeout_secs: Optional[GateSeconds] = None
    spawn: Optional[SpawnAllow] = None


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


class WaitDocument(Struct, rename={"timeout_minutes": "timeout-minutes"}):
    """An approval gate's wait: the event key and how long it waits."""

    event: str
    timeout_minutes: Optional[float] = None


class SpawnDocument(Struct):
    """A job's `spawn:` allow-list: labels and workflow ids, each one or a list."""

    labels: Optional[Names] = None
    workflows: Optional[Names] = None


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
    wait: Optional[WaitDocument] = None
    spawn: Optional[SpawnDocument] = None


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
    wait: Optional[WaitDocument] = None
    spawn: Optional[SpawnDocument] = None


class WorkflowDocument(Struct):
    jobs: Union[list[SeedJobDocument], dict[str, JobDocument]]
    name: Optional[str] = None
    on: Optional[Union[str, list[str], dict[str, Any]]] = None
    trigger: Optional[str] = None
