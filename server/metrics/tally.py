"""What one server process counted since its last flush: plain ints and
lists, so the hot path pays a few attribute updates per job and never a
lock, a label lookup in prometheus_client or a file write.

A histogram keeps a count per bucket (not cumulative: a bisect picks one),
their sum and their number; `take()` hands everything counted over to the
flush (server/metrics/flush.py) and starts again from zero.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds (seconds) of each histogram's buckets; +Inf is implied.
# Fixed: the flushed bucket counts of every process and every version add up.
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
                    21600.0)
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)
SCRIPT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# Histogram name (a field of Tally) -> its buckets.
HISTOGRAMS = {
    "dispatch": WAIT_BUCKETS,
    "queue_wait": WAIT_BUCKETS,
    "job_duration": DURATION_BUCKETS,
    "http": HTTP_BUCKETS,
    "script": SCRIPT_BUCKETS,
}


class Histogram:
    """Observations in `unit` seconds (1 for seconds, 0.001 for the jobs'
    times, which come from Redis's clock in milliseconds: no division on
    the hot path)."""

    __slots__ = ("bounds", "counts", "sum", "unit")

    def __init__(self, bounds: tuple[float, ...], unit: float = 1.0):
        self.unit = unit
        self.bounds = tuple(b / unit for b in bounds)
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0

    def observe(self, value) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def seconds(self) -> float:
        return self.sum * self.unit


# The jobs' histograms, observed in milliseconds.
_MS = 0.001
JOB_HISTOGRAMS = ("dispatch", "queue_wait", "job_duration")
LABELLED = ("http", "script")


class Tally:
    """Counters and histograms since the last take(). Counters the scripts
    keep themselves (failures, retries, dead letters, lease expiries: see
    server/lua/_metrics.lua) are not here."""

    __slots__ = ("claims", "completions", "dispatch", "queue_wait", "job_duration", "http", "script")

    def __init__(self) -> None:
        self.claims = 0
        self.completions = 0
        self.dispatch = Histogram(WAIT_BUCKETS, _MS)
        self.queue_wait = Histogram(WAIT_BUCKETS, _MS)
        self.job_duration = Histogram(DURATION_BUCKETS, _MS)
        # label -> Histogram: requests by "<method> <route>", scripts by name
        self.http: dict[str, Histogram] = {}
        self.script: dict[str, Histogram] = {}

    def request(self, seconds: float, route: str) -> None:
        hist = self.http.get(route)
        if hist is None:
            hist = self.http[route] = Histogram(HTTP_BUCKETS)
        hist.observe(seconds)

    def script_call(self, seconds: float, name: str) -> None:
        hist = self.script.get(name)
        if hist is None:
            hist = self.script[name] = Histogram(SCRIPT_BUCKETS)
        hist.observe(seconds)

    def claimed(self, granted_ms: int, enqueued_ms: int, delayed_until_ms: int) -> None:
        """A job leased: from when it could be claimed to now, and from its enqueue."""
        self.claims += 1
        if enqueued_ms > 0:
            wait = granted_ms - enqueued_ms
            if wait < 0:
                wait = 0
            ready = granted_ms - delayed_until_ms if delayed_until_ms > enqueued_ms else wait
            if ready < 0:
                ready = 0
            self.queue_wait.observe(wait)
            self.dispatch.observe(ready)

    def result(self, started_ms: int, now_ms: int, completed: bool) -> None:
        """A worker's result taken (not a replay): its lease's duration."""
        if completed:
            self.completions += 1
        if started_ms:
            self.job_duration.observe(now_ms - started_ms if now_ms > started_ms else 0)

    def histograms(self) -> dict[tuple[str, str], Histogram]:
        """Every histogram, by (name, label); label '' for none."""
        out = {(name, ""): getattr(self, name) for name in JOB_HISTOGRAMS}
        for name in LABELLED:
            out.update(((name, label), hist) for label, hist in getattr(self, name).items())
        return out

    def take(self) -> "Tally":
        """Everything counted so far; this tally starts again from zero."""
        taken = Tally()
        for name in self.__slots__:
            mine, fresh = getattr(self, name), getattr(taken, name)
            setattr(taken, name, mine)
            setattr(self, name, fresh)
        return taken

    def fields(self) -> tuple[list, list]:
        """(integer increments, float increments) as flat [field, delta, ...]
        lists for metrics_flush.lua: `c:<counter>`, `h:<name>:<label>:<i>`
        (bucket i's count; their total is the count), and the sums in
        seconds, `<name>:<label>`."""
        ints: list = []
        floats: list = []
        if self.claims:
            ints += ["c:claims", self.claims]
        if self.completions:
            ints += ["c:completions", self.completions]
        for (name, label), hist in self.histograms().items():
            base = f"h:{name}:{label}:"
            seen = False
            for i, n in enumerate(hist.counts):
                if n:
                    ints += [f"{base}{i}", n]
                    seen = True
            if seen:
                floats += [f"{name}:{label}", repr(hist.seconds())]
        return ints, floats
