"""Why a job ends other than by running to its end: the reasons it is
stopped (Runner.stop), and the failure of a job that could not start."""

from __future__ import annotations

from dataclasses import dataclass

# Why a job was stopped before it finished (Runner.stop reasons).
CANCELLED = "cancelled"
LEASE_LOST = "lease lost"
TIMEOUT = "timeout"
SHUTDOWN = "shutdown"
# The job asked to wait for an event: the server released its lease.
WAITING = "waiting for an event"

# Why a job still running at the drain deadline is handed back.
SHUTDOWN_REASON = "worker shut down before the job finished"


@dataclass
class SetupFailure:
    """The job could not be started: reported as its failure."""

    error: str
    retryable: bool
