"""Per-run overrides (`overrides` when a run starts or restarts): applied to
each job's spec, they make a version of the definition of the run's own
(`<version>+<digest>`), so the claim, the retry rules and every view read
the overridden values as they read any definition's."""

from __future__ import annotations

import hashlib
from typing import Optional

import msgspec

from .definitions import fields
from .definitions.problems import Problems
from .errors import Unprocessable
from .limits import MAX_LABELS
from .models import Backoff, JobSpec, RunOverrides

_encode = msgspec.json.encode


def checked(overrides: Optional[RunOverrides]) -> Optional[RunOverrides]:
    """The overrides with `backoff` in its wire form, or None for none; 422
    for a backoff that is not one."""
    if overrides is None or not msgspec.structs.asdict(overrides) or overrides == RunOverrides():
        return None
    if overrides.backoff is None:
        return overrides
    problems = Problems()
    wire = fields.JOB_CONVERTERS["backoff"][1](overrides.backoff, ("overrides", "backoff"), problems)
    if problems or wire is None:
        raise Unprocessable("invalid_body", "overrides.backoff must be none, {fixed: {delay_secs: N}} or"
                            " {exponential: {base_secs: N, max_secs: M}}, seconds 0 to 604800",
                            {"field": "overrides.backoff"})
    return msgspec.structs.replace(overrides, backoff=wire)


def merged(old: Optional[RunOverrides], new: Optional[RunOverrides]) -> Optional[RunOverrides]:
    """A restart's overrides: the restarted run's, with the new ones over them."""
    if old is None:
        return new
    if new is None:
        return old
    given = {k: v for k, v in msgspec.structs.asdict(new).items() if v is not None}
    return msgspec.structs.replace(old, **given)


def apply(spec: JobSpec, o: RunOverrides) -> JobSpec:
    """The job as the run runs it; a gate (it never reaches a worker) as it is."""
    if spec.wait_event:
        return spec
    changes: dict = {}
    if o.max_attempts is not None:
        changes["max_retries"] = o.max_attempts - 1
    if o.timeout_secs is not None:
        changes["timeout_secs"] = o.timeout_secs
    if o.backoff is not None:
        changes["backoff"] = msgspec.convert(o.backoff, Backoff)
    if o.priority is not None:
        changes["priority"] = o.priority
    labels = set(o.labels if o.labels is not None else spec.labels) | set(o.add_labels or ())
    if len(labels) > MAX_LABELS:
        raise Unprocessable("invalid_body", f"job {spec.id!r} would need more than {MAX_LABELS} labels",
                            {"field": "overrides.add_labels"})
    if sorted(labels) != spec.labels:
        changes["labels"] = sorted(labels)
    return msgspec.structs.replace(spec, **changes) if changes else spec


def version(base: str, o: RunOverrides) -> str:
    """The overridden version's id: the same overrides of the same version
    share one."""
    return f"{base}+{hashlib.sha1(_encode(o)).hexdigest()[:8]}"
