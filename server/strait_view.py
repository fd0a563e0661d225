"""A rota run as Strait's run-management API shows one (seed 003): its
fields and its status, derived from what rota records of the run (its
head) and of its jobs (their records), without a change to either.

A Strait run is a rota run: its id is the run id, its `job_id` the
workflow id, its payload the run's inputs. docs/strait-restep.md has the
whole mapping; every field rota cannot fill is null.
"""

from __future__ import annotations

import datetime
from typing import Any, Optional

import msgspec

from .groups import group_name

# Strait's statuses, as its list filter takes them.
STATUSES = ("delayed", "queued", "dequeued", "executing", "waiting", "completed", "failed", "timed_out",
            "crashed", "system_failed", "canceled", "expired", "dead_letter")
# What a failed run's first failure (RunFailure.kind, the head's fkind) shows as.
_FAILED_AS = {"timed_out": "timed_out", "lost": "crashed", "system": "system_failed"}
# Strait's statuses a replay (a new run) starts from, as Strait allows.
REPLAYABLE = frozenset({"failed", "timed_out", "crashed", "system_failed"})
# The error of a run that ended without a job failing.
_WHY = {"canceled": "canceled", "expired": "the run expired before it started"}
PROJECT_ID = "default"  # rota has one project: see the docs' Strait section
_json = msgspec.json.decode


