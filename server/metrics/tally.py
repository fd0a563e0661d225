"""What one server process counted since its last flush: plain ints and
lists, so the hot path pays a few attribute updates per job and never a
lock, a label lookup in prometheus_client or a file write.

A histogram keeps a count per bucket (not cumulative: a bisect picks one),
their sum and their number; `take()` hands everything counted over to the
flush (server/metrics/flush.py) and starts again from zero.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Optional

# Upper bounds (seconds) of each histogram's buckets; +Inf is implied.
# Fixed: the flushed bucket counts of every process and every version add up.
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
                    21600.0)
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)
SCRIPT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# Histogram name -> its buckets; the label each is split by, if any.
HISTOGRAMS = {
    "dispatch": WAIT_BUCKETS,
    "queue_wait": WAIT_BUCKETS,
    "job_duration": DURATION_BUCKETS,
    "http": HTTP_BUCKETS,
    "script": SCRIPT_BUCKETS,
}


class Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class Tally:
    """Counters and histograms since the last take(). Counters the scripts
    keep themselves (failures, retries, dead letters, lease expiries: see
    server/lua/_metrics.lua) are not here."""

    __slots__ = ("claims", "completions", "histograms")

    def __init__(self) -> None:
        self.claims = 0
        self.completions = 0
        # (histogram name, label value) -> Histogram; label '' for none
        self.histograms: dict[tuple[str, str], Histogram] = {}

    def observe(self, name: str, value: float, label: str = "") -> None:
        hist = self.histograms.get((name, label))
        if hist is None:
            hist = self.histograms[(name, label)] = Histogram(HISTOGRAMS[name])
        hist.observe(value)

    def claimed(self, granted_ms: int, enqueued_ms: int, delayed_until_ms: int) -> None:
        """A job leased: from when it could be claimed to now, and from its enqueue."""
        self.claims += 1
        if enqueued_ms > 0:
            self.observe("dispatch", max(granted_ms - max(enqueued_ms, delayed_until_ms), 0) / 1000)
            self.observe("queue_wait", max(granted_ms - enqueued_ms, 0) / 1000)

    def result(self, started_ms: Optional[str], now_ms: Optional[str], completed: bool) -> None:
        """A worker's result taken (not a replay): its lease's duration."""
        if completed:
            self.completions += 1
        if started_ms and now_ms:
            self.observe("job_duration", max(int(now_ms) - int(started_ms), 0) / 1000)

    def take(self) -> "Tally":
        """Everything counted so far; this tally starts again from zero."""
        taken = Tally()
        taken.claims, taken.completions, taken.histograms = self.claims, self.completions, self.histograms
        self.claims, self.completions, self.histograms = 0, 0, {}
        return taken

    def restore(self, taken: "Tally") -> None:
        """Puts back what a failed flush took, to go with the next one."""
        self.claims += taken.claims
        self.completions += taken.completions
        for key, hist in taken.histograms.items():
            mine = self.histograms.get(key)
            if mine is None:
                self.histograms[key] = hist
            else:
                mine.counts = [a + b for a, b in zip(mine.counts, hist.counts)]
                mine.sum += hist.sum

    def fields(self) -> tuple[list, list]:
        """(integer increments, float increments) as flat [field, delta, ...]
        lists for metrics_flush.lua: `c:<counter>`, `h:<name>:<label>:<i>`
        (bucket i's count; their total is the count), and the sums `<name>:<label>`."""
        ints: list = []
        floats: list = []
        if self.claims:
            ints += ["c:claims", self.claims]
        if self.completions:
            ints += ["c:completions", self.completions]
        for (name, label), hist in self.histograms.items():
            base = f"h:{name}:{label}:"
            for i, n in enumerate(hist.counts):
                if n:
                    ints += [f"{base}{i}", n]
            floats += [f"{name}:{label}", repr(hist.sum)]
        return ints, floats
