"""Turning what the scripts keep into what the API answers."""

from __future__ import annotations

from typing import Any, Optional

import msgspec

from ..groups import group_name
from ..models import (
    AttemptOut,
    DecidedJob,
    JobOut,
    JobSpec,
    NoteOut,
    Resources,
    ResourceSample,
    RunFailure,
    RunOut,
    RunOverrides,
    StepOut,
)
from .base import ms

_outputs_decoder = msgspec.json.Decoder(dict[str, str])
_attempt_decoder = msgspec.json.Decoder(AttemptOut)
_strings_decoder = msgspec.json.Decoder(dict[str, str])
_inputs_decoder = msgspec.json.Decoder(dict[str, Any])
_overrides_decoder = msgspec.json.Decoder(RunOverrides)
_sample_decoder = msgspec.json.Decoder(ResourceSample)
_note_decoder = msgspec.json.Decoder(NoteOut)
_json = msgspec.json.decode

# Internal job states, and the wire status each one shows as.
WIRE_STATUS = {
    "created": "queued", "waiting": "queued", "deciding": "queued", "ready": "queued", "delayed": "queued",
    "held": "queued", "running": "running", "expanded": "running", "eventwait": "waiting", "success": "success",
    "failure": "failure", "skipped": "skipped", "cancelled": "cancelled",
}
INTERNAL_FOR = {
    wire: [st for st, w in WIRE_STATUS.items() if w == wire] for wire in set(WIRE_STATUS.values())
}
# Spelled the same internally and on the wire.
TERMINAL = {"success", "failure", "skipped", "cancelled"}


def outputs(raw: Optional[str]) -> dict[str, str]:
    return _outputs_decoder.decode(raw) if raw else {}


def attempts(rows: dict, job: dict) -> list[AttemptOut]:
    """The job's attempts: their records (att:), and the one running now,
    which has none until it ends (the claim writes only the job's record,
    which says who runs it and since when)."""
    decoded = [_attempt_decoder.decode(raw) for raw in rows.values()]
    for a in decoded:  # 0 in the record means "not yet"
        a.started_at = a.started_at or None
        a.finished_at = a.finished_at or None
        a.error = a.error or None
    if job.get("st") == "running" and job.get("lease"):
        number = int(job.get("att") or 0)
        if all(a.number != number for a in decoded):  # (a version before kept one from the claim)
            decoded.append(AttemptOut(number=number, worker_id=job.get("worker") or "", status="running",
                                      started_at=int(job["start"]) if job.get("start") else None))
    return sorted(decoded, key=lambda a: a.number)


def job_group(head: dict, job: str) -> Optional[str]:
    """The job's concurrency group's name, as its run rendered it."""
    return group_name(head.get(f"jg:{job}"))


def job_out(
    job_id: str, row: dict, spec: Optional[JobSpec], tries: Optional[list[AttemptOut]] = None,
    reports: Optional[tuple[dict, dict]] = None, decided: Optional[DecidedJob] = None,
    group: Optional[str] = None,
) -> JobOut:
    """`reports`: the job's steps and annotations hashes, when it has any;
    `decided`: its fields as its decision rendered them (a matrix
    combination's spec is its matrix job's); `group`: its concurrency
    group's name."""
    st = row.get("st", "created")
    start, end = ms(row.get("start")), ms(row.get("end"))
    err = row.get("err") or None
    finished = st in TERMINAL
    duration = (end - start) // 1000 if start is not None and end is not None and finished else None
    waiting = st == "eventwait"
    step_rows, annotations = reports or ({}, {})
    return JobOut(
        id=job_id,
        name=decided.name if decided else spec.name if spec else job_id,
        status=WIRE_STATUS[st],  # type: ignore[arg-type]
        command=spec.command if spec else "",
        depends_on=spec.needs if spec else [],
        required_labels=decided.labels if decided else spec.labels if spec else [],
        max_retries=spec.max_retries if spec else 0,
        attempt=int(row.get("att") or 0),
        started_at=float(start) if start is not None else None,
        duration_secs=duration,
        output=err if st == "failure" else None,
        outputs=outputs(row.get("out")),
        error=err,
        progress=float(row["prog"]) if row.get("prog") else None,
        worker_id=row.get("worker") or None,
        finished_at=float(end) if end is not None and finished else None,
        retry_at=ms(row.get("dly")) if st == "delayed" else None,
        attempts=tries or [],
        current_step=row.get("sname") or None,
        current_step_index=int(row["sidx"]) if row.get("sidx") else None,
        progress_metadata=_json(row["pmeta"]) if row.get("pmeta") else None,
        steps=steps(step_rows),
        annotations=annotations,
        resources=resources(row),
        waiting_for=row.get("evkey") or None if waiting else None,
        waiting_until=ms(row.get("evuntil")) if waiting else None,
        result_data=_json(row["rdata"]) if row.get("rdata") else None,
        error_type=row.get("etype") or None,
        error_stack=row.get("estack") or None,
        heartbeat_at=ms(row.get("beat")),
        matrix=decided.matrix if decided else None,
        matrix_of=row.get("agg") or None,
        combinations=row["combos"].split(",") if row.get("combos") else [],
        continue_on_error=row.get("coe") == "1" or "c" in row.get("fl", ""),
        waiting_for_group=group if st == "held" and row.get("cg") == "p" else None,
    )


_decided_decoder = msgspec.json.Decoder(DecidedJob)


def decided_fields(rows: dict[str, str]) -> dict[str, DecidedJob]:
    """A run's `jdec:` hash, decoded."""
    return {job: _decided_decoder.decode(raw) for job, raw in rows.items()}


