"""The scrape's answer: a prometheus_client Collector over what fleet.py
read, beside prometheus_client's own collectors of this process (process_*,
python_*, python_gc_*), rendered by generate_latest."""

from __future__ import annotations

from typing import Iterator, Optional

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from ..store.queues import live_workers
from .fleet import Fleet
from .tally import HISTOGRAMS

# Every reason a failure is counted under (server/lua/_jobs.lua and the
# scripts that pass one), each shown from zero.
FAILURE_REASONS = ("error", "timeout", "lease_expired", "handback_limit", "cancelled", "event_timeout",
                   "decide_error")
COUNTERS = (
    ("claims", "Jobs leased to a worker"),
    ("completions", "Jobs a worker completed (results re-sent after a lost reply are not counted again)"),
    ("retries", "Failed attempts that were retried"),
    ("dead_letters", "Jobs that failed for good (each became a dead letter)"),
    ("lease_expiries", "Leases that ran out unrenewed while their job ran"),
)
HISTOGRAM_SERIES = (
    ("dispatch", "rota_dispatch_latency_seconds", (),
     "From when a job became claimable (enqueued, or its backoff over) to its claim"),
    ("queue_wait", "rota_queue_wait_seconds", (), "From a job's enqueue (its backoff included) to its claim"),
    ("job_duration", "rota_job_duration_seconds", (), "From a lease's grant to its worker's result"),
    ("http", "rota_http_request_duration_seconds", ("method", "route"),
     "HTTP requests by method and route template (requests no route took: route 'unmatched')"),
    ("script", "rota_redis_script_duration_seconds", ("script",), "Redis Lua script calls by script, from this server"),
)
WORKER_STATUSES = ("idle", "busy", "lost", "offline", "stopped")


class FleetCollector:
    """Yields the rota_* series from the last snapshot given."""

    def __init__(self) -> None:
        self.fleet: Optional[Fleet] = None

    def collect(self) -> Iterator[Metric]:
        fleet = self.fleet
        if fleet is None:
            return
        yield from _queues(fleet)
        yield from _state(fleet)
        yield from _counters(fleet)
        yield from _histograms(fleet)


def _labels(labels: list[str]) -> str:
    return ",".join(labels)


def _queues(fleet: Fleet) -> Iterator[Metric]:
    lk = ["labels"]
    ready = GaugeMetricFamily("rota_queue_ready_jobs", "Ready jobs per label set", labels=lk)
    oldest = GaugeMetricFamily("rota_queue_oldest_ready_age_seconds",
                               "How long the oldest ready job of each label set has waited since its enqueue",
                               labels=lk)
    paused = GaugeMetricFamily("rota_queue_paused", "1 when a label of the set is paused", labels=lk)
    live = GaugeMetricFamily("rota_queue_live_workers", "Live workers that can serve the label set", labels=lk)
    free = GaugeMetricFamily("rota_queue_free_slots", "Free slots of the live workers that can serve it", labels=lk)
    for q in fleet.queues.queues:
        key = [_labels(q.labels)]
        ready.add_metric(key, q.ready)
        if q.oldest is not None:
            oldest.add_metric(key, max(fleet.queues.now_ms - q.oldest.enqueued_at_ms, 0) / 1000)
        paused.add_metric(key, 1 if q.paused else 0)
        live.add_metric(key, q.live_workers)
        free.add_metric(key, q.free_slots)
    yield from (ready, oldest, paused, live, free)


def _state(fleet: Fleet) -> Iterator[Metric]:
    jobs = GaugeMetricFamily("rota_jobs", "Jobs by state per label set: ready, running (under a lease),"
                             " delayed (in backoff)", labels=["state", "labels"])
    for q in fleet.queues.queues:
        jobs.add_metric(["ready", _labels(q.labels)], q.ready)
    for lk, n in sorted(fleet.running.items()):
        if n:
            jobs.add_metric(["running", lk], n)
    for lk, n in sorted(fleet.delayed.items()):
        if n:
            jobs.add_metric(["delayed", lk], n)
    yield jobs
    runs = GaugeMetricFamily("rota_runs", "Runs by status: delayed (waiting for their start time), active"
                             " (queued or running), finished (kept until RETENTION_SECS)", labels=["status"])
    for status, n in fleet.runs.items():
        runs.add_metric([status], n)
    yield runs
    workers = GaugeMetricFamily("rota_workers", "Workers by status", labels=["status"])
    by_status = dict.fromkeys(WORKER_STATUSES, 0)
    for w in fleet.workers:
        by_status[w.status] = by_status.get(w.status, 0) + 1
    for status, n in by_status.items():
        workers.add_metric([status], n)
    yield workers
    yield GaugeMetricFamily("rota_worker_free_slots", "Free slots of the live workers (idle or busy)",
                            value=sum(w.free_slots or 0 for w in live_workers(fleet.workers)))
    yield GaugeMetricFamily("rota_dead_letters", "Dead letters now", value=fleet.dead_letters)
    sse = 0
    for record in fleet.processes.values():
        parts = record.split()
        sse += int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    yield GaugeMetricFamily("rota_sse_streams_open", "Event streams (logs, run events) open, over the live"
                            " server processes", value=sse)


def _counters(fleet: Fleet) -> Iterator[Metric]:
    counts = fleet.counts
    for name, doc in COUNTERS:
        yield CounterMetricFamily(f"rota_{name}", doc, value=int(counts.get(f"c:{name}", 0)))
    failures = CounterMetricFamily("rota_failures", "Failed attempts (and jobs failed without one) by reason",
                                   labels=["reason"])
    reasons = dict.fromkeys(FAILURE_REASONS, 0)
    for field, value in counts.items():
        if field.startswith("c:failures:"):
            reasons[field[len("c:failures:"):]] = int(value)
    for reason, n in reasons.items():
        failures.add_metric([reason], n)
    yield failures


def _histograms(fleet: Fleet) -> Iterator[Metric]:
    # field h:<name>:<label>:<bucket index | n>; the label may hold ':'
    found: dict[tuple[str, str], dict[str, int]] = {}
    for field, value in fleet.counts.items():
        if field.startswith("h:"):
            name, _, rest = field[2:].partition(":")
            label, _, slot = rest.rpartition(":")
            found.setdefault((name, label), {})[slot] = int(value)
    for name, series, label_names, doc in HISTOGRAM_SERIES:
        family = HistogramMetricFamily(series, doc, labels=list(label_names))
        bounds = HISTOGRAMS[name]
        labels = sorted(label for (n, label) in found if n == name)
        if not label_names and not labels:
            labels = [""]  # shown from zero
        for label in labels:
            slots = found.get((name, label), {})
            buckets, running = [], 0
            for i, bound in enumerate((*bounds, float("inf"))):
                running += slots.get(str(i), 0)
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            values = label.split(" ", 1) if len(label_names) == 2 else ([label] if label_names else [])
            family.add_metric(values, buckets, float(fleet.sums.get(f"{name}:{label}", 0)))
        yield family


class Exposition:
    """One registry per app: the fleet's series and this process's own."""

    def __init__(self) -> None:
        self.fleet = FleetCollector()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.fleet)  # type: ignore[arg-type]
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def render(self, fleet: Fleet) -> bytes:
        # No await between: a concurrent scrape cannot swap the snapshot mid-render.
        self.fleet.fleet = fleet
        return generate_latest(self.registry)
