"""What `rota status` prints under the jobs table: what each job reported
through the in-job SDK (progress, steps, resources, annotations, a wait)
and the run's Markdown notes. The API has it all (`--json`); this is the
part a person reads, each line made safe for a terminal (terminal.safe):
the job wrote it."""

from __future__ import annotations

import datetime
from typing import Optional

from server.models import JobOut, NoteOut, Resources, StepOut
from worker.cli.output import one_line
from server.terminal import safe


def progress(job: JobOut) -> str:
    """`45% batch 3`, or `-`."""
    if job.progress is None:
        return "-"
    text = f"{job.progress:g}%"
    return f"{text} {one_line(job.current_step, 10_000)}" if job.current_step else text


def job_details(job: JobOut, full: bool, run_id: str = "RUN") -> list[str]:
    """Indented lines about one job; none when it reported nothing."""
    lines = []
    if job.waiting_for:
        until = f" until {_utc(job.waiting_until)}" if job.waiting_until else ""
        lines.append(f"waiting for event {job.waiting_for}{until}: release it with"
                     f" `rota approve {run_id} {job.id}` or POST /api/events/{job.waiting_for}")
    lines += [f"step {_step(step, full)}" for step in job.steps]
    if job.resources is not None:
        lines.append(f"resources: {_resources(job.resources)}")
    if job.annotations:
        lines.append("annotations: " + ", ".join(f"{k}={one_line(v, 10_000 if full else 60)}"
                                                  for k, v in sorted(job.annotations.items())))
    return [f"  {safe(line)}" for line in lines]


def notes(run_notes: list[NoteOut], full: bool) -> list[str]:
    """Each note: its style, context and job, and its text (cut to a line unless `full`)."""
    out = []
    for note in run_notes:
        out.append(f"[{note.style}] {note.context} (from {note.job_id})")
        text = note.markdown.rstrip()
        out += [f"  {line}" for line in safe(text).split("\n")] if full else [f"  {one_line(text)}"]
    return out


def _step(step: StepOut, full: bool) -> str:
    parts = [step.name or step.id, step.status]
    if step.duration_ms is not None:
        parts.append(f"{step.duration_ms / 1000:.1f}s")
    if step.exit_code is not None:
        parts.append(f"exit {step.exit_code}")
    if step.progress_percent is not None and step.status == "running":
        parts.append(f"{step.progress_percent:g}%")
    text = " ".join(parts)
    if step.error_message:
        text += ": " + one_line(step.error_message, 10_000 if full else 80)
    return text


def _resources(res: Resources) -> str:
    parts = []
    if res.cpu_percent is not None:
        peak = f" (peak {res.peak_cpu_percent:.0f}%)" if res.peak_cpu_percent is not None else ""
        parts.append(f"cpu {res.cpu_percent:.0f}%{peak}")
    if res.memory_bytes is not None:
        peak = f" (peak {_bytes(res.peak_memory_bytes)})" if res.peak_memory_bytes is not None else ""
        parts.append(f"rss {_bytes(res.memory_bytes)}{peak}")
    return ", ".join(parts) or "-"


def _bytes(n: Optional[int]) -> str:
    value = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _utc(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