def iso(ms_value: Any) -> Optional[str]:
    """Epoch milliseconds (as Redis keeps them: text) as RFC 3339 UTC."""
    if ms_value in (None, "", "0", 0):
        return None
    when = datetime.datetime.fromtimestamp(int(ms_value) / 1000, datetime.timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _int(value: Any) -> int:
    return int(value) if value not in (None, "") else 0


def status(head: dict, rows: dict[str, dict]) -> str:
    """Strait's status of a run. A run scheduled ahead and not yet due:
    `delayed`; one whose expires_at passed before it started: `expired`.
    A run going: `executing` while a job runs
    and has been heard from (a heartbeat) since its lease was granted,
    `dequeued` while its only running jobs have not yet been; else `queued`
    with a job ready for a worker, `waiting` with one waiting for an event or
    an approval, `delayed` with one waiting out a retry's backoff, `queued`
    otherwise. A run finished: `completed`, `canceled`, or by how its first
    job to fail for good failed: `timed_out`, `crashed` (its lease was lost),
    `system_failed` (the server failed it: a wait timed out), else
    `dead_letter` while any job of it is still a dead letter, `failed` once
    none is."""
    if head.get("state") == "delayed":
        return "delayed"
    if head.get("state") == "active":
        running = [r for r in rows.values() if r.get("st") == "running"]
        if running:
            heard = any(_int(r.get("beat")) >= _int(r.get("start")) > 0 for r in running)
            return "executing" if heard else "dequeued"
        counts = {st: _int(head.get(f"n:{st}")) for st in ("ready", "eventwait", "delayed")}
        if counts["ready"]:
            return "queued"
        if counts["eventwait"]:
            return "waiting"
        if counts["delayed"]:
            return "delayed"
        return "queued"
    if head.get("expired") == "1":
        return "expired"
    if head.get("cancelled") == "1":
        return "canceled"
    # a continue-on-error job's failure (cofail counts them) fails no run
    if _int(head.get("n:failure")) - _int(head.get("cofail")) > 0:
        kind = head.get("fkind") or "failure"
        if kind in _FAILED_AS:
            return _FAILED_AS[kind]
        return "dead_letter" if _int(head.get("ndead")) > 0 else "failed"
    if _int(head.get("n:cancelled")) > 0:
        return "canceled"
    return "completed"


def _result(rows: dict[str, dict]) -> Any:
    """A run's result: its one job's `result_data` (complete's `result`),
    else its outputs; of several jobs, those of each job that has any."""
    def one(row: dict) -> Any:
        if row.get("rdata"):
            return _json(row["rdata"])
        return _json(row["out"]) if row.get("out") else None

    if len(rows) == 1:
        return one(next(iter(rows.values())))
    each = {job: one(row) for job, row in rows.items() if row.get("st") == "success"}
    return {job: value for job, value in each.items() if value is not None} or None


def _backoff(wire: Any) -> tuple[Optional[str], Optional[int], Optional[int]]:
    """An overridden backoff (its wire form) as Strait's retry_backoff,
    retry_initial_delay_secs and retry_max_delay_secs."""
    if wire is None:
        return None, None, None
    if isinstance(wire, dict) and "Fixed" in wire:
        delay = wire["Fixed"]["delay_secs"]
        return "fixed", delay, delay
    if isinstance(wire, dict) and "Exponential" in wire:
        return "exponential", wire["Exponential"]["base_secs"], wire["Exponential"]["max_secs"]
    return "none", None, None


def run(head: dict, rows: dict[str, dict], meta: dict[str, str]) -> dict:
    """The Strait run object of seed 003 for a rota run. Its overrides are
    the run's per-run overrides (none: null, each job then has its own)."""
    created, started, finished = _int(head.get("created")), _int(head.get("started_ms")), \
        _int(head.get("finished_ms"))
    beats = [_int(r.get("beat")) for r in rows.values() if r.get("beat")]
    retries = [_int(r.get("dly")) for r in rows.values() if r.get("st") == "delayed" and r.get("dly")]
    trace = None
    if started:
        trace = {"queue_wait_ms": started - created, "dequeue_ms": None, "connect_ms": None, "ttfb_ms": None,
                 "transfer_ms": None, "total_ms": finished - created if finished else None, "dispatch_ms": None}
    st = status(head, rows)
    over = _json(head["ovr"]) if head.get("ovr") else {}
    backoff, initial, most = _backoff(over.get("backoff"))
    return {
        "id": head["id"],
        "job_id": head["wf"],
        "project_id": PROJECT_ID,
        "status": st,
        # Strait counts attempts from 1; rota's jobs from 0: the run's most-tried job
        "attempt": max((_int(r.get("att")) for r in rows.values()), default=0) + 1,
        "payload": _json(head["inputs"]) if head.get("inputs") else {},
        "result": _result(rows) if head.get("state") == "done" else None,
        "metadata": meta,
        "error": head.get("ferr") or _WHY.get(st),
        "triggered_by": head.get("by", ""),
        "scheduled_at": iso(head.get("sat")),
        "started_at": iso(started),
        "finished_at": iso(finished),
        "heartbeat_at": iso(max(beats)) if beats else None,
        "next_retry_at": iso(min(retries)) if retries else None,
        "expires_at": iso(head.get("exp")),
        "parent_run_id": head.get("parent") or None,
        "priority": over.get("priority"),
        "idempotency_key": head.get("idemk") or None,
        "job_version": None,
        "workflow_step_run_id": None,
        "max_attempts_override": over.get("max_attempts"),
        "timeout_secs_override": over.get("timeout_secs"),
        "retry_backoff": backoff,
        "retry_initial_delay_secs": initial,
        "retry_max_delay_secs": most,
        "execution_trace": trace,
        "debug_mode": head.get("debug") == "1",
        "continuation_of": head.get("cont") or None,
        "lineage_depth": _int(head.get("ldepth")),
        "tags": _json(head["tags"]) if head.get("tags") else {},
        "job_version_id": head.get("ver") or None,
        "created_by": None,
        "batch_id": head.get("batch") or None,
        "concurrency_key": group_name(head.get("cg")),
        "created_at": iso(created),
    }


# ---- a run's records, as Strait lists them ---------------------------------------


def _level(event: dict) -> str:
    return event.get("level") or "info"


def event(e: dict) -> dict:
    """A rota run event (EventOut, as a dict) as Strait's run event."""
    return {"id": e["id"], "run_id": e["run_id"], "type": e["type"], "level": _level(e), "message": e["message"],
            "data": e.get("data") if e.get("data") is not None else {
                "job_id": e["job_id"], "status": e["status"], "attempt": e["attempt"], "detail": e["detail"]},
            "created_at": iso(e["at_ms"])}


def checkpoint(c: dict, run_id: str) -> dict:
    return {"id": f"{run_id}:{c.get('sequence') or 0}", "run_id": run_id, "sequence": c.get("sequence") or 0,
            "source": c.get("source") or "checkpoint", "state": c["data"], "created_at": iso(c["saved_at_ms"])}


def usage(e: dict) -> dict:
    d = e.get("data") or {}
    prompt, completion = d.get("prompt_tokens"), d.get("completion_tokens")
    total = d.get("total_tokens")
    if total is None and isinstance(prompt, int) and isinstance(completion, int):
        total = prompt + completion
    return {"id": e["id"], "run_id": e["run_id"], "provider": d.get("provider"), "model": d.get("model"),
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
            "cost_microusd": d.get("cost_microusd"), "created_at": iso(e["at_ms"])}


def tool_call(e: dict) -> dict:
    d = e.get("data") or {}
    return {"id": e["id"], "run_id": e["run_id"], "tool_name": d.get("tool_name"), "input": d.get("input"),
            "output": d.get("output"), "duration_ms": d.get("duration_ms"), "status": d.get("status"),
            "created_at": iso(e["at_ms"])}


def output(o: dict, run_id: str) -> dict:
    return {"id": f"{run_id}:{o['output_key']}", "run_id": run_id, "output_key": o["output_key"],
            "schema": o.get("schema"), "value": o.get("value"), "created_at": iso(o["created_at_ms"])}
