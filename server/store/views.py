"""Turning what the scripts keep into what the API answers."""

from __future__ import annotations

from typing import Optional

import msgspec

from ..models import AttemptOut, JobOut, JobSpec, RunOut
from .base import ms

_outputs_decoder = msgspec.json.Decoder(dict[str, str])
_attempt_decoder = msgspec.json.Decoder(AttemptOut)
_strings_decoder = msgspec.json.Decoder(dict[str, str])

# Internal job states, and the wire status each one shows as.
WIRE_STATUS = {
    "created": "queued", "waiting": "queued", "ready": "queued", "delayed": "queued",
    "running": "running", "success": "success", "failure": "failure",
    "skipped": "skipped", "cancelled": "cancelled",
}
INTERNAL_FOR = {
    wire: [st for st, w in WIRE_STATUS.items() if w == wire] for wire in set(WIRE_STATUS.values())
}
# Spelled the same internally and on the wire.
TERMINAL = {"success", "failure", "skipped", "cancelled"}


def outputs(raw: Optional[str]) -> dict[str, str]:
    return _outputs_decoder.decode(raw) if raw else {}


def attempts(rows: dict) -> list[AttemptOut]:
    decoded = [_attempt_decoder.decode(raw) for raw in rows.values()]
    for a in decoded:  # 0 in the record means "not yet"
        a.started_at = a.started_at or None
        a.finished_at = a.finished_at or None
        a.error = a.error or None
    return sorted(decoded, key=lambda a: a.number)


def job_out(job_id: str, row: dict, spec: Optional[JobSpec], tries: Optional[list[AttemptOut]] = None) -> JobOut:
    st = row.get("st", "created")
    start, end = ms(row.get("start")), ms(row.get("end"))
    err = row.get("err") or None
    finished = st in TERMINAL
    duration = (end - start) // 1000 if start is not None and end is not None and finished else None
    return JobOut(
        id=job_id,
        name=spec.name if spec else job_id,
        status=WIRE_STATUS[st],  # type: ignore[arg-type]
        command=spec.command if spec else "",
        depends_on=spec.needs if spec else [],
        required_labels=spec.labels if spec else [],
        max_retries=spec.max_retries if spec else 0,
        attempt=int(row.get("att") or 0),
        started_at=float(start) if start is not None else None,
        duration_secs=duration,
        output=err if st == "failure" else None,
        outputs=outputs(row.get("out")),
        error=err,
        worker_id=row.get("worker") or None,
        finished_at=float(end) if end is not None and finished else None,
        retry_at=ms(row.get("dly")) if st == "delayed" else None,
        attempts=tries or [],
    )


def idle_job(spec: JobSpec) -> JobOut:
    """A job of a workflow that never ran: the seed shows it `queued`."""
    return job_out(spec.id, {}, spec)


def run_status(head: dict) -> str:
    state = head.get("state")
    if state == "active":
        return "running" if head.get("started") == "1" else "queued"
    if head.get("cancelled") == "1":
        return "cancelled"
    if int(head.get("n:failure") or 0) > 0:
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


def run_out(head: dict, jobs: Optional[list[JobOut]] = None) -> RunOut:
    return RunOut(
        run_id=head["id"],
        number=int(head.get("num") or 0),
        workflow_id=head["wf"],
        status=run_status(head),  # type: ignore[arg-type]
        triggered_by=head.get("by", ""),
        inputs=_strings_decoder.decode(head["inputs"]) if head.get("inputs") else {},
        tags=_strings_decoder.decode(head["tags"]) if head.get("tags") else {},
        created_at=int(head.get("created") or 0),
        started_at=ms(head.get("started_ms")),
        finished_at=ms(head.get("finished_ms")),
        version=head.get("ver", ""),
        job_counts=job_counts(head),
        jobs=jobs,
    )