def has_reports(row: dict) -> bool:
    """Whether the job reported steps or annotations (kept apart from its record)."""
    return "hsteps" in row or "hann" in row


# A step's fields that hold JSON as the job sent it.
_STEP_JSON = {"result_data", "artifacts", "metadata"}
_STEP_INT = {"started_at", "finished_at", "exit_code"}


def steps(rows: dict) -> list[StepOut]:
    """The steps of the latest attempt that reported any, from fields
    `<attempt>:<step id>:<prop>`; in index order, else as they started."""
    by_attempt: dict[int, dict[str, dict]] = {}
    for field, value in rows.items():
        att, rest = field.split(":", 1)
        sid, prop = rest.rsplit(":", 1)
        decoded = _json(value) if prop in _STEP_JSON else int(value) if prop in _STEP_INT else value
        by_attempt.setdefault(int(att), {}).setdefault(sid, {"id": sid})[prop] = decoded
    if not by_attempt:
        return []
    latest = by_attempt[max(by_attempt)]
    out = []
    for fields in latest.values():
        if "progress_percent" in fields:
            fields["progress_percent"] = float(fields["progress_percent"])
        step = StepOut(**fields)
        if step.started_at is not None and step.finished_at is not None:
            step.duration_ms = step.finished_at - step.started_at
        out.append(step)
    return sorted(out, key=lambda s: (not s.id.isdigit(), int(s.id) if s.id.isdigit() else 0, s.started_at or 0))


def resources(row: dict) -> Optional[Resources]:
    if not row.get("res"):
        return None
    sample = _sample_decoder.decode(row["res"])
    return Resources(
        cpu_percent=sample.cpu_percent, memory_bytes=sample.memory_bytes,
        peak_cpu_percent=float(row["pcpu"]) if row.get("pcpu") else None,
        peak_memory_bytes=int(row["pmem"]) if row.get("pmem") else None,
        at_ms=ms(row.get("resat")), extra=sample.extra,
    )


class _Place(msgspec.Struct):
    seq: int = 0  # 0: written before notes kept their place
    at_ms: int = 0


_place_decoder = msgspec.json.Decoder(_Place)


def notes(rows: dict) -> list[NoteOut]:
    """In the order their contexts were first written."""
    placed = sorted(rows.values(), key=lambda raw: (lambda p: (p.seq, p.at_ms))(_place_decoder.decode(raw)))
    return [_note_decoder.decode(raw) for raw in placed]


def idle_job(spec: JobSpec) -> JobOut:
    """A job of a workflow that never ran: the seed shows it `queued`."""
    return job_out(spec.id, {}, spec)


def run_status(head: dict) -> str:
    state = head.get("state")
    if state == "delayed":
        return "delayed"
    if state == "active":
        return "running" if head.get("started") == "1" else "queued"
    if head.get("expired") == "1":
        return "expired"
    if head.get("cancelled") == "1":
        return "cancelled"
    # a continue-on-error job's failure (cofail counts them) fails no run
    if int(head.get("n:failure") or 0) - int(head.get("cofail") or 0) > 0:
        return "failure"
    if int(head.get("n:cancelled") or 0) > 0:
        return "cancelled"
    return "success"


def job_counts(head: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for field, value in head.items():
        if field.startswith("n:") and int(value or 0) > 0:
            wire = WIRE_STATUS.get(field[2:])
            if wire:
                counts[wire] = counts.get(wire, 0) + int(value)
    return counts


def run_failure(head: dict) -> Optional[RunFailure]:
    if not head.get("fjob"):
        return None
    return RunFailure(job_id=head["fjob"], kind=head.get("fkind") or "failure",  # type: ignore[arg-type]
                      error=head.get("ferr") or "")


def run_out(head: dict, jobs: Optional[list[JobOut]] = None, run_notes: Optional[list[NoteOut]] = None,
            metadata: Optional[dict[str, str]] = None) -> RunOut:
    return RunOut(
        run_id=head["id"],
        number=int(head.get("num") or 0),
        workflow_id=head["wf"],
        status=run_status(head),  # type: ignore[arg-type]
        triggered_by=head.get("by", ""),
        inputs=_inputs_decoder.decode(head["inputs"]) if head.get("inputs") else {},
        tags=_strings_decoder.decode(head["tags"]) if head.get("tags") else {},
        created_at=int(head.get("created") or 0),
        started_at=ms(head.get("started_ms")),
        finished_at=ms(head.get("finished_ms")),
        version=head.get("ver", ""),
        name=head.get("name") or head.get("wf", ""),
        job_counts=job_counts(head),
        jobs=jobs,
        parent_run_id=head.get("parent") or None,
        depth=int(head.get("depth") or 0),
        notes=run_notes or [],
        scheduled_at=ms(head.get("sat")),
        expires_at=ms(head.get("exp")),
        schedule_id=head.get("sched") or None,
        restarted_from=head.get("rfrom") or None,
        overrides=_overrides_decoder.decode(head["ovr"]) if head.get("ovr") else None,
        idempotency_key=head.get("idemk") or None,
        continuation_of=head.get("cont") or None,
        lineage_depth=int(head.get("ldepth") or 0),
        batch_id=head.get("batch") or None,
        debug_mode=head.get("debug") == "1",
        failure=run_failure(head),
        dead_letters=int(head.get("ndead") or 0),
        metadata=metadata or {},
        concurrency_group=group_name(head.get("cg")),
        waiting_for_group=group_name(head.get("cg")) if head.get("wait") == "group" else None,
        waiting_for_workflow=head.get("wait") == "workflow",
        paused=head.get("paused") == "1",
        paused_at=ms(head.get("paused_ms")) if head.get("paused") == "1" else None,
    )
