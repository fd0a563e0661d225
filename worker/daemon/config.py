"""What a worker daemon is told: its `WorkerConfig` (from `rota worker`'s
flags) and its `Timings` (fixed intervals; a test hands in shorter ones)."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Optional

from worker.daemon.run_as import RunAs

# While no job runs, one "idle" line at most this often.
IDLE_LOG_SECS = 300.0
# A job's first heartbeat waits this long (at most a third of the TTL): most
# jobs of a busy fleet end sooner and need none, which keeps a request and a
# parked long-poll per job off the server. A cancel in that time is seen
# when the first heartbeat goes out.
FIRST_HEARTBEAT_DELAY = 0.5
# How often a running job's CPU and memory are sampled and reported; jobs
# shorter than this send no sample.
RESOURCE_INTERVAL_SECS = 10.0
# At shutdown, how long past the drain timeout and cancel grace a result may
# take to reach the server. Past it the worker gives up: the lease expires and
# the server re-queues the job.
SHUTDOWN_REPORT_GRACE = 5.0


def default_worker_id() -> str:
    # The random part: a worker id belongs to the first token that uses it,
    # so a guessable default would let another fleet's token squat it.
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Timings:
    idle_log_secs: float = IDLE_LOG_SECS
    first_heartbeat_delay: float = FIRST_HEARTBEAT_DELAY
    resource_interval_secs: float = RESOURCE_INTERVAL_SECS
    shutdown_report_grace: float = SHUTDOWN_REPORT_GRACE


@dataclass
class WorkerConfig:
    server: str
    labels: list[str] = field(default_factory=list)
    concurrency: int = 1
    lease_ttl: int = 30
    worker_id: str = field(default_factory=default_worker_id)
    workdir: str = ".rota-work"
    cancel_grace: float = 10.0
    # Fits drain plus cancel grace inside the 30 s most supervisors (systemd
    # with a short TimeoutStopSec, Kubernetes' default grace) allow before SIGKILL.
    drain_timeout: float = 20.0
    # Each claim waits this long for a job before asking again (server cap: 60 s).
    claim_wait: float = 30.0
    # Take only jobs that ask for at least one of `labels` (never unlabelled ones).
    exclusive: bool = False
    # Start every job as this user (the worker runs as root): see worker/daemon/run_as.py.
    run_as: Optional[RunAs] = None
    timings: Timings = field(default_factory=Timings)
